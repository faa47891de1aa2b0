package conformance

// Bad input never loses data silently: for each way a peer can end an
// exchange early, the other side sees an error, never a short body marked
// complete (spec invariant 16, H-Q6, H-F3, H-F8, F-B3, F-B4).
//
// Plugin ends early → the HTTP client of the host must see an error.
// Host ends early → the plugin's handler must see a body read error.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// truncRecvLimit is the host's gRPC receive limit in the tests of
// oversized messages.
const truncRecvLimit = 256 << 10

// truncClientSawError asserts that the client did not get a complete
// response: it got no response at all, or a body read error after a prefix
// of sent. If flushed, the status line was on the wire before the failure,
// and the error must be the protocol's abort.
func truncClientSawError(t *testing.T, hv bridgetest.HTTPVersion, o bridgetest.Observation, sent string, flushed bool) {
	t.Helper()
	switch {
	case o.Err == bridgetest.ErrNone:
		t.Errorf("client saw a complete response: %s; want an error, the plugin failed after %q", o, sent)
		return
	case o.Err == bridgetest.ErrNoResponse:
		if flushed {
			t.Errorf("client got no response (%s); the status line and %q had been flushed", o.ErrText, sent)
		}
		return
	}
	if !strings.HasPrefix(sent, string(o.Body)) {
		t.Errorf("client body %q is not a prefix of the %q the plugin sent", o.Body, sent)
	}
	if !flushed {
		return
	}
	if hv == bridgetest.HTTP1 && o.Err != bridgetest.ErrUnexpectedEOF {
		t.Errorf("HTTP/1 client: %s; want unexpected EOF", o)
	}
	if hv == bridgetest.HTTP2 && o.Err != bridgetest.ErrReset {
		t.Errorf("HTTP/2 client: %s; want a stream reset", o)
	}
}

// truncGet does a bounded GET of the env's "/" and observes it.
func truncGet(t *testing.T, env *bridgetest.Env) bridgetest.Observation {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
	defer cancel()
	return bridgetest.Observe(env.Client, env.Request(t, ctx, http.MethodGet, "/", nil))
}

// ---------------------------------------------------------------------------
// The plugin ends early.

func TestTruncationPluginEndsEarly(t *testing.T) {
	hello := &bridgetest.ResponseMsg{Init: bridgetest.RespInit(200, "Content-Type", "text/plain"), BodyChunk: []byte("hello"), Flush: true}
	unflushed := &bridgetest.ResponseMsg{Init: bridgetest.RespInit(200, "Content-Type", "text/plain"), BodyChunk: []byte("hello")}
	more := bridgetest.Resp("more", false, false)
	rpcError := func(context.Context) error { return status.Error(codes.Internal, "plugin failed") }
	huge := &bridgetest.ResponseMsg{BodyChunk: make([]byte, truncRecvLimit+1)}
	for _, tc := range []struct {
		name    string
		msgs    []*bridgetest.ResponseMsg
		end     func(context.Context) error
		sent    string
		flushed bool
	}{
		{"rpc-error-mid-body", []*bridgetest.ResponseMsg{hello, more}, rpcError, "hellomore", true},
		{"rpc-error-before-flush", []*bridgetest.ResponseMsg{unflushed}, rpcError, "hello", false},
		{"clean-end-without-body-complete", []*bridgetest.ResponseMsg{hello, more}, nil, "hellomore", true},
		{"clean-end-before-flush", []*bridgetest.ResponseMsg{unflushed}, nil, "hello", false},
		{"clean-end-after-empty-flush", []*bridgetest.ResponseMsg{hello, bridgetest.Resp("", true, false)}, nil, "hello", true},
		{"oversized-message", []*bridgetest.ResponseMsg{hello, huge}, nil, "hello", true},
		{"rpc-canceled-status", []*bridgetest.ResponseMsg{hello}, func(context.Context) error { return status.Error(codes.Canceled, "context canceled") }, "hello", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := bridgetest.PluginOptions{DialOptions: []grpc.DialOption{
				grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(truncRecvLimit)),
			}}
			for _, hv := range bridgetest.HTTPVersions {
				t.Run(string(hv), func(t *testing.T) {
					bridgetest.LeakCheck(t)
					plugin := &bridgetest.ScriptedPlugin{Script: bridgetest.SendThen(tc.msgs, tc.end)}
					env := bridgetest.NewEnv(t, bridgetest.Config{HTTPVersion: hv, Plugin: plugin, PluginOptions: opts})
					truncClientSawError(t, hv, truncGet(t, env), tc.sent, tc.flushed)
				})
			}
			t.Run("Forward", func(t *testing.T) {
				bridgetest.LeakCheck(t)
				plugin := &bridgetest.ScriptedPlugin{Script: bridgetest.SendThen(tc.msgs, tc.end)}
				env := bridgetest.NewEnv(t, bridgetest.Config{Plugin: plugin, PluginOptions: opts})
				rec, err := env.Forward(t, "/")
				if !errors.Is(err, pluginapiv1.ErrServeHTTPAborted) {
					t.Errorf("Forward error = %v, want one wrapping ErrServeHTTPAborted", err)
				}
				if !strings.HasPrefix(tc.sent, rec.Body.String()) {
					t.Errorf("recorder body %q is not a prefix of %q", rec.Body, tc.sent)
				}
			})
		})
	}
}

