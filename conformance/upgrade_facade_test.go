package conformance

// Plugin facade side of HTTP upgrades (upgrade.md §3, rules F-U1…F-U6, and
// the facade cases U19 and U20 of §6). The test is the host: it opens the
// stream with or without the upgrade offer in the gRPC metadata, sends the
// request messages a host sends and checks every response message, while
// real gorilla/websocket and coder/websocket handlers, or handlers that use
// the hijacked connection directly, serve the exchange.
//
// Helpers of this file are prefixed with "facadeUp".

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coderws "github.com/coder/websocket"
	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// The handshake of RFC 6455 §1.3: this key gets this accept value.
const (
	facadeUpKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	facadeUpAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// facadeUpInit is the init a host sends for an eligible WebSocket handshake
// (upgrade.md §1.2): Connection and Upgrade normalised, no length.
func facadeUpInit(protocol string) *pluginapiv1.ServeHTTPRequestInit {
	init := bridgetest.ReqInit(http.MethodGet, "/ws?t=secret")
	init.Headers = bridgetest.Headers(
		"Connection", "Upgrade",
		"Sec-WebSocket-Key", facadeUpKey,
		"Sec-WebSocket-Version", "13",
		"Upgrade", protocol,
	)
	return init
}

// facadeUpOpen starts the facade around h, opens a stream that offers
// protocol and sends the init of an eligible request for it.
func facadeUpOpen(t *testing.T, h http.HandlerFunc, protocol string) (bridgetest.ClientStream, context.CancelFunc, *bridgetest.LogBuffer) {
	t.Helper()
	p, logs := facadeStart(t, h)
	stream, cancel := bridgetest.OpenStreamOffering(t, p.Client, protocol)
	if err := stream.Send(&bridgetest.RequestMsg{Init: facadeUpInit(protocol)}); err != nil {
		t.Fatalf("send init: %v", err)
	}
	return stream, cancel, logs
}

// facadeUpWant101 receives the first response message and checks that it is
// a 101 with the given headers (canonical keys), and returns the bytes it
// carries.
func facadeUpWant101(t *testing.T, stream bridgetest.ClientStream, want http.Header) []byte {
	t.Helper()
	m, err := stream.Recv()
	if err != nil {
		t.Fatalf("first response message: %v", err)
	}
	if m.GetInit().GetStatusCode() != http.StatusSwitchingProtocols {
		t.Fatalf("first response message %v, want an init with 101", m)
	}
	got := facadeHeader(m.GetInit().GetHeaders())
	for k, v := range want {
		if strings.Join(got[k], ",") != strings.Join(v, ",") {
			t.Errorf("101 header %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if m.GetBodyComplete() {
		t.Error("the 101 carries body_complete")
	}
	return m.GetBodyChunk()
}

// facadeUpRecv receives body chunks until it has n bytes (a message may not
// carry an init or body_complete on the way) and returns them.
func facadeUpRecv(t *testing.T, stream bridgetest.ClientStream, n int) []byte {
	t.Helper()
	var got []byte
	for len(got) < n {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", len(got), n, err)
		}
		if m.GetInit() != nil || m.GetBodyComplete() {
			t.Fatalf("after %d of %d bytes: message %v, want a bare body chunk", len(got), n, m)
		}
		got = append(got, m.GetBodyChunk()...)
	}
	if len(got) != n {
		t.Fatalf("got %d bytes, want %d: %q", len(got), n, got)
	}
	return got
}

// facadeUpWantEnd checks that the rest of the stream is one message with
// body_complete (and no bytes) and a clean end of the RPC.
func facadeUpWantEnd(t *testing.T, stream bridgetest.ClientStream) {
	t.Helper()
	msgs, err := facadeRecvAll(stream)
	if err != nil {
		t.Errorf("the RPC ended with %v, want OK", err)
	}
	if len(msgs) != 1 || !msgs[0].GetBodyComplete() || len(msgs[0].GetBodyChunk()) != 0 || msgs[0].GetInit() != nil {
		t.Errorf("closing messages %v, want one with body_complete alone", msgs)
	}
}

// facadeUpWantAbort checks that the RPC ends with a non-OK status and that
// no message on the way carries body_complete.
func facadeUpWantAbort(t *testing.T, stream bridgetest.ClientStream) []*bridgetest.ResponseMsg {
	t.Helper()
	msgs, err := facadeRecvAll(stream)
	if err == nil {
		t.Errorf("the RPC ended OK after %v, want an abort", msgs)
	}
	for _, m := range msgs {
		if m.GetBodyComplete() {
			t.Errorf("message %v of an aborted session carries body_complete", m)
		}
	}
	return msgs
}

func facadeUpSend(t *testing.T, stream bridgetest.ClientStream, chunk []byte, complete bool) {
	t.Helper()
	if err := stream.Send(&bridgetest.RequestMsg{BodyChunk: chunk, BodyComplete: complete}); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// facadeUpClientFrame is a final client frame (masked, as RFC 6455 wants)
// with a payload shorter than 126 bytes.
func facadeUpClientFrame(opcode byte, payload []byte) []byte {
	mask := []byte{0x37, 0xfa, 0x21, 0x3d}
	frame := append([]byte{0x80 | opcode, 0x80 | byte(len(payload))}, mask...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	return frame
}

// facadeUpServerFrame is the final, unmasked frame a server sends.
func facadeUpServerFrame(opcode byte, payload []byte) []byte {
	return append([]byte{0x80 | opcode, byte(len(payload))}, payload...)
}

// facadeUpReport sends v on ch without blocking the handler.
func facadeUpReport[T any](ch chan<- T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// The WebSocket echo handlers, with the libraries' defaults.
func facadeUpGorillaEcho(w http.ResponseWriter, r *http.Request) {
	conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered
	}
	conn.SetReadLimit(32 << 20)
	// As gorilla's chat example: the session goes on after the handler.
	go func() {
		defer conn.Close()
		for {
			kind, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if err := conn.WriteMessage(kind, msg); err != nil {
				return
			}
		}
	}()
}

func facadeUpCoderEcho(w http.ResponseWriter, r *http.Request) {
	conn, err := coderws.Accept(w, r, nil)
	if err != nil {
		return // Accept answered
	}
	defer conn.CloseNow()
	conn.SetReadLimit(32 << 20) // as upgrade.md §6 wants on both ends
	ctx := context.Background()
	for {
		kind, msg, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if err := conn.Write(ctx, kind, msg); err != nil {
			return
		}
	}
}

// U19: a host that offers no upgrade (an old host, Mattermost's) gets a
// refusal from both libraries, never a 101; so do requests that are not
// eligible even with the offer.
func TestFacadeU19NoOfferNoHijacker(t *testing.T) {
	type exchange struct {
		name     string
		offer    string // metadata; "" for none
		complete bool   // body_complete on the init (Mattermost's host)
		length   int64
		upgrade  string
	}
	exchanges := []exchange{
		{name: "mattermost-host", complete: true, upgrade: "websocket"},
		{name: "no-offer", upgrade: "websocket"},
		{name: "other-protocol-offered", offer: "x-echo-tcp", upgrade: "websocket"},
		{name: "offer-with-body-complete", offer: "websocket", complete: true, upgrade: "websocket"},
		{name: "offer-with-length", offer: "websocket", length: 5, upgrade: "websocket"},
		{name: "two-protocols", offer: "websocket", upgrade: "websocket, h2c"},
	}
	handlers := []struct {
		name    string
		handler http.HandlerFunc
		status  int32
	}{
		{"gorilla", facadeUpGorillaEcho, http.StatusInternalServerError},
		{"coder", facadeUpCoderEcho, http.StatusNotImplemented},
	}
	for _, ex := range exchanges {
		for _, h := range handlers {
			t.Run(ex.name+"/"+h.name, func(t *testing.T) {
				bridgetest.LeakCheck(t)
				type view struct {
					hijacker bool
					rcErr    error
				}
				seen := make(chan view, 1)
				p, _ := facadeStart(t, func(w http.ResponseWriter, r *http.Request) {
					var v view
					_, v.hijacker = w.(http.Hijacker)
					_, _, v.rcErr = http.NewResponseController(w).Hijack()
					seen <- v
					h.handler(w, r)
				})
				var stream bridgetest.ClientStream
				if ex.offer != "" {
					stream, _ = bridgetest.OpenStreamOffering(t, p.Client, ex.offer)
				} else {
					stream, _ = bridgetest.OpenStream(t, p.Client)
				}
				init := facadeUpInit(ex.upgrade)
				init.ContentLength = ex.length
				if err := stream.Send(&bridgetest.RequestMsg{Init: init, BodyComplete: ex.complete}); err != nil {
					t.Fatal(err)
				}
				if ex.length > 0 {
					// Fails once the handler answered without reading it.
					_ = stream.Send(&bridgetest.RequestMsg{BodyChunk: []byte("12345"), BodyComplete: true})
				}
				if err := stream.CloseSend(); err != nil {
					t.Fatal(err)
				}
				msgs, err := facadeRecvAll(stream)
				f := facadeWantStatus(t, facadeExchange{msgs: msgs, err: err}, h.status)
				if f.Status == http.StatusSwitchingProtocols {
					t.Error("the facade sent 101")
				}
				if v, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "handler"); ok {
					if v.hijacker {
						t.Error("the ResponseWriter is an http.Hijacker")
					}
					if !errors.Is(v.rcErr, http.ErrNotSupported) {
						t.Errorf("ResponseController.Hijack = %v, want http.ErrNotSupported", v.rcErr)
					}
				}
			})
		}
	}
}

// F-U2 with the libraries: gorilla writes the 101 head to the hijacked conn
// (style b) and returns from the handler while its goroutine echoes;
// coder/websocket calls WriteHeader(101) then Hijack (style a). Frames go
// through unchanged both ways, and the close handshake ends the RPC OK.
func TestFacadeUWebSocketEcho(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"gorilla", facadeUpGorillaEcho},
		{"coder", facadeUpCoderEcho},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			stream, _, logs := facadeUpOpen(t, tc.handler, "websocket")
			first := facadeUpWant101(t, stream, http.Header{
				"Connection":           {"Upgrade"},
				"Upgrade":              {"websocket"},
				"Sec-Websocket-Accept": {facadeUpAccept},
			})
			if len(first) != 0 {
				t.Errorf("the 101 carries %q, want no bytes", first)
			}
			for _, msg := range []string{"hello", "", strings.Repeat("x", 125)} {
				facadeUpSend(t, stream, facadeUpClientFrame(0x1, []byte(msg)), false)
				want := facadeUpServerFrame(0x1, []byte(msg))
				if len(msg) == 125 {
					want = append([]byte{0x81, 125}, msg...)
				}
				if got := facadeUpRecv(t, stream, len(want)); !bytes.Equal(got, want) {
					t.Errorf("echo of %q: got % x, want % x", facadeAbbrev(msg), got, want)
				}
			}
			// A binary frame split across two chunks.
			frame := facadeUpClientFrame(0x2, []byte{0, 1, 2, 255})
			facadeUpSend(t, stream, frame[:3], false)
			facadeUpSend(t, stream, frame[3:], false)
			if got, want := facadeUpRecv(t, stream, 6), facadeUpServerFrame(0x2, []byte{0, 1, 2, 255}); !bytes.Equal(got, want) {
				t.Errorf("binary echo: got % x, want % x", got, want)
			}
			facadeUpSend(t, stream, facadeUpClientFrame(0x8, []byte{0x03, 0xe8, 'b', 'y', 'e'}), false)
			// Each library answers the close with its own reason; both
			// with a close frame of code 1000.
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("close reply: %v", err)
			}
			if c := m.GetBodyChunk(); len(c) < 4 || c[0] != 0x88 || c[2] != 0x03 || c[3] != 0xe8 {
				t.Errorf("close reply % x, want a close frame with code 1000", c)
			}
			if !m.GetBodyComplete() {
				facadeUpWantEnd(t, stream)
			} else if _, err := stream.Recv(); err != io.EOF {
				t.Errorf("after the close: %v, want the RPC to end OK", err)
			}
			if s := logs.String(); strings.Contains(s, "level=ERROR") || strings.Contains(s, "level=WARN") {
				t.Errorf("facade log:\n%s", s)
			}
		})
	}
}

