package conformance

// Cases U01–U11 of upgrade.md §6: each runs on the reference (ReverseProxy)
// and on the bridge, with the coder and the gorilla handler, and compares
// the transcripts.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	gws "github.com/gorilla/websocket"

	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// payload returns n deterministic bytes: printable ASCII for text (1),
// pseudo-random for binary (2), the same on every run so that transcripts
// of both setups hash alike.
func payload(typ, n int) []byte {
	b := make([]byte, n)
	if typ == 1 {
		const alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,"
		for i := range b {
			b[i] = alphabet[(i*7+i/65)%len(alphabet)]
		}
		return b
	}
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16), 42})
	_, _ = r.Read(b)
	return b
}

// echoOnce writes data and reads one message back, writing from another
// goroutine so that a large message cannot deadlock against the echo.
func echoOnce(ctx context.Context, c wsPeer, typ int, data []byte) (wsMsg, error) {
	werr := make(chan error, 1)
	go func() { werr <- c.Write(ctx, typ, data) }()
	rt, got, err := c.Read(ctx)
	if e := <-werr; err == nil {
		err = e
	}
	if err != nil {
		return wsMsg{}, err
	}
	if rt != typ || !bytes.Equal(got, data) {
		return newWSMsg(rt, got), fmt.Errorf("echo differs: type %d, %s", rt, bridgetest.FirstDiff(got, data))
	}
	return newWSMsg(rt, got), nil
}

// coderHandler and gorillaHandler make plain echo handlers.
func echoHandler(lib wsLib) func() *wsHandler {
	return func() *wsHandler { return &wsHandler{Lib: lib} }
}

// finish closes the client with 1000 "done" and completes the transcript
// with both ends.
func finish(t *testing.T, c *wsClient, h *wsHandler, tr wsTranscript) wsTranscript {
	t.Helper()
	tr.Head = c.Head
	tr.ClientEnd = classify(c.Close(1000, "done"))
	s := h.Next(t)
	tr.Server, tr.ServerEnd = s.Msgs, s.End
	return tr
}

// TestWSU01Echo: text and binary echo at every length encoding, and
// messages crossing the 64 KiB chunk line.
func TestWSU01Echo(t *testing.T) {
	sizes := []int{0, 125, 126, 65535, 65536, 1 << 20}
	for _, lib := range wsLibs {
		t.Run(string(lib), func(t *testing.T) {
			wsSame(t, echoHandler(lib), wsHostConfig{}, func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript {
				ctx := wsCtx(t)
				c := mustDial(t, ctx, lib, e, "/ws/u01", wsDialOptions{})
				var tr wsTranscript
				for _, typ := range []int{1, 2} {
					for _, n := range sizes {
						m, err := echoOnce(ctx, c, typ, payload(typ, n))
						if err != nil {
							t.Fatalf("echo %d bytes of type %d: %v", n, typ, err)
						}
						tr.Client = append(tr.Client, m)
					}
				}
				// One 16 MiB binary message: the 64-bit length and 256
				// chunks each way. With the coder client only: gorilla masks
				// in plain Go, slow under -race, and 9.x echoes 1 MiB
				// through gorilla handlers.
				if lib == coderLib {
					m, err := echoOnce(ctx, c, 2, payload(2, 16<<20))
					if err != nil {
						t.Fatalf("echo 16 MiB: %v", err)
					}
					tr.Client = append(tr.Client, m)
				}
				return finish(t, c, h, tr)
			})
		})
	}
}