// An oversized first message, or an RPC error before any message, is a
// failure before the response started: a complete 502 (H-S5b), never the
// plugin's status with a short body.
func TestTruncationPluginFailsBeforeResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		msgs []*bridgetest.ResponseMsg
		end  func(context.Context) error
	}{
		{"oversized-first-message", []*bridgetest.ResponseMsg{{Init: bridgetest.RespInit(200), BodyChunk: make([]byte, truncRecvLimit+1), BodyComplete: true}}, nil},
		{"rpc-error-first", nil, func(context.Context) error { return status.Error(codes.Internal, "plugin failed") }},
		{"clean-end-first", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, hv := range bridgetest.HTTPVersions {
				t.Run(string(hv), func(t *testing.T) {
					bridgetest.LeakCheck(t)
					plugin := &bridgetest.ScriptedPlugin{Script: bridgetest.SendThen(tc.msgs, tc.end)}
					env := bridgetest.NewEnv(t, bridgetest.Config{HTTPVersion: hv, Plugin: plugin, PluginOptions: bridgetest.PluginOptions{
						DialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(truncRecvLimit))},
					}})
					o := truncGet(t, env)
					if o.Err != bridgetest.ErrNone || o.Status != http.StatusBadGateway {
						t.Errorf("client: %s; want a complete 502", o)
					}
				})
			}
		})
	}
}

// The real facade, configured to send chunks larger than the host accepts:
// the host's receive fails mid-body and the client must see an error.
func TestTruncationFacadeChunksOverHostLimit(t *testing.T) {
	payload := sweepPayload(2<<20, 5)
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			facade, _ := bridgetest.NewFacade(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "hello")
				w.(http.Flusher).Flush()
				_, _ = w.Write(payload)
			}))
			facade.ChunkSize = 1 << 20
			env := bridgetest.NewEnv(t, bridgetest.Config{
				HTTPVersion: hv,
				Plugin:      &bridgetest.FacadeServer{Bridge: facade},
				PluginOptions: bridgetest.PluginOptions{DialOptions: []grpc.DialOption{
					grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(truncRecvLimit)),
				}},
			})
			truncClientSawError(t, hv, truncGet(t, env), "hello"+string(payload), true)
			if !strings.Contains(env.HostLog.String(), "ResourceExhausted") {
				t.Logf("host log (expected a ResourceExhausted receive):\n%s", env.HostLog)
			}
		})
	}
}