// U20 and F-U3, F-U6: the Hijacker's API.
func TestFacadeU20HijackAPI(t *testing.T) {
	t.Run("hijack-twice-write-after", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		type view struct{ second, write, flush error }
		seen := make(chan view, 1)
		stream, _, logs := facadeUpOpen(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Upgrade", "websocket")
			w.Header().Set("Connection", "Upgrade")
			w.WriteHeader(http.StatusSwitchingProtocols)
			conn, brw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Errorf("Hijack: %v", err)
				return
			}
			defer conn.Close()
			if brw.Reader.Buffered() != 0 || brw.Writer.Buffered() != 0 || brw.Reader.Size() != 4096 || brw.Writer.Size() != 4096 {
				t.Errorf("brw buffers %d, %d bytes of %d, %d; want empty 4096-byte buffers", brw.Reader.Buffered(), brw.Writer.Buffered(), brw.Reader.Size(), brw.Writer.Size())
			}
			var v view
			_, _, v.second = http.NewResponseController(w).Hijack()
			_, v.write = w.Write([]byte("x"))
			v.flush = http.NewResponseController(w).Flush()
			w.WriteHeader(http.StatusOK) // a logged no-op
			seen <- v
		}, "websocket")
		facadeUpWant101(t, stream, http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}})
		facadeUpWantEnd(t, stream)
		if v, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "handler"); ok {
			for name, err := range map[string]error{"second Hijack": v.second, "Write": v.write, "Flush": v.flush} {
				if !errors.Is(err, http.ErrHijacked) {
					t.Errorf("%s after Hijack = %v, want http.ErrHijacked", name, err)
				}
			}
		}
		if !strings.Contains(logs.String(), "WriteHeader on a hijacked connection") {
			t.Errorf("no log line for WriteHeader after Hijack:\n%s", logs)
		}
	})

	t.Run("hijack-after-response-started", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		seen := make(chan error, 1)
		stream, _, _ := facadeUpOpen(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			_, _, err := w.(http.Hijacker).Hijack()
			seen <- err
		}, "websocket")
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		msgs, err := facadeRecvAll(stream)
		facadeWantStatus(t, facadeExchange{msgs: msgs, err: err}, http.StatusForbidden)
		if err, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "handler"); ok && !errors.Is(err, http.ErrHijacked) {
			t.Errorf("Hijack after WriteHeader(403) = %v, want http.ErrHijacked", err)
		}
	})

	// F-U6: never a 101 without a hijack, whether or not the host offered
	// the upgrade; a Write after it fails as net/http's does, and a Flush
	// sends nothing.
	for _, offer := range []string{"websocket", ""} {
		t.Run("101-without-hijack/offer="+offer, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			seen := make(chan error, 1)
			p, logs := facadeStart(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusSwitchingProtocols)
				w.(http.Flusher).Flush()
				_, err := w.Write([]byte("frame"))
				seen <- err
			})
			open := bridgetest.OpenStream
			if offer != "" {
				open = func(t testing.TB, client pluginapiv1.PluginHooksClient) (bridgetest.ClientStream, context.CancelFunc) {
					return bridgetest.OpenStreamOffering(t, client, offer)
				}
			}
			stream, _ := open(t, p.Client)
			if err := stream.Send(&bridgetest.RequestMsg{Init: facadeUpInit("websocket")}); err != nil {
				t.Fatal(err)
			}
			if err := stream.CloseSend(); err != nil {
				t.Fatal(err)
			}
			msgs, err := facadeRecvAll(stream)
			facadeWantStatus(t, facadeExchange{msgs: msgs, err: err}, http.StatusInternalServerError)
			if err, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "handler"); ok && !errors.Is(err, http.ErrBodyNotAllowed) {
				t.Errorf("Write after WriteHeader(101) = %v, want http.ErrBodyNotAllowed", err)
			}
			if !strings.Contains(logs.String(), "without hijacking") {
				t.Errorf("no log line for the 101 without a hijack:\n%s", logs)
			}
		})
	}

	// F-U5: the session outlives the handler; the request's context does
	// not.
	t.Run("session-outlives-handler", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		ctxErr := make(chan error, 1)
		stream, _, _ := facadeUpOpen(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusSwitchingProtocols)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Errorf("Hijack: %v", err)
				return
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 4)
				n, err := io.ReadFull(conn, buf)
				// The handler has returned by the time the host sends.
				facadeUpReport(ctxErr, r.Context().Err())
				if err == nil {
					_, _ = conn.Write(append([]byte("re:"), buf[:n]...))
				}
			}()
		}, "websocket")
		facadeUpWant101(t, stream, nil)
		facadeUpSend(t, stream, []byte("ping"), false)
		if got := facadeUpRecv(t, stream, 7); string(got) != "re:ping" {
			t.Errorf("got %q, want %q", got, "re:ping")
		}
		facadeUpWantEnd(t, stream)
		if err, ok := bridgetest.WaitFor(t, ctxErr, bridgetest.Promptly, "goroutine"); ok && err == nil {
			t.Error("r.Context() is not done after the handler returned")
		}
	})

	t.Run("addresses", func(t *testing.T) {
		for _, tc := range []struct {
			remote, host       string
			remoteNet, hostNet string
		}{
			{"192.0.2.1:1234", "plugin.test", "tcp", "httpbridge"},
			{"[2001:db8::1]:443", "192.0.2.9:8065", "tcp", "tcp"},
			{"", "", "httpbridge", "httpbridge"},
		} {
			bridgetest.LeakCheck(t)
			type view struct{ remote, local net.Addr }
			seen := make(chan view, 1)
			p, _ := facadeStart(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusSwitchingProtocols)
				conn, _, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Errorf("Hijack: %v", err)
					return
				}
				defer conn.Close()
				seen <- view{conn.RemoteAddr(), conn.LocalAddr()}
			})
			stream, _ := bridgetest.OpenStreamOffering(t, p.Client, "websocket")
			init := facadeUpInit("websocket")
			init.RemoteAddr, init.Host = tc.remote, tc.host
			if err := stream.Send(&bridgetest.RequestMsg{Init: init}); err != nil {
				t.Fatal(err)
			}
			facadeUpWant101(t, stream, nil)
			facadeUpWantEnd(t, stream)
			v, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "handler")
			if !ok {
				continue
			}
			if v.remote == nil || v.local == nil {
				t.Fatalf("RemoteAddr %v, LocalAddr %v; want neither nil", v.remote, v.local)
			}
			if v.remote.Network() != tc.remoteNet || v.remote.String() != tc.remote {
				t.Errorf("RemoteAddr %s %q, want %s %q", v.remote.Network(), v.remote, tc.remoteNet, tc.remote)
			}
			if _, tcp := v.remote.(*net.TCPAddr); tcp != (tc.remoteNet == "tcp") {
				t.Errorf("RemoteAddr is %T", v.remote)
			}
			if v.local.Network() != tc.hostNet || v.local.String() != tc.host {
				t.Errorf("LocalAddr %s %q, want %s %q", v.local.Network(), v.local, tc.hostNet, tc.host)
			}
		}
	})

	t.Run("panic-after-hijack", func(t *testing.T) {
		for _, value := range []any{"boom", http.ErrAbortHandler} {
			bridgetest.LeakCheck(t)
			stream, _, logs := facadeUpOpen(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusSwitchingProtocols)
				conn, _, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Errorf("Hijack: %v", err)
					return
				}
				_, _ = conn.Write([]byte("partial"))
				panic(value)
			}, "websocket")
			facadeUpWant101(t, stream, nil)
			msgs := facadeUpWantAbort(t, stream)
			var got []byte
			for _, m := range msgs {
				got = append(got, m.GetBodyChunk()...)
			}
			if string(got) != "partial" {
				t.Errorf("bytes before the abort %q, want %q", got, "partial")
			}
			if logged := strings.Contains(logs.String(), "stack"); logged != (value != http.ErrAbortHandler) {
				t.Errorf("panic(%v): stack logged = %v:\n%s", value, logged, logs)
			}
		}
	})
}