// TestWSU02Fragmented: 1 MiB in 4 KiB fragments with pings interleaved
// from a second goroutine; and raw fragments, the last sent only once the
// handler has the first (the bridge does not coalesce).
func TestWSU02Fragmented(t *testing.T) {
	for _, lib := range wsLibs {
		t.Run(string(lib)+"/4KiB", func(t *testing.T) {
			wsSame(t, echoHandler(lib), wsHostConfig{}, func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript {
				ctx := wsCtx(t)
				// The gorilla client streams in frames of its write
				// buffer: 4 KiB.
				c := mustDial(t, ctx, gorillaLib, e, "/ws/u02", wsDialOptions{WriteBufferSize: 4096})
				gc := c.wsPeer.(gorillaPeer)
				data := payload(2, 1<<20)
				const pings = 20
				werr := make(chan error, 1)
				go func() {
					var wg sync.WaitGroup
					wg.Go(func() {
						for range pings {
							if err := gc.c.WriteControl(gws.PingMessage, []byte("p"), time.Now().Add(5*time.Second)); err != nil {
								return
							}
							time.Sleep(time.Millisecond)
						}
					})
					gc.wmu.Lock()
					w, err := gc.c.NextWriter(gws.BinaryMessage)
					if err == nil {
						for rest := data; len(rest) > 0 && err == nil; rest = rest[min(len(rest), 1000):] {
							_, err = w.Write(rest[:min(len(rest), 1000)])
						}
						if cerr := w.Close(); err == nil {
							err = cerr
						}
					}
					gc.wmu.Unlock()
					wg.Wait()
					werr <- err
				}()
				typ, got, err := c.Read(ctx)
				if werr := <-werr; err == nil {
					err = werr
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("echo: %s", bridgetest.FirstDiff(got, data))
				}
				tr := wsTranscript{Client: []wsMsg{newWSMsg(typ, got)}}
				// The close handshake reads up to the server's close frame,
				// so every pong sent before it has been seen.
				tr = finish(t, c, h, tr)
				return tr.with(fmt.Sprintf("pongs %d of %d", len(gc.pongs), pings))
			})
		})
		t.Run(string(lib)+"/raw", func(t *testing.T) {
			firsts := make(chan struct{}, 1)
			newHandler := func() *wsHandler {
				return &wsHandler{Lib: lib, OnFirstBytes: func() { firsts <- struct{}{} }}
			}
			wsSame(t, newHandler, wsHostConfig{}, func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript {
				c := rawDial(t, e, []byte(handshake(e.Addr, "/ws/u02", "")))
				if c.Resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("status %d", c.Resp.StatusCode)
				}
				parts := []string{"frag-one ", "frag-two ", "frag-three ", "frag-four"}
				if err := c.Send(rawFrame{Opcode: wsOpText, Payload: []byte(parts[0])}); err != nil {
					t.Fatal(err)
				}
				if _, ok := bridgetest.WaitFor(t, firsts, 10*time.Second, "the handler to read the first fragment before the last is sent"); !ok {
					t.FailNow()
				}
				for i, p := range parts[1:] {
					time.Sleep(10 * time.Millisecond)
					if err := c.Send(rawFrame{Fin: i == len(parts)-2, Opcode: wsOpCont, Payload: []byte(p)}); err != nil {
						t.Fatal(err)
					}
				}
				// The echo may come in any number of frames: join them.
				var msg []byte
				for {
					f, err := c.ReadFrame()
					if err != nil {
						t.Fatal(err)
					}
					msg = append(msg, f.Payload...)
					if f.Fin {
						break
					}
				}
				if err := c.Send(frame(wsOpClose, closePayload(1000, "done"))); err != nil {
					t.Fatal(err)
				}
				frames, code, end := c.ReadAll(5*time.Second, true)
				s := h.Next(t)
				return wsTranscript{
					Head: c.Head, Client: []wsMsg{newWSMsg(1, msg)}, Server: s.Msgs, ServerEnd: s.End,
					ClientEnd: wsEnd{Class: end, Code: code}, Extra: frames,
				}
			})
		})
	}
}

// TestWSU03PingPong: 100 client pings, each answered; the handler pings 20
// times, 50 ms apart, and gets every pong.
func TestWSU03PingPong(t *testing.T) {
	for _, lib := range wsLibs {
		t.Run(string(lib), func(t *testing.T) {
			const serverPings = 20
			newHandler := func() *wsHandler {
				return &wsHandler{Lib: lib, Script: func(ctx context.Context, p wsPeer, rec *wsRecord) error {
					// A read loop answers the client's pings and sees the
					// pongs; it ends with the client's close.
					readErr := make(chan error, 1)
					go func() {
						for {
							typ, data, err := p.Read(ctx)
							if err != nil {
								readErr <- err
								return
							}
							rec.add(newWSMsg(typ, data))
						}
					}()
					pongs := 0
					for range serverPings {
						time.Sleep(50 * time.Millisecond)
						pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
						err := p.Ping(pctx)
						cancel()
						if err != nil {
							break
						}
						pongs++
					}
					// Tell the client how many pongs arrived.
					if err := p.Write(ctx, 1, fmt.Appendf(nil, "pongs %d", pongs)); err != nil {
						return err
					}
					return <-readErr
				}}
			}
			wsSame(t, newHandler, wsHostConfig{}, func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript {
				ctx := wsCtx(t)
				var pings atomic.Int32
				d := &headDialer{}
				tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
				c, _, err := websocket.Dial(ctx, e.WS("/ws/u03"), &websocket.DialOptions{
					HTTPClient:     &http.Client{Transport: tr},
					OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true },
				})
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				msgs := make(chan []byte, 1)
				readErr := make(chan error, 1)
				go func() {
					for {
						_, data, err := c.Read(ctx)
						if err != nil {
							readErr <- err
							return
						}
						msgs <- data
					}
				}()
				for i := range 100 {
					pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					err := c.Ping(pctx)
					cancel()
					if err != nil {
						t.Fatalf("client ping %d: %v", i, err)
					}
				}
				report, ok := bridgetest.WaitFor(t, msgs, 20*time.Second, "the handler's pong count")
				if !ok {
					t.FailNow()
				}
				trn := wsTranscript{
					Head:  d.Conn().Head(),
					Extra: []string{"client pongs 100", string(report), fmt.Sprintf("pings seen by the client %d", pings.Load())},
				}
				trn.Client = append(trn.Client, newWSMsg(1, report))
				trn.ClientEnd = classify(c.Close(websocket.StatusNormalClosure, "done"))
				<-readErr
				s := h.Next(t)
				trn.Server, trn.ServerEnd = s.Msgs, s.End
				if string(report) != fmt.Sprintf("pongs %d", serverPings) {
					t.Errorf("handler reported %q, want %d pongs", report, serverPings)
				}
				return trn
			})
		})
	}
}