// The plugin's process dies mid-body (its gRPC server stops): the client
// must see the abort.
func TestTruncationPluginDies(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		for _, tr := range bridgetest.Transports {
			t.Run(string(hv)+"/"+string(tr), func(t *testing.T) {
				bridgetest.LeakCheck(t)
				plugin := &bridgetest.ScriptedPlugin{Script: bridgetest.SendThen(
					[]*bridgetest.ResponseMsg{{Init: bridgetest.RespInit(200), BodyChunk: []byte("hello"), Flush: true}},
					func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
				)}
				env := bridgetest.NewEnv(t, bridgetest.Config{HTTPVersion: hv, Transport: tr, Plugin: plugin})
				ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
				defer cancel()
				resp, err := env.Client.Do(env.Request(t, ctx, http.MethodGet, "/", nil))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				first := make([]byte, 5)
				if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "hello" {
					t.Fatalf("first bytes %q, %v; want %q", first, err, "hello")
				}
				env.Plugin.Stop()
				rest, err := io.ReadAll(resp.Body)
				o := bridgetest.Observation{Status: resp.StatusCode, Body: append(first, rest...), Err: bridgetest.ClassifyErr(err)}
				if err != nil {
					o.ErrText = err.Error()
				}
				truncClientSawError(t, hv, o, "hello", true)
			})
		}
	}
}

// ---------------------------------------------------------------------------
// The host ends early (scripted host into the real facade).

// truncRead is what the plugin's handler read of its request body.
type truncRead struct {
	body   string
	err    error // nil after a clean io.EOF
	ctxErr error // the request context's error right after the read
}

// truncReader is a handler that reads its whole body, reports it and answers.
func truncReader(seen chan<- truncRead) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		seen <- truncRead{body: string(body), err: err, ctxErr: r.Context().Err()}
		if err != nil {
			http.Error(w, "incomplete request body", http.StatusBadRequest)
			return
		}
		_, _ = fmt.Fprintf(w, "read %d bytes", len(body))
	}
}

// truncServer serves the facade around h and reports each return of
// Serve, so that a test can tell "the handler saw an error" from "the
// handler never ran" (a request whose client vanished before the plugin
// received it is legitimately dropped).
type truncServer struct {
	bridgetest.FacadeServer
	served chan error
}

func newTruncServer(h http.Handler) *truncServer {
	facade, _ := bridgetest.NewFacade(h)
	return &truncServer{FacadeServer: bridgetest.FacadeServer{Bridge: facade}, served: make(chan error, 4)}
}

func (s *truncServer) ServeHTTP(stream bridgetest.ServerStream) error {
	err := s.FacadeServer.ServeHTTP(stream)
	s.served <- err
	return err
}

// handlerRead waits for the plugin to finish serving and returns what the
// handler read, or false if the handler never ran.
func (s *truncServer) handlerRead(t *testing.T, seen <-chan truncRead) (truncRead, bool) {
	t.Helper()
	err, ok := bridgetest.WaitFor(t, s.served, bridgetest.Promptly, "the plugin to finish serving")
	if !ok {
		return truncRead{}, false
	}
	select {
	case got := <-seen:
		return got, true
	default:
		t.Logf("the handler never ran: the stream ended first (%v)", err)
		return truncRead{}, false
	}
}

// truncWantReadError asserts that the handler read a prefix of sent and then
// an error (wantErr, if not nil).
func truncWantReadError(t *testing.T, got truncRead, sent string, wantErr error) {
	t.Helper()
	if got.err == nil {
		t.Errorf("handler read %q and a clean end of body; want an error after a prefix of %q", got.body, sent)
		return
	}
	if errors.Is(got.err, io.EOF) {
		t.Errorf("handler's read error is io.EOF; want a non-EOF error")
	}
	if wantErr != nil && !errors.Is(got.err, wantErr) {
		t.Errorf("handler's read error = %v, want %v", got.err, wantErr)
	}
	if !strings.HasPrefix(sent, got.body) {
		t.Errorf("handler read %q, not a prefix of the %q sent", got.body, sent)
	}
}

func truncInit(contentLength int64) *pluginapiv1.ServeHTTPRequestInit {
	init := bridgetest.ReqInit(http.MethodPost, "/upload")
	init.ContentLength = contentLength
	return init
}