// F-U4: deadlines make blocked calls return os.ErrDeadlineExceeded, a
// net.Error whose Timeout is true; the conn stays usable, and a write that
// timed out is still delivered, before the next.
func TestFacadeU20Deadlines(t *testing.T) {
	bridgetest.LeakCheck(t)
	type result struct {
		step string
		n    int
		err  error
	}
	results := make(chan result, 16)
	release := make(chan struct{})
	p := facadeUpPinnedPlugin(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		buf := make([]byte, 16)
		// A read with nothing to read.
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := conn.Read(buf)
		results <- result{"read-blocked", n, err}
		// A deadline in the past fails at once.
		_ = conn.SetReadDeadline(time.Now().Add(-time.Second))
		n, err = conn.Read(buf)
		results <- result{"read-past", n, err}
		// Cleared, the next read gets what the host sends.
		_ = conn.SetReadDeadline(time.Time{})
		results <- result{step: "ready"}
		n, err = conn.Read(buf)
		results <- result{"read-" + string(buf[:n]), n, err}
		// A write blocked by flow control: the host does not receive.
		_ = conn.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		n, err = conn.Write(facadeUpPattern(1 << 20))
		results <- result{"write-blocked", n, err}
		<-release
		_ = conn.SetWriteDeadline(time.Time{})
		n, err = conn.Write([]byte("next"))
		results <- result{"write-next", n, err}
	})
	stream, _ := bridgetest.OpenStreamOffering(t, p.Client, "websocket")
	if err := stream.Send(&bridgetest.RequestMsg{Init: facadeUpInit("websocket")}); err != nil {
		t.Fatal(err)
	}
	facadeUpWant101(t, stream, nil)
	next := func(want string) result {
		r, ok := bridgetest.WaitFor(t, results, bridgetest.ExchangeTimeout, want)
		if !ok {
			t.FailNow()
		}
		if r.step != want {
			t.Fatalf("step %q (%d, %v), want %q", r.step, r.n, r.err, want)
		}
		return r
	}
	timeout := func(r result) {
		t.Helper()
		var ne net.Error
		if !errors.Is(r.err, os.ErrDeadlineExceeded) || !errors.As(r.err, &ne) || !ne.Timeout() {
			t.Errorf("%s: %v, want os.ErrDeadlineExceeded, a net.Error with Timeout", r.step, r.err)
		}
	}
	timeout(next("read-blocked"))
	timeout(next("read-past"))
	next("ready")
	facadeUpSend(t, stream, []byte("data"), false)
	if r := next("read-data"); r.err != nil || r.n != 4 {
		t.Errorf("read after clearing the deadline: %d, %v", r.n, r.err)
	}
	r := next("write-blocked")
	timeout(r)
	if r.n != 1<<20 {
		t.Errorf("timed-out Write returned %d, want %d: its bytes are still sent", r.n, 1<<20)
	}
	close(release)
	got := facadeUpRecv(t, stream, 1<<20+4)
	if want := append(facadeUpPattern(1<<20), "next"...); !bytes.Equal(got, want) {
		t.Errorf("bytes after the timed-out write: %s", bridgetest.FirstDiff(got, want))
	}
	if r := next("write-next"); r.err != nil || r.n != 4 {
		t.Errorf("Write after the timed-out one: %d, %v", r.n, r.err)
	}
	facadeUpWantEnd(t, stream)
}