// TestWSU04Close: the close handshake started by either side, with the
// codes and reasons both sides see, and the connection closed promptly.
func TestWSU04Close(t *testing.T) {
	reasons := []string{"", "bye", strings.Repeat("r", 123)}
	for _, lib := range wsLibs {
		for _, by := range []string{"client", "server"} {
			for _, code := range []int{1000, 1001, 3000, 4999} {
				for _, reason := range reasons {
					name := fmt.Sprintf("%s/%s/%d/%d", lib, by, code, len(reason))
					t.Run(name, func(t *testing.T) {
						newHandler := func() *wsHandler {
							h := &wsHandler{Lib: lib}
							if by == "server" {
								h.Script = func(ctx context.Context, p wsPeer, rec *wsRecord) error {
									// Say hello, then close.
									if err := p.Write(ctx, 1, []byte("hello")); err != nil {
										return err
									}
									return p.Close(code, reason)
								}
							}
							return h
						}
						wsSame(t, newHandler, wsHostConfig{}, func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript {
							ctx := wsCtx(t)
							c := mustDial(t, ctx, lib, e, "/ws/u04", wsDialOptions{})
							tr := wsTranscript{Head: c.Head}
							start := time.Now()
							if by == "client" {
								tr.ClientEnd = classify(c.Close(code, reason))
							} else {
								typ, data, err := c.Read(ctx)
								if err != nil {
									t.Fatal(err)
								}
								tr.Client = append(tr.Client, newWSMsg(typ, data))
								_, _, err = c.Read(ctx)
								tr.ClientEnd = classify(err)
								_ = c.CloseNow()
							}
							s := h.Next(t)
							if d := time.Since(start); d > bridgetest.Promptly {
								t.Errorf("the session took %v to end after the close, want within %v", d, bridgetest.Promptly)
							}
							tr.Server, tr.ServerEnd = s.Msgs, s.End
							// The client's socket is closed.
							_ = c.Conn.SetReadDeadline(time.Now().Add(bridgetest.Promptly))
							if _, err := c.Conn.Conn.Read(make([]byte, 1)); err == nil {
								t.Errorf("client socket still delivers data after the close")
							}
							return tr
						})
					})
				}
			}
		}
	}
}