func TestTruncationHostEndsEarly(t *testing.T) {
	for _, tc := range []struct {
		name    string
		msgs    []*bridgetest.RequestMsg
		sent    string
		wantErr error
	}{
		{
			name:    "half-close-without-body-complete",
			msgs:    []*bridgetest.RequestMsg{{Init: truncInit(-1)}, {BodyChunk: []byte("ab")}},
			sent:    "ab",
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "half-close-after-init-with-chunk",
			msgs:    []*bridgetest.RequestMsg{{Init: truncInit(-1), BodyChunk: []byte("ab")}},
			sent:    "ab",
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "half-close-short-of-content-length",
			msgs:    []*bridgetest.RequestMsg{{Init: truncInit(10)}, {BodyChunk: []byte("abc")}},
			sent:    "abc",
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "content-length-longer-than-sent",
			msgs:    []*bridgetest.RequestMsg{{Init: truncInit(10)}, {BodyChunk: []byte("abc"), BodyComplete: true}},
			sent:    "abc",
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "content-length-longer-than-sent-in-first-message",
			msgs:    []*bridgetest.RequestMsg{{Init: truncInit(10), BodyChunk: []byte("abc"), BodyComplete: true}},
			sent:    "abc",
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "content-length-without-any-body",
			msgs:    []*bridgetest.RequestMsg{{Init: truncInit(10), BodyComplete: true}},
			sent:    "",
			wantErr: io.ErrUnexpectedEOF,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			seen := make(chan truncRead, 1)
			plugin := bridgetest.StartFacade(t, truncReader(seen))
			msgs, err := bridgetest.ScriptedHost(t, plugin.Client, tc.msgs...)
			if got, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "the handler"); ok {
				truncWantReadError(t, got, tc.sent, tc.wantErr)
			}
			if err == nil && len(msgs) > 0 {
				if f := bridgetest.CheckFraming(t, msgs, bridgetest.ChunkMax); f.Status == 200 {
					t.Errorf("facade answered 200 %q to a truncated request", f.Body)
				}
			}
		})
	}
}

// The host cancels its stream mid-body: reads fail with a non-EOF error
// and the request context ends.
func TestTruncationHostCancelsMidBody(t *testing.T) {
	bridgetest.LeakCheck(t)
	seen := make(chan truncRead, 1)
	progress := make(chan struct{})
	plugin := bridgetest.StartFacade(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 2)
		n, err := io.ReadFull(r.Body, buf)
		close(progress)
		if err != nil {
			seen <- truncRead{body: string(buf[:n]), err: err}
			return
		}
		rest, err := io.ReadAll(r.Body)
		<-r.Context().Done()
		seen <- truncRead{body: string(buf) + string(rest), err: err, ctxErr: r.Context().Err()}
	}))
	stream, cancel := bridgetest.OpenStream(t, plugin.Client)
	for _, m := range []*bridgetest.RequestMsg{{Init: truncInit(-1)}, {BodyChunk: []byte("ab")}, {BodyChunk: []byte("cd")}} {
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	bridgetest.WaitFor(t, progress, bridgetest.Promptly, "the handler's first read")
	cancel()
	if got, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "the handler to see the cancel"); ok {
		truncWantReadError(t, got, "abcd", nil)
		if got.ctxErr == nil {
			t.Error("request context not done after the host cancelled")
		}
	}
}

// A request larger than the plugin's gRPC receive limit: the handler gets
// an error, not the body so far marked complete.
func TestTruncationHostOversizedMessage(t *testing.T) {
	bridgetest.LeakCheck(t)
	seen := make(chan truncRead, 1)
	facade, _ := bridgetest.NewFacade(truncReader(seen))
	plugin := bridgetest.StartPluginWith(t, bridgetest.Bufconn, &bridgetest.FacadeServer{Bridge: facade}, bridgetest.PluginOptions{
		ServerOptions: []grpc.ServerOption{grpc.MaxRecvMsgSize(truncRecvLimit)},
	})
	stream, _ := bridgetest.OpenStream(t, plugin.Client)
	for _, m := range []*bridgetest.RequestMsg{
		{Init: truncInit(-1), BodyChunk: []byte("ab")},
		{BodyChunk: make([]byte, truncRecvLimit+1), BodyComplete: true},
	} {
		if err := stream.Send(m); err != nil {
			break // the server may already have failed the stream
		}
	}
	if got, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "the handler"); ok {
		truncWantReadError(t, got, "ab", nil)
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			break
		}
		if m.GetBodyComplete() && m.GetInit().GetStatusCode() == 200 {
			t.Error("facade answered 200 to a request it could not receive")
		}
	}
}