// facadeUpPinnedPlugin serves h through the facade with gRPC's flow-control
// windows pinned at 64 KiB, so that a plugin's write blocks once the host
// has not received 64 KiB (BDP estimation would grow the window).
func facadeUpPinnedPlugin(t *testing.T, h http.HandlerFunc) *bridgetest.Plugin {
	t.Helper()
	bridge, _ := bridgetest.NewFacade(h)
	return bridgetest.StartPluginWith(t, bridgetest.Bufconn, &bridgetest.FacadeServer{Bridge: bridge}, bridgetest.PluginOptions{
		ServerOptions: []grpc.ServerOption{grpc.InitialWindowSize(64 << 10), grpc.InitialConnWindowSize(64 << 10)},
		DialOptions:   []grpc.DialOption{grpc.WithInitialWindowSize(64 << 10), grpc.WithInitialConnWindowSize(64 << 10)},
	})
}

func facadeUpPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// F-U4: Write sends each call at once, in chunks of at most ChunkSize, and
// never joins two calls.
func TestFacadeUWriteChunks(t *testing.T) {
	bridgetest.LeakCheck(t)
	stream, _, _ := facadeUpOpen(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		for _, p := range [][]byte{facadeUpPattern(150 << 10), []byte("a"), []byte("b"), {}, []byte("c")} {
			if n, err := conn.Write(p); n != len(p) || err != nil {
				t.Errorf("Write of %d bytes: %d, %v", len(p), n, err)
			}
		}
	}, "websocket")
	facadeUpWant101(t, stream, nil)
	msgs, err := facadeRecvAll(stream)
	if err != nil {
		t.Errorf("RPC ended with %v", err)
	}
	var sizes []int
	var body []byte
	for _, m := range msgs {
		sizes = append(sizes, len(m.GetBodyChunk()))
		body = append(body, m.GetBodyChunk()...)
	}
	want := []int{64 << 10, 64 << 10, 22 << 10, 1, 1, 1, 0}
	if !slices.Equal(sizes, want) || !msgs[len(msgs)-1].GetBodyComplete() {
		t.Errorf("message sizes %v, want %v with body_complete last", sizes, want)
	}
	if wantBody := append(facadeUpPattern(150<<10), "abc"...); !bytes.Equal(body, wantBody) {
		t.Errorf("bytes: %s", bridgetest.FirstDiff(body, wantBody))
	}
}