// TestWSU08Pipelined: the upgrade request and the first frame in one write.
// The bridge delivers the frame; ReverseProxy loses it (golang/go#80875):
// an asserted deviation.
func TestWSU08Pipelined(t *testing.T) {
	for _, lib := range wsLibs {
		t.Run(string(lib), func(t *testing.T) {
			proxy, bridge := wsCase(t, echoHandler(lib), wsHostConfig{}, func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript {
				req := appendFrame([]byte(handshake(e.Addr, "/ws/u08", "")), frame(wsOpText, "early bird"))
				c := rawDial(t, e, req)
				if c.Resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("status %d", c.Resp.StatusCode)
				}
				// A ping after the 101: its pong comes after the echo, if
				// there is one.
				if err := c.Send(frame(wsOpPing, "after")); err != nil {
					t.Fatal(err)
				}
				// Data frames are joined into messages: a streaming echo's
				// framing depends on how the bytes arrived.
				var frames []string
				var msg []byte
				var msgOp byte
				for {
					f, err := c.ReadFrame()
					if err != nil {
						t.Fatal(err)
					}
					switch {
					case f.Opcode >= wsOpClose:
						frames = append(frames, frameString(f))
					default:
						if f.Opcode != wsOpCont {
							msgOp = f.Opcode
						}
						msg = append(msg, f.Payload...)
						if f.Fin {
							frames = append(frames, frameString(rawFrame{Fin: true, Opcode: msgOp, Payload: msg}))
							msg = nil
						}
					}
					if f.Opcode == wsOpPong {
						break
					}
				}
				if err := c.Send(frame(wsOpClose, closePayload(1000, ""))); err != nil {
					t.Fatal(err)
				}
				more, code, end := c.ReadAll(5*time.Second, true)
				s := h.Next(t)
				return wsTranscript{Head: c.Head, Server: s.Msgs, ServerEnd: s.End, ClientEnd: wsEnd{Class: end, Code: code}, Extra: append(frames, more...)}
			})
			echo := frameString(rawFrame{Fin: true, Opcode: wsOpText, Payload: []byte("early bird")})
			if proxy != nil && slices.Contains(proxy.Extra, echo) {
				t.Errorf("the proxy echoed the pipelined frame; golang/go#80875 fixed? transcript:\n%v", proxy)
			}
			if bridge != nil {
				if len(bridge.Extra) == 0 || bridge.Extra[0] != echo {
					t.Errorf("the bridge did not echo the pipelined frame first:\n%v", bridge)
				}
				// Apart from the echo (and the handler's record of it),
				// the transcripts are equal.
				if proxy != nil {
					b := *bridge
					b.Extra = slices.Delete(slices.Clone(b.Extra), 0, 1)
					b.Server = slices.DeleteFunc(slices.Clone(b.Server), func(m wsMsg) bool { return m == newWSMsg(1, []byte("early bird")) })
					compareTranscripts(t, *proxy, b)
				}
			}
		})
	}
}

// TestWSU09Handshake: a chosen subprotocol, permessage-deflate (compressed
// bytes on the wire) and Set-Cookie on the 101, with equal heads.
func TestWSU09Handshake(t *testing.T) {
	for _, lib := range wsLibs {
		t.Run(string(lib), func(t *testing.T) {
			newHandler := func() *wsHandler {
				return &wsHandler{
					Lib: lib, Subprotocols: []string{"chat.v1"}, Compress: true,
					ResponseHeader: http.Header{"Set-Cookie": {"session=s3cr3t; Path=/; HttpOnly"}},
				}
			}
			wsSame(t, newHandler, wsHostConfig{}, func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript {
				ctx := wsCtx(t)
				c := mustDial(t, ctx, lib, e, "/ws/u09", wsDialOptions{Subprotocols: []string{"chat.v2", "chat.v1"}, Compress: true})
				tr := wsTranscript{Extra: []string{"subprotocol " + c.Subprotocol()}}
				if c.Subprotocol() != "chat.v1" {
					t.Errorf("subprotocol %q, want chat.v1", c.Subprotocol())
				}
				data := bytes.Repeat([]byte("compress me please "), 64<<10/19)
				before := c.Conn.n.Load()
				m, err := echoOnce(ctx, c, 1, data)
				if err != nil {
					t.Fatal(err)
				}
				tr.Client = append(tr.Client, m)
				if got := c.Conn.n.Load() - before; got > int64(len(data)/4) {
					t.Errorf("client read %d bytes for a %d-byte compressible message: not compressed", got, len(data))
				}
				if !strings.Contains(c.Head, "permessage-deflate") || !strings.Contains(c.Head, "Set-Cookie: session=s3cr3t") {
					t.Errorf("head lacks the extension or the cookie:\n%s", c.Head)
				}
				return finish(t, c, h, tr)
			})
		})
	}
}

// rawResponse is a raw client's view of a non-101 answer.
type rawResponse struct {
	Status int
	Header http.Header // without Date and Connection
	Conn   string      // the Connection header
	Body   string
	Closed bool // the server closed the connection after the response
}