// ---------------------------------------------------------------------------
// The HTTP client ends early (real host and facade end to end).

// A raw HTTP/1.1 client ends its upload early with a clean FIN: the host's
// body read fails with unexpected EOF, and the plugin must not see the
// bytes so far as a complete body.
func TestTruncationClientEndsUploadEarly(t *testing.T) {
	for _, tc := range []struct {
		name string
		head string
		body string
		sent string
	}{
		{"chunked", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n", "hello"},
		{"content-length-longer-than-sent", "Content-Length: 1000\r\n", "0123456789", "0123456789"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			seen := make(chan truncRead, 1)
			plugin := newTruncServer(truncReader(seen))
			env := bridgetest.NewEnv(t, bridgetest.Config{Plugin: plugin})
			conn, err := net.DialTimeout("tcp", env.Server.Listener.Addr().String(), bridgetest.Promptly)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(bridgetest.ExchangeTimeout))
			if _, err := fmt.Fprintf(conn, "POST /upload HTTP/1.1\r\nHost: test\r\n%s\r\n%s", tc.head, tc.body); err != nil {
				t.Fatal(err)
			}
			if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if got, ok := plugin.handlerRead(t, seen); ok {
				truncWantReadError(t, got, tc.sent, nil)
			}
			// Whatever the client gets back, it is not a 200.
			if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					t.Errorf("client got 200 for a request it did not finish")
				}
			}
		})
	}
}

// The HTTP client cancels mid-upload (HTTP/1.1 and HTTP/2): the handler's
// read fails and its context ends.
func TestTruncationClientCancelsUpload(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			seen := make(chan truncRead, 1)
			got10 := make(chan struct{})
			env := bridgetest.NewEnv(t, bridgetest.Config{HTTPVersion: hv, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				buf := make([]byte, 10)
				n, err := io.ReadFull(r.Body, buf)
				close(got10)
				if err != nil {
					seen <- truncRead{body: string(buf[:n]), err: err}
					return
				}
				rest, err := io.ReadAll(r.Body)
				select {
				case <-r.Context().Done():
				case <-time.After(bridgetest.Promptly):
				}
				seen <- truncRead{body: string(buf) + string(rest), err: err, ctxErr: r.Context().Err()}
			})})
			pr, pw := io.Pipe()
			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				resp, err := env.Client.Do(env.Request(t, ctx, http.MethodPost, "/upload", pr))
				if err == nil {
					resp.Body.Close()
				}
				done <- err
			}()
			go func() { _, _ = io.WriteString(pw, "0123456789") }()
			bridgetest.WaitFor(t, got10, bridgetest.Promptly, "the handler's first 10 bytes")
			cancel()
			pw.CloseWithError(context.Canceled)
			if got, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "the handler to see the cancel"); ok {
				truncWantReadError(t, got, "0123456789", nil)
				if got.ctxErr == nil {
					t.Error("request context not done after the client cancelled")
				}
			}
			bridgetest.WaitFor(t, done, bridgetest.Promptly, "the client")
		})
	}
}

// H28: middleware limits the request body with MaxBytesReader; the host's
// read fails, so the plugin never sees body_complete.
func TestTruncationHostBodyReadError(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			seen := make(chan truncRead, 1)
			plugin := newTruncServer(truncReader(seen))
			env := bridgetest.NewEnv(t, bridgetest.Config{
				HTTPVersion: hv,
				Plugin:      plugin,
				Wrap: func(next http.Handler) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						r.Body = http.MaxBytesReader(w, r.Body, 10)
						next.ServeHTTP(w, r)
					})
				},
			})
			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			body := strings.Repeat("x", 100)
			o := bridgetest.Observe(env.Client, env.Request(t, ctx, http.MethodPost, "/", strings.NewReader(body)))
			if got, ok := plugin.handlerRead(t, seen); ok {
				truncWantReadError(t, got, body[:10], nil)
			}
			if o.Status == http.StatusOK {
				t.Errorf("client: %s; the plugin must not have answered as for a complete body", o)
			}
		})
	}
}