// F-U4: Write blocks while the host does not receive (gRPC flow control),
// and every byte arrives once it does.
func TestFacadeUBackpressure(t *testing.T) {
	bridgetest.LeakCheck(t)
	const size = 4 << 20
	wrote := make(chan error, 1)
	p := facadeUpPinnedPlugin(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		_, err = conn.Write(facadeUpPattern(size))
		wrote <- err
	})
	stream, _ := bridgetest.OpenStreamOffering(t, p.Client, "websocket")
	if err := stream.Send(&bridgetest.RequestMsg{Init: facadeUpInit("websocket")}); err != nil {
		t.Fatal(err)
	}
	facadeUpWant101(t, stream, nil)
	// 4 MiB cannot fit in 64 KiB windows: the Write must still be blocked.
	select {
	case err := <-wrote:
		t.Fatalf("Write of %d bytes returned (%v) while the host received nothing", size, err)
	case <-time.After(300 * time.Millisecond):
	}
	got := facadeUpRecv(t, stream, size)
	if want := facadeUpPattern(size); !bytes.Equal(got, want) {
		t.Errorf("bytes: %s", bridgetest.FirstDiff(got, want))
	}
	if err, ok := bridgetest.WaitFor(t, wrote, bridgetest.Promptly, "Write"); ok && err != nil {
		t.Errorf("Write: %v", err)
	}
	facadeUpWantEnd(t, stream)
}