// rawExchange writes req and reads one response; if checkClosed, it also
// waits (at most Promptly) for the server to close the connection.
func rawExchange(t *testing.T, e *wsEnv, req string, checkClosed bool) rawResponse {
	t.Helper()
	c := rawDial(t, e, []byte(req))
	resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(c.Head), c.R)), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	r := rawResponse{Status: resp.StatusCode, Header: resp.Header.Clone(), Conn: resp.Header.Get("Connection"), Body: string(body)}
	if resp.Close {
		r.Conn = "close"
	}
	r.Header.Del("Date")
	r.Header.Del("Connection")
	if checkClosed {
		_ = c.Conn.SetReadDeadline(time.Now().Add(bridgetest.Promptly))
		_, err := c.R.ReadByte()
		r.Closed = err == io.EOF
	}
	return r
}

// TestWSU10Refusals: the libraries' refusals reach the client as they do
// through the proxy, except that the bridge adds Connection: close and
// closes the connection.
func TestWSU10Refusals(t *testing.T) {
	cases := []struct {
		name, req string
	}{
		{"bad-origin", "GET /ws/u10 HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n\r\n"},
		{"missing-key", "GET /ws/u10 HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"},
		{"version-12", "GET /ws/u10 HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Version: 12\r\n\r\n"},
		{"post", "POST /ws/u10 HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"},
		{"no-connection-token", "GET /ws/u10 HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nSec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"},
	}
	for _, lib := range wsLibs {
		for _, tc := range cases {
			t.Run(string(lib)+"/"+tc.name, func(t *testing.T) {
				var got = map[wsSetup]rawResponse{}
				wsCase(t, echoHandler(lib), wsHostConfig{}, func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript {
					r := rawExchange(t, e, fmt.Sprintf(tc.req, e.Addr), e.Setup == bridgeSetup)
					// coder names the Host in its refusal.
					r.Body = strings.ReplaceAll(r.Body, e.Addr, "<host>")
					if r.Status == http.StatusSwitchingProtocols {
						t.Fatalf("101 for a refused handshake")
					}
					if s := h.Next(t); s.Err == nil {
						t.Errorf("handler accepted")
					}
					got[e.Setup] = r
					return wsTranscript{}
				})
				p, okp := got[proxySetup]
				b, okb := got[bridgeSetup]
				if !okp || !okb {
					return
				}
				if p.Status != b.Status || p.Body != b.Body || !equalHeader(p.Header, b.Header) {
					t.Errorf("responses differ\nproxy:  %d %v %q\nbridge: %d %v %q", p.Status, p.Header, p.Body, b.Status, b.Header, b.Body)
				}
				if b.Conn != "close" || !b.Closed {
					t.Errorf("bridge: Connection %q, closed %v; want close and closed", b.Conn, b.Closed)
				}
			})
		}
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestWSU11Security: requests that must not become upgrades reach the
// plugin as plain requests, without Upgrade, and get no 101.
func TestWSU11Security(t *testing.T) {
	cases := []struct {
		name, req  string
		eligible   bool // the last: an upgrade, with Authorization kept
		wantHeader string
	}{
		{name: "h2c", req: "GET /u11 HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"},
		{name: "websocket-and-h2c", req: "GET /u11 HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\n\r\n"},
		{name: "with-body", req: "POST /u11 HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "http10", req: "GET /u11 HTTP/1.0\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
		{name: "connection-names-authorization", req: "GET /u11 HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade, Authorization\r\nUpgrade: websocket\r\nAuthorization: Bearer t0ken\r\n\r\n", eligible: true, wantHeader: "Authorization"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			seen := make(chan http.Header, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				seen <- r.Header.Clone()
				_, _ = io.WriteString(w, "plain")
			})
			e := startWS(t, bridgeSetup, h, wsHostConfig{})
			r := rawExchange(t, e, fmt.Sprintf(tc.req, e.Addr), true)
			hdr, ok := bridgetest.WaitFor(t, seen, 5*time.Second, "the plugin's request")
			if !ok {
				t.FailNow()
			}
			if r.Status != http.StatusOK || r.Body != "plain" {
				t.Errorf("status %d body %q, want 200 plain", r.Status, r.Body)
			}
			if tc.eligible {
				if hdr.Get("Upgrade") != "websocket" || hdr.Get(tc.wantHeader) == "" {
					t.Errorf("plugin saw %v; want Upgrade: websocket and %s kept", hdr, tc.wantHeader)
				}
			} else {
				if hdr.Get("Upgrade") != "" || hdr.Get("Http2-Settings") != "" || headerHasToken(hdr, "Connection", "upgrade") {
					t.Errorf("plugin saw upgrade headers: %v", hdr)
				}
			}
			if r.Conn != "close" || !r.Closed {
				t.Errorf("Connection %q, closed %v; want close and closed", r.Conn, r.Closed)
			}
		})
	}
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