// F-U4: the ends of each direction: the host's body_complete is io.EOF and
// the plugin can still write; a stream that ends without it is
// io.ErrUnexpectedEOF; a cancel fails reads and writes; CloseWrite sends
// body_complete and fails later writes but not reads; Close fails both and
// is idempotent. The handler writes the 101 head itself here (style b),
// with the first bytes of the new protocol in the same Write, for a raw
// byte-echo protocol.
func TestFacadeUHalfClose(t *testing.T) {
	const head = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x-echo-tcp\r\n\r\n"
	type result struct {
		readErr, writeErr, again error
		read                     string
	}
	// serve hijacks, writes the head and "hi", reads until a read fails,
	// then acts as end says.
	serve := func(results chan<- result, end func(conn net.Conn, r *result)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Errorf("Hijack: %v", err)
				return
			}
			if _, err := conn.Write([]byte(head + "hi")); err != nil {
				t.Errorf("Write of the head: %v", err)
			}
			var res result
			buf := make([]byte, 3)
			for {
				n, err := conn.Read(buf)
				res.read += string(buf[:n])
				if err != nil {
					res.readErr = err
					break
				}
			}
			end(conn, &res)
			results <- res
		}
	}
	t.Run("host-half-closes", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		results := make(chan result, 1)
		stream, _, _ := facadeUpOpen(t, serve(results, func(conn net.Conn, r *result) {
			_, r.writeErr = conn.Write([]byte("tail"))
			r.again = conn.Close()
			if err := conn.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		}), "x-echo-tcp")
		if first := facadeUpWant101(t, stream, http.Header{"Upgrade": {"x-echo-tcp"}, "Connection": {"Upgrade"}}); string(first) != "hi" {
			t.Errorf("the 101 carries %q, want %q", first, "hi")
		}
		facadeUpSend(t, stream, []byte("abcdefg"), false)
		facadeUpSend(t, stream, nil, true)
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if got := facadeUpRecv(t, stream, 4); string(got) != "tail" {
			t.Errorf("got %q, want %q", got, "tail")
		}
		facadeUpWantEnd(t, stream)
		if r, ok := bridgetest.WaitFor(t, results, bridgetest.Promptly, "handler"); ok {
			if r.read != "abcdefg" || r.readErr != io.EOF || r.writeErr != nil || r.again != nil {
				t.Errorf("handler read %q then %v, wrote after EOF: %v, Close: %v; want all, io.EOF, nil, nil", r.read, r.readErr, r.writeErr, r.again)
			}
		}
	})
	t.Run("host-ends-without-complete", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		results := make(chan result, 1)
		stream, _, _ := facadeUpOpen(t, serve(results, func(conn net.Conn, r *result) { r.again = conn.Close() }), "x-echo-tcp")
		facadeUpWant101(t, stream, nil)
		facadeUpSend(t, stream, []byte("ab"), false)
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		facadeUpWantEnd(t, stream)
		if r, ok := bridgetest.WaitFor(t, results, bridgetest.Promptly, "handler"); ok && (r.read != "ab" || r.readErr != io.ErrUnexpectedEOF) {
			t.Errorf("handler read %q then %v, want %q then io.ErrUnexpectedEOF", r.read, r.readErr, "ab")
		}
	})
	t.Run("host-cancels", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		results := make(chan result, 1)
		stream, cancel, _ := facadeUpOpen(t, serve(results, func(conn net.Conn, r *result) {
			_, r.writeErr = conn.Write([]byte("x"))
			r.again = conn.Close()
		}), "x-echo-tcp")
		facadeUpWant101(t, stream, nil)
		facadeUpSend(t, stream, []byte("abc"), false)
		cancel()
		if r, ok := bridgetest.WaitFor(t, results, bridgetest.Promptly, "handler"); ok {
			if r.readErr == nil || r.readErr == io.EOF || r.readErr == io.ErrUnexpectedEOF {
				t.Errorf("read after the host cancelled: %v, want another error", r.readErr)
			}
			if r.writeErr == nil {
				t.Error("write after the host cancelled succeeded")
			}
		}
	})
	t.Run("plugin-half-closes", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		type view struct {
			closeWrite, writeAfter error
			read                   string
			readErr, closeTwice    error
		}
		seen := make(chan view, 1)
		stream, _, _ := facadeUpOpen(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusSwitchingProtocols)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Errorf("Hijack: %v", err)
				return
			}
			var v view
			_, _ = conn.Write([]byte("bye"))
			v.closeWrite = conn.(interface{ CloseWrite() error }).CloseWrite()
			_, v.writeAfter = conn.Write([]byte("late"))
			b, err := io.ReadAll(conn)
			v.read, v.readErr = string(b), err
			_ = conn.Close()
			_, err = conn.Read(make([]byte, 1))
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read after Close: %v, want net.ErrClosed", err)
			}
			if _, err = conn.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after Close: %v, want net.ErrClosed", err)
			}
			v.closeTwice = conn.Close()
			seen <- v
		}, "websocket")
		facadeUpWant101(t, stream, nil)
		if got := facadeUpRecv(t, stream, 3); string(got) != "bye" {
			t.Errorf("got %q", got)
		}
		m, err := stream.Recv()
		if err != nil || !m.GetBodyComplete() || len(m.GetBodyChunk()) != 0 {
			t.Fatalf("after CloseWrite: %v, %v; want body_complete alone", m, err)
		}
		// The plugin still reads.
		facadeUpSend(t, stream, []byte("still"), true)
		if _, err := stream.Recv(); err != io.EOF {
			t.Errorf("the RPC ended with %v, want OK", err)
		}
		if v, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "handler"); ok {
			if v.closeWrite != nil || !errors.Is(v.writeAfter, net.ErrClosed) || v.read != "still" || v.readErr != nil || v.closeTwice != nil {
				t.Errorf("CloseWrite %v, Write after it %v, read %q (%v), second Close %v; want nil, net.ErrClosed, %q (nil), nil",
					v.closeWrite, v.writeAfter, v.read, v.readErr, v.closeTwice, "still")
			}
		}
	})
}

// F-U2 (b): a handler that hijacks and then answers with a non-101 head
// gets an ordinary response, its body decoded by the head's framing, and
// body_complete only after a clean end of it.
func TestFacadeURawResponseAfterHijack(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		status int32
		body   string
		header http.Header
		abort  bool
	}{
		{
			name:   "content-length",
			writes: []string{"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n", "\r\nno", "!!!"},
			status: 403, body: "no!!!", header: http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"5"}},
		},
		{
			name:   "chunked",
			writes: []string{"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "lo\r\n3\r\n!!!\r\n0\r\n\r\n"},
			status: 400, body: "hello!!!",
		},
		{
			name:   "until-close",
			writes: []string{"HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\n\r\nuse ", "websocket"},
			status: 426, body: "use websocket",
		},
		{
			name:   "interim-first",
			writes: []string{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
			status: 200, body: "ok",
		},
		{
			name:   "cut-short",
			writes: []string{"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\nabc"},
			status: 403, abort: true,
		},
		{name: "not-http", writes: []string{"SSH-2.0-OpenSSH\r\n\r\n"}, abort: true},
		{name: "head-too-long", writes: []string{"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 64<<10)}, abort: true},
		{name: "no-head", abort: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			stream, _, logs := facadeUpOpen(t, func(w http.ResponseWriter, r *http.Request) {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Errorf("Hijack: %v", err)
					return
				}
				defer conn.Close()
				for _, s := range tc.writes {
					if _, err := conn.Write([]byte(s)); err != nil && !tc.abort {
						t.Errorf("Write(%q): %v", facadeAbbrev(s), err)
					}
				}
			}, "websocket")
			if tc.abort {
				msgs := facadeUpWantAbort(t, stream)
				if tc.status != 0 && (len(msgs) == 0 || msgs[0].GetInit().GetStatusCode() != tc.status) {
					t.Errorf("messages %v, want a %d init first", msgs, tc.status)
				}
				if tc.status == 0 && len(msgs) != 0 {
					t.Errorf("messages %v, want none", msgs)
				}
				if !strings.Contains(logs.String(), "hijacked connection failed") {
					t.Errorf("no log line:\n%s", logs)
				}
				return
			}
			msgs, err := facadeRecvAll(stream)
			f := facadeWantResponse(t, facadeExchange{msgs: msgs, err: err}, tc.status, tc.body)
			got := facadeHeader(f.Headers)
			for k, v := range tc.header {
				if strings.Join(got[k], ",") != strings.Join(v, ",") {
					t.Errorf("header %s = %q, want %q", k, got[k], v)
				}
			}
			if got.Get("Transfer-Encoding") != "" {
				t.Errorf("the response carries Transfer-Encoding %q", got.Get("Transfer-Encoding"))
			}
		})
	}
}

// F-U5: a conn the handler drops without closing it is closed once it is
// collected, and the RPC ends OK.
func TestFacadeUDroppedConnIsClosed(t *testing.T) {
	bridgetest.LeakCheck(t)
	stream, _, logs := facadeUpOpen(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusSwitchingProtocols)
		if _, _, err := w.(http.Hijacker).Hijack(); err != nil {
			t.Errorf("Hijack: %v", err)
		}
	}, "websocket")
	facadeUpWant101(t, stream, nil)
	ended := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		facadeUpWantEnd(t, stream)
		close(ended)
	}()
	collected := bridgetest.Eventually(5*time.Second, func() bool {
		runtime.GC()
		select {
		case <-ended:
			return true
		default:
			return false
		}
	})
	if !collected {
		t.Error("the RPC did not end within 5s of GCs after the handler dropped the conn")
	}
	wg.Wait()
	if !strings.Contains(logs.String(), "dropped without Close") {
		t.Errorf("no warning for the dropped conn:\n%s", logs)
	}
}

// The non-upgrade path keeps its writer: an error status reaches the host
// like any response (the code a refusing library answers with).
func TestFacadeURefusalBeforeHijack(t *testing.T) {
	bridgetest.LeakCheck(t)
	stream, _, _ := facadeUpOpen(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Body != http.NoBody || r.ContentLength != 0 || len(r.TransferEncoding) != 0 {
			t.Errorf("request body %T, length %d, transfer encoding %v; want http.NoBody, 0, none", r.Body, r.ContentLength, r.TransferEncoding)
		}
		// Gorilla's default origin check refuses this one.
		r.Header.Set("Origin", "https://evil.example")
		_, _ = (&websocket.Upgrader{}).Upgrade(w, r, nil)
	}, "websocket")
	// A host refused this way sends body_complete; the facade may have
	// ended the stream already.
	_ = stream.Send(&bridgetest.RequestMsg{BodyComplete: true})
	msgs, err := facadeRecvAll(stream)
	f := facadeWantStatus(t, facadeExchange{msgs: msgs, err: err}, http.StatusForbidden)
	if string(f.Body) != "Forbidden\n" || facadeHeader(f.Headers).Get("Sec-Websocket-Version") != "13" {
		t.Errorf("body %q, headers %v; want gorilla's refusal", f.Body, facadeHeader(f.Headers))
	}
	if s := status.Code(err); s != codes.OK {
		t.Errorf("status %v", s)
	}
}

// F-U4: Close unblocks a Write that waits for the host (net.ErrClosed), and
// the bytes it handed over still go out, then body_complete, then the RPC
// ends OK. Concurrent Writes are never interleaved.
func TestFacadeUCloseDuringWrite(t *testing.T) {
	bridgetest.LeakCheck(t)
	const size = 1 << 20
	wrote := make(chan error, 1)
	closeNow := make(chan struct{})
	p := facadeUpPinnedPlugin(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		var wg sync.WaitGroup
		for _, b := range []byte("ab") {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = conn.Write(bytes.Repeat([]byte{b}, 100<<10))
			}()
		}
		wg.Wait()
		go func() {
			_, err := conn.Write(facadeUpPattern(size))
			wrote <- err
		}()
		<-closeNow
	})
	stream, _ := bridgetest.OpenStreamOffering(t, p.Client, "websocket")
	if err := stream.Send(&bridgetest.RequestMsg{Init: facadeUpInit("websocket")}); err != nil {
		t.Fatal(err)
	}
	facadeUpWant101(t, stream, nil)
	// The two concurrent writes, each whole.
	first := facadeUpRecv(t, stream, 200<<10)
	a, b := bytes.Repeat([]byte("a"), 100<<10), bytes.Repeat([]byte("b"), 100<<10)
	if !bytes.Equal(first, append(a, b...)) && !bytes.Equal(first, append(b, a...)) {
		t.Error("concurrent writes were interleaved")
	}
	// Once the big Write's first chunk is here, it has started; the rest
	// cannot fit in the windows until the host receives again.
	m, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	close(closeNow)
	if err, ok := bridgetest.WaitFor(t, wrote, bridgetest.Promptly, "the blocked Write"); ok && !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write blocked across Close = %v, want net.ErrClosed", err)
	}
	msgs, err := facadeRecvAll(stream)
	if err != nil {
		t.Errorf("the RPC ended with %v, want OK", err)
	}
	got := m.GetBodyChunk()
	for _, m := range msgs {
		got = append(got, m.GetBodyChunk()...)
	}
	if want := facadeUpPattern(size); !bytes.Equal(got, want) {
		t.Errorf("bytes of the write after Close: %s", bridgetest.FirstDiff(got, want))
	}
	if len(msgs) == 0 || !msgs[len(msgs)-1].GetBodyComplete() {
		t.Error("no body_complete after the bytes")
	}
}

// The facade behind the generated host: gorilla and coder handlers, each
// with gorilla and coder clients, echo messages across the 64 KiB chunk
// line and close cleanly; a raw byte protocol half-closes both ways, with
// bytes the client sent along with its request.
func TestFacadeUThroughHost(t *testing.T) {
	env := func(t *testing.T, h http.HandlerFunc) *bridgetest.Env {
		return bridgetest.NewEnv(t, bridgetest.Config{Handler: h, SetupHost: func(h *pluginapiv1.ServeHTTPHost) {
			h.UpgradeProtocols = []string{"websocket", "x-echo-tcp"}
		}})
	}
	msgs := [][]byte{[]byte("hello"), {}, facadeUpPattern(200 << 10), facadeUpPattern(70000)}
	for _, server := range []struct {
		name    string
		handler http.HandlerFunc
	}{{"gorilla", facadeUpGorillaEcho}, {"coder", facadeUpCoderEcho}} {
		t.Run(server.name+"/gorilla-client", func(t *testing.T) {
			bridgetest.LeakCheck(t)
			e := env(t, server.handler)
			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			c, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(e.Server.URL, "http")+"/ws", nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			for _, m := range msgs {
				if err := c.WriteMessage(websocket.BinaryMessage, m); err != nil {
					t.Fatal(err)
				}
				if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, m) {
					t.Fatalf("echo of %d bytes: %v, %d bytes", len(m), err, len(got))
				}
			}
			if err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Errorf("after the close: %v, want the close 1000 echoed", err)
			}
		})
		t.Run(server.name+"/coder-client", func(t *testing.T) {
			bridgetest.LeakCheck(t)
			e := env(t, server.handler)
			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			c, _, err := coderws.Dial(ctx, "ws"+strings.TrimPrefix(e.Server.URL, "http")+"/ws", nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.CloseNow()
			c.SetReadLimit(32 << 20)
			for _, m := range msgs {
				if err := c.Write(ctx, coderws.MessageBinary, m); err != nil {
					t.Fatal(err)
				}
				if _, got, err := c.Read(ctx); err != nil || !bytes.Equal(got, m) {
					t.Fatalf("echo of %d bytes: %v, %d bytes", len(m), err, len(got))
				}
			}
			if err := c.Close(coderws.StatusNormalClosure, "bye"); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Run("raw-half-close", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		e := env(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Upgrade", "x-echo-tcp")
			w.Header().Set("Connection", "Upgrade")
			w.WriteHeader(http.StatusSwitchingProtocols)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Errorf("Hijack: %v", err)
				return
			}
			defer conn.Close()
			b, err := io.ReadAll(conn)
			if err != nil {
				t.Errorf("read: %v", err)
			}
			_, _ = conn.Write(append([]byte("echo:"), b...))
		})
		c, err := net.Dial("tcp", strings.TrimPrefix(e.Server.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(bridgetest.ExchangeTimeout))
		_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x-echo-tcp\r\n\r\nearly")
		// The half-close waits for the 101: a FIN before it makes net/http
		// cancel the request's context, which the host opens the stream
		// with (reported to the host's owner).
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("response %v (%v), want 101; host log:\n%s", res, err, e.HostLog)
		}
		_, _ = io.WriteString(c, " late")
		_ = c.(*net.TCPConn).CloseWrite()
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "echo:early late" {
			t.Errorf("client read %q (%v) after the 101, want %q", rest, err, "echo:early late")
		}
	})
}
