package conformance

// Host adapter conformance, spec section 6.1 (H01–H37): the generated
// ServeHTTPHost in front of a scripted plugin. Each test is named after the
// ID of its row and asserts that row's Expected column through what can be
// observed: what an http.Client (or a raw TCP client) receives, what the
// scripted plugin recorded, and what the host's Forward returned.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// ---------------------------------------------------------------------------
// Harness of the host cases.

// hostReturn is one return of the host's Forward, seen by hostEnv's probe.
type hostReturn struct {
	err error
	at  time.Time
}

// hostEnv is the generated host in front of a scripted plugin. Unless raw
// was asked for, the HTTP server runs the host through a probe that calls
// Forward (reporting its error and return time on returns) and then panics
// with http.ErrAbortHandler on an abort, as ServeHTTP does.
type hostEnv struct {
	*bridgetest.Env
	plugin  *bridgetest.ScriptedPlugin
	returns chan hostReturn
}

// hostSetup adjusts the Config of a hostEnv; Plugin is always the scripted
// plugin and Wrap is applied around the probe.
type hostSetup struct {
	cfg bridgetest.Config
	raw bool // serve the host's own ServeHTTP, without the probe
}

func newHostEnv(t *testing.T, hv bridgetest.HTTPVersion, script func(bridgetest.ServerStream) error) *hostEnv {
	t.Helper()
	return newHostEnvWith(t, hostSetup{cfg: bridgetest.Config{HTTPVersion: hv}}, script)
}

func newHostEnvWith(t *testing.T, s hostSetup, script func(bridgetest.ServerStream) error) *hostEnv {
	t.Helper()
	h := &hostEnv{plugin: &bridgetest.ScriptedPlugin{Script: script}, returns: make(chan hostReturn, 256)}
	cfg := s.cfg
	cfg.Plugin = h.plugin
	middleware := cfg.Wrap
	cfg.Wrap = func(next http.Handler) http.Handler {
		if !s.raw {
			next = h.probe(next.(*pluginapiv1.ServeHTTPHost))
		}
		if middleware != nil {
			next = middleware(next)
		}
		return next
	}
	h.Env = bridgetest.NewEnv(t, cfg)
	return h
}

func (h *hostEnv) probe(host *pluginapiv1.ServeHTTPHost) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := host.Forward(w, r)
		select {
		case h.returns <- hostReturn{err: err, at: time.Now()}:
		default:
		}
		if errors.Is(err, pluginapiv1.ErrServeHTTPAborted) {
			panic(http.ErrAbortHandler)
		}
	})
}

// returned waits for the next return of Forward.
func (h *hostEnv) returned(t *testing.T, d time.Duration) (hostReturn, bool) {
	t.Helper()
	return bridgetest.WaitFor(t, h.returns, d, "the host's Forward to return")
}

// hostCall calls f (a Forward or ServeHTTP of the host) with a bounded wait,
// and returns the value it panicked with (nil if none) and its error.
func hostCall(t *testing.T, f func() error) (panicked any, err error) {
	t.Helper()
	type outcome struct {
		err error
		p   any
	}
	done := make(chan outcome, 1)
	go func() {
		var o outcome
		defer func() {
			o.p = recover()
			done <- o
		}()
		o.err = f()
	}()
	o, ok := bridgetest.WaitFor(t, done, bridgetest.ExchangeTimeout, "the host to return")
	if !ok {
		t.FailNow()
	}
	return o.p, o.err
}

// forwardRecorder runs the host's Forward with a recorder and a GET whose
// context is context.Background(), as for a synthetic request.
func (h *hostEnv) forwardRecorder(t *testing.T) (*httptest.ResponseRecorder, error) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	p, err := hostCall(t, func() error { return h.Host.Forward(rec, req) })
	if p != nil {
		t.Errorf("Forward panicked: %v", p)
	}
	return rec, err
}

// hostOK is a complete 200 "ok" response in one message.
func hostOK() *bridgetest.ResponseMsg {
	return &bridgetest.ResponseMsg{Init: bridgetest.RespInit(200), BodyChunk: []byte("ok"), BodyComplete: true}
}

// hostSendAwait is a plugin script: it receives the first request message,
// sends msgs, then waits (at most Promptly) for the stream context to end
// and reports on cancelled whether it did.
func hostSendAwait(cancelled chan<- bool, msgs ...*bridgetest.ResponseMsg) func(bridgetest.ServerStream) error {
	return func(stream bridgetest.ServerStream) error {
		if _, err := stream.Recv(); err != nil {
			return err
		}
		for _, m := range msgs {
			if stream.Send(m) != nil {
				break
			}
		}
		timer := time.NewTimer(bridgetest.Promptly)
		defer timer.Stop()
		done := false
		select {
		case <-stream.Context().Done():
			done = true
		case <-timer.C:
		}
		select {
		case cancelled <- done:
		default:
		}
		return nil
	}
}

// hostDecodeHeaders turns HTTPHeader entries into a header map the way the
// spec describes (canonical keys, values appended in order).
func hostDecodeHeaders(hs []*pluginapiv1.HTTPHeader) http.Header {
	h := http.Header{}
	for _, e := range hs {
		k := http.CanonicalHeaderKey(e.GetKey())
		h[k] = append(h[k], e.GetValues()...)
	}
	return h
}

// hostServerRequest is a copy of what the host's net/http server handed
// the host.
type hostServerRequest struct {
	method, url, proto       string
	protoMajor, protoMinor   int
	host, remoteAddr, reqURI string
	contentLength            int64
	header                   http.Header
}

// hostCapture is a middleware reporting the request the host receives.
func hostCapture(seen chan<- hostServerRequest) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case seen <- hostServerRequest{
				method: r.Method, url: r.URL.String(), proto: r.Proto,
				protoMajor: r.ProtoMajor, protoMinor: r.ProtoMinor,
				host: r.Host, remoteAddr: r.RemoteAddr, reqURI: r.RequestURI,
				contentLength: r.ContentLength, header: r.Header.Clone(),
			}:
			default:
			}
			next.ServeHTTP(w, r)
		})
	}
}

// hostRecord waits for the plugin's record of one request.
func hostRecord(t *testing.T, records <-chan bridgetest.RequestRecord) bridgetest.RequestRecord {
	t.Helper()
	rec, ok := bridgetest.WaitFor(t, records, bridgetest.ExchangeTimeout, "the plugin's record of the request")
	if !ok {
		t.FailNow()
	}
	return rec
}

// hostPost sends body to target with a bounded context.
func hostPost(t *testing.T, e *hostEnv, target string, body io.Reader) bridgetest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
	defer cancel()
	return e.RoundTrip(t, e.Request(t, ctx, http.MethodPost, target, body))
}

// hostPipeBody is a request body written by a goroutine: pieces are written
// in order (each followed by pause), then the pipe is closed. The pipe is
// also closed at cleanup so that the transport's writer never hangs.
func hostPipeBody(t *testing.T, pause time.Duration, pieces ...[]byte) io.Reader {
	t.Helper()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) })
	go func() {
		for _, p := range pieces {
			if _, err := pw.Write(p); err != nil {
				return
			}
			if pause > 0 {
				time.Sleep(pause)
			}
		}
		pw.Close()
	}()
	return pr
}

// hostPipe is a request body fed by the test through w. It is closed with
// an error when ctx ends or at cleanup: the client's transport waits for its
// body writer before Do returns, even after a cancellation.
func hostPipe(t *testing.T, ctx context.Context) (w *io.PipeWriter, r io.Reader) {
	t.Helper()
	pr, pw := io.Pipe()
	stop := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	t.Cleanup(func() {
		stop()
		pw.CloseWithError(errors.New("test over"))
	})
	return pw, pr
}

// hostSplit cuts b into pieces of n bytes.
func hostSplit(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		k := min(n, len(b))
		out = append(out, b[:k])
		b = b[k:]
	}
	return out
}

// hostCheckAbort asserts that a client saw "hello" and then an abort: on
// HTTP/1.1 io.ErrUnexpectedEOF, on HTTP/2 a stream reset.
func hostCheckAbort(t *testing.T, hv bridgetest.HTTPVersion, res bridgetest.Result) {
	t.Helper()
	if res.Status != 200 || string(res.Body) != "hello" {
		t.Errorf("got %d %q, want 200 %q before the abort", res.Status, res.Body, "hello")
	}
	switch hv {
	case bridgetest.HTTP1:
		if !errors.Is(res.ReadErr, io.ErrUnexpectedEOF) {
			t.Errorf("body read error = %v, want unexpected EOF", res.ReadErr)
		}
	case bridgetest.HTTP2:
		if res.ReadErr == nil || !strings.Contains(res.ReadErr.Error(), "stream error") {
			t.Errorf("body read error = %v, want a stream reset (not a clean EOF)", res.ReadErr)
		}
	}
}

// hostNoFlushWriter is a ResponseWriter with no way to flush at all.
type hostNoFlushWriter struct{ rec *httptest.ResponseRecorder }

func (w hostNoFlushWriter) Header() http.Header         { return w.rec.Header() }
func (w hostNoFlushWriter) Write(p []byte) (int, error) { return w.rec.Write(p) }
func (w hostNoFlushWriter) WriteHeader(code int)        { w.rec.WriteHeader(code) }

// hostUnwrapWriter hides every optional interface but Unwrap, as middleware
// often does: http.ResponseController still reaches the recorder.
type hostUnwrapWriter struct{ hostNoFlushWriter }

func (w hostUnwrapWriter) Unwrap() http.ResponseWriter { return w.rec }

// hostRSTClose closes a raw TCP connection with a reset, like a client that
// vanished, so that the server's pending read fails at once.
func hostRSTClose(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// ---------------------------------------------------------------------------
// 6.1 Request → stream (H01–H05).

// H01: a bodyless GET is exactly one message whose init mirrors the server
// request, with repeated and empty header values and the plugin context.
func TestH01BodylessRequestInit(t *testing.T) {
	want := &pluginapiv1.PluginContext{SessionId: "sess", RequestId: "req", IpAddress: "198.51.100.7", AcceptLanguage: "fr-FR", UserAgent: "agent/1"}
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			script, records := bridgetest.Recording(hostOK())
			seen := make(chan hostServerRequest, 1)
			e := newHostEnvWith(t, hostSetup{cfg: bridgetest.Config{
				HTTPVersion: hv,
				SetupHost: func(h *pluginapiv1.ServeHTTPHost) {
					h.Init = func(_ *http.Request, init *pluginapiv1.ServeHTTPRequestInit) {
						init.PluginContext = proto.Clone(want).(*pluginapiv1.PluginContext)
					}
				},
				Wrap: hostCapture(seen),
			}}, script)

			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			req := e.Request(t, ctx, http.MethodGet, "/h01/p?q=1&r=%20", nil)
			req.Header["Accept"] = []string{"a", "b"}
			req.Header["X-Empty"] = []string{""}
			if res := e.RoundTrip(t, req); res.Status != 200 || string(res.Body) != "ok" {
				t.Errorf("client got %d %q, want 200 ok", res.Status, res.Body)
			}
			rec := hostRecord(t, records)
			sr, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "the server request")
			if !ok {
				return
			}
			if len(rec.Msgs) != 1 {
				t.Errorf("plugin received %d request messages (%s), want exactly 1: init + body_complete + empty chunk", len(rec.Msgs), hostDescribe(rec.Msgs))
			}
			if len(rec.Msgs) == 0 {
				t.FailNow()
			}
			m := rec.Msgs[0]
			if !rec.Complete() || len(rec.Body()) != 0 {
				t.Errorf("body_complete seen %v, body %d bytes; want true and empty", rec.Complete(), len(rec.Body()))
			}
			init := m.GetInit()
			if init == nil {
				t.Fatal("message has no init")
			}
			for _, f := range []struct {
				name      string
				got, want any
			}{
				{"method", init.GetMethod(), sr.method},
				{"url", init.GetUrl(), sr.url},
				{"proto", init.GetProto(), sr.proto},
				{"proto_major", int(init.GetProtoMajor()), sr.protoMajor},
				{"proto_minor", int(init.GetProtoMinor()), sr.protoMinor},
				{"host", init.GetHost(), sr.host},
				{"remote_addr", init.GetRemoteAddr(), sr.remoteAddr},
				{"request_uri", init.GetRequestUri(), sr.reqURI},
				{"content_length", init.GetContentLength(), int64(0)},
			} {
				if f.got != f.want {
					t.Errorf("init.%s = %v, want %v", f.name, f.got, f.want)
				}
			}
			if init.GetUrl() != "/h01/p?q=1&r=%20" {
				t.Errorf("init.url = %q, want origin-form %q", init.GetUrl(), "/h01/p?q=1&r=%20")
			}
			if got := hostDecodeHeaders(init.GetHeaders()); !reflect.DeepEqual(got, sr.header) {
				t.Errorf("init headers = %v, want the server request's %v", got, sr.header)
			}
			if got := hostDecodeHeaders(init.GetHeaders())["Accept"]; !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("Accept = %q, want [a b] in order", got)
			}
			if got, ok := hostDecodeHeaders(init.GetHeaders())["X-Empty"]; !ok || !slices.Equal(got, []string{""}) {
				t.Errorf("X-Empty = %q (present %v), want [\"\"]", got, ok)
			}
			if !proto.Equal(init.GetPluginContext(), want) {
				t.Errorf("plugin_context = %v, want %v", init.GetPluginContext(), want)
			}
		})
	}
}

// H-Q1: the init's header values are the host's own copy, one allocation
// for all keys. An Init that appends to one key's values and edits them
// changes neither the next key's values nor the request's header.
func TestHostInitHeaderValuesAreCopies(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			script, records := bridgetest.Recording(hostOK())
			seen := make(chan hostServerRequest, 1)
			afterInit := make(chan http.Header, 1)
			e := newHostEnvWith(t, hostSetup{cfg: bridgetest.Config{
				HTTPVersion: hv,
				SetupHost: func(h *pluginapiv1.ServeHTTPHost) {
					h.Init = func(r *http.Request, init *pluginapiv1.ServeHTTPRequestInit) {
						for _, header := range init.Headers {
							if len(header.Values) > 0 {
								header.Values[0] = "edited"
							}
							header.Values = append(header.Values, "added")
						}
						afterInit <- r.Header.Clone()
					}
				},
				Wrap: hostCapture(seen),
			}}, script)

			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			req := e.Request(t, ctx, http.MethodGet, "/", nil)
			req.Header["Accept"] = []string{"a", "b"}
			req.Header["Accept-Language"] = []string{"c"}
			req.Header["X-Empty"] = []string{""}
			if res := e.RoundTrip(t, req); res.Status != 200 {
				t.Errorf("client got %d, want 200", res.Status)
			}
			rec := hostRecord(t, records)
			sr, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "the server request")
			if !ok || len(rec.Msgs) == 0 {
				t.FailNow()
			}
			want := http.Header{}
			for key, values := range sr.header {
				want[key] = append([]string{"edited"}, values[1:]...)
				want[key] = append(want[key], "added")
			}
			if got := hostDecodeHeaders(rec.Msgs[0].GetInit().GetHeaders()); !reflect.DeepEqual(got, want) {
				t.Errorf("plugin got headers %v, want %v", got, want)
			}
			if got, ok := bridgetest.WaitFor(t, afterInit, bridgetest.Promptly, "Init"); ok && !reflect.DeepEqual(got, sr.header) {
				t.Errorf("after Init edited the init, the request's header is %v, want %v", got, sr.header)
			}
		})
	}
}

// H02: a 100-byte body with Content-Length.
func TestH02SmallBodyFraming(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			script, records := bridgetest.Recording(hostOK())
			e := newHostEnv(t, hv, script)
			body := bridgetest.RandomBytes(t, 100)
			if res := hostPost(t, e, "/h02", bytes.NewReader(body)); res.Status != 200 {
				t.Errorf("client status %d, want 200", res.Status)
			}
			rec := hostRecord(t, records)
			if rec.EndErr != nil {
				t.Errorf("plugin's request stream ended with %v before body_complete", rec.EndErr)
			}
			got := bridgetest.CheckRequestFraming(t, rec.Msgs, bridgetest.ChunkMax)
			if !bytes.Equal(got, body) {
				t.Errorf("concatenated chunks: %s", bridgetest.FirstDiff(got, body))
			}
			if n := hostCountComplete(rec.Msgs); n != 1 || !rec.Msgs[len(rec.Msgs)-1].GetBodyComplete() {
				t.Errorf("%d messages carry body_complete, want exactly one, the last", n)
			}
			if cl := rec.Init().GetContentLength(); cl != 100 {
				t.Errorf("content_length = %d, want 100", cl)
			}
		})
	}
}

// hostDescribe summarises request messages for failure messages, such as
// "[init] [0 B, complete]".
func hostDescribe(msgs []*bridgetest.RequestMsg) string {
	var parts []string
	for _, m := range msgs {
		var p []string
		if m.GetInit() != nil {
			p = append(p, "init")
		}
		p = append(p, fmt.Sprintf("%d B", len(m.GetBodyChunk())))
		if m.GetBodyComplete() {
			p = append(p, "complete")
		}
		parts = append(parts, "["+strings.Join(p, ", ")+"]")
	}
	return strings.Join(parts, " ")
}

func hostCountComplete(msgs []*bridgetest.RequestMsg) int {
	n := 0
	for _, m := range msgs {
		if m.GetBodyComplete() {
			n++
		}
	}
	return n
}

// H03: chunked bodies of 65 536, 65 537 and 1 MiB from an io.Pipe.
func TestH03ChunkedBodies(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		for _, size := range []int{65536, 65537, 1 << 20} {
			t.Run(fmt.Sprintf("%s/%d", hv, size), func(t *testing.T) {
				bridgetest.LeakCheck(t)
				script, records := bridgetest.Recording(hostOK())
				e := newHostEnv(t, hv, script)
				body := bridgetest.RandomBytes(t, size)
				if res := hostPost(t, e, "/h03", hostPipeBody(t, 0, hostSplit(body, 10000)...)); res.Status != 200 {
					t.Errorf("client status %d, want 200", res.Status)
				}
				rec := hostRecord(t, records)
				if rec.EndErr != nil || !rec.Complete() {
					t.Errorf("request stream ended with %v, complete=%v; want body_complete", rec.EndErr, rec.Complete())
				}
				got := bridgetest.CheckRequestFraming(t, rec.Msgs, 65536)
				if !bytes.Equal(got, body) {
					t.Errorf("concatenated chunks: %s", bridgetest.FirstDiff(got, body))
				}
				if cl := rec.Init().GetContentLength(); cl != -1 {
					t.Errorf("content_length = %d, want -1 for a chunked upload", cl)
				}
			})
		}
	}
}

// H04: the client sends 10 bytes and waits for the plugin's echo before it
// sends more: the host forwards the 10 bytes without waiting to fill a chunk.
func TestH04InteractiveUpload(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			got10 := make(chan time.Time, 1)
			e := newHostEnv(t, hv, func(stream bridgetest.ServerStream) error {
				var got []byte
				for len(got) < 10 {
					m, err := stream.Recv()
					if err != nil {
						return err
					}
					got = append(got, m.GetBodyChunk()...)
				}
				got10 <- time.Now()
				if err := stream.Send(&bridgetest.ResponseMsg{Init: bridgetest.RespInit(200), BodyChunk: got, Flush: true}); err != nil {
					return err
				}
				msgs, err := bridgetest.RecvRequest(stream)
				if err != nil {
					return err
				}
				var rest []byte
				for _, m := range msgs {
					rest = append(rest, m.GetBodyChunk()...)
				}
				return stream.Send(&bridgetest.ResponseMsg{BodyChunk: rest, BodyComplete: true})
			})
			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			pw, pr := hostPipe(t, ctx)
			start := time.Now()
			go func() { _, _ = pw.Write([]byte("0123456789")) }()
			type doResult struct {
				resp *http.Response
				err  error
			}
			done := make(chan doResult, 1)
			req := e.Request(t, ctx, http.MethodPost, "/h04", pr)
			go func() {
				resp, err := e.Client.Do(req)
				done <- doResult{resp, err}
			}()
			at, ok := bridgetest.WaitFor(t, got10, bridgetest.Promptly, "the plugin to receive the 10 bytes (a host that waits to fill a chunk never sends them)")
			if !ok {
				cancel()
				if r := <-done; r.err == nil {
					r.resp.Body.Close()
				}
				return
			}
			if at.Sub(start) > time.Second {
				t.Errorf("the plugin received the 10 bytes after %v, want within 1s", at.Sub(start))
			}
			r, ok := bridgetest.WaitFor(t, done, bridgetest.ExchangeTimeout, "the response headers")
			if !ok || r.err != nil {
				t.Fatalf("Do: %v", r.err)
			}
			resp := r.resp
			defer resp.Body.Close()
			echo := make([]byte, 10)
			if _, err := io.ReadFull(resp.Body, echo); err != nil || string(echo) != "0123456789" {
				t.Fatalf("echo: %q, %v", echo, err)
			}
			go func() {
				_, _ = pw.Write([]byte("-more"))
				pw.Close()
			}()
			rest, err := io.ReadAll(resp.Body)
			if err != nil || string(rest) != "-more" {
				t.Errorf("rest of the body: %q, %v; want %q", rest, err, "-more")
			}
		})
	}
}

// H05: client-style requests given to Forward with no net/http server: a
// nil Body, and an io.Pipe Body with ContentLength 0.
func TestH05ClientStyleRequests(t *testing.T) {
	bridgetest.LeakCheck(t)
	script, records := bridgetest.Recording(hostOK())
	e := newHostEnv(t, bridgetest.HTTP1, script)
	t.Run("nil-body", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, "/h05", nil)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		if p, err := hostCall(t, func() error { return e.Host.Forward(rec, req) }); err != nil || p != nil {
			t.Errorf("Forward: %v (panic %v)", err, p)
		}
		r := hostRecord(t, records)
		if len(r.Msgs) != 1 {
			t.Fatalf("plugin received %d messages, want 1", len(r.Msgs))
		}
		if m := r.Msgs[0]; m.GetInit() == nil || !m.GetBodyComplete() || len(m.GetBodyChunk()) != 0 {
			t.Errorf("message: init %v, body_complete %v, chunk %d bytes; want init + complete + empty chunk", m.GetInit() != nil, m.GetBodyComplete(), len(m.GetBodyChunk()))
		}
	})
	t.Run("pipe-content-length-0", func(t *testing.T) {
		body := bridgetest.RandomBytes(t, 100000)
		req, err := http.NewRequest(http.MethodPut, "/h05", hostPipeBody(t, time.Millisecond, hostSplit(body, 30000)...))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = 0
		rec := httptest.NewRecorder()
		if p, err := hostCall(t, func() error { return e.Host.Forward(rec, req) }); err != nil || p != nil {
			t.Errorf("Forward: %v (panic %v)", err, p)
		}
		r := hostRecord(t, records)
		if r.EndErr != nil || !r.Complete() {
			t.Errorf("request stream ended with %v, complete=%v; want body_complete", r.EndErr, r.Complete())
		}
		if got := bridgetest.CheckRequestFraming(t, r.Msgs, bridgetest.ChunkMax); !bytes.Equal(got, body) {
			t.Errorf("forwarded body: %s", bridgetest.FirstDiff(got, body))
		}
	})
}

// ---------------------------------------------------------------------------
// 6.1 Stream → response (H06–H14).

// H06: status, repeated Set-Cookie in order, another header, a body in two
// messages.
func TestH06ResponseHeadersAndBody(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := newHostEnv(t, bridgetest.HTTP1, bridgetest.SendThen([]*bridgetest.ResponseMsg{
		{Init: bridgetest.RespInit(201, "Set-Cookie", "a=1", "Set-Cookie", "b=2", "X-A", "x"), BodyChunk: []byte("ab")},
		{BodyChunk: []byte("cd"), BodyComplete: true},
	}, nil))
	res := e.Get(t, "/h06")
	if res.Status != 201 || string(res.Body) != "abcd" || res.ReadErr != nil {
		t.Errorf("got %d %q (%v), want 201 %q", res.Status, res.Body, res.ReadErr, "abcd")
	}
	if got := res.Header.Values("Set-Cookie"); !slices.Equal(got, []string{"a=1", "b=2"}) {
		t.Errorf("Set-Cookie = %q, want [a=1 b=2]", got)
	}
	if got := res.Header.Get("X-A"); got != "x" {
		t.Errorf("X-A = %q, want x", got)
	}
}

// H07: status 0 means 200.
func TestH07StatusZero(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := newHostEnv(t, bridgetest.HTTP1, bridgetest.SendThen([]*bridgetest.ResponseMsg{
		{Init: bridgetest.RespInit(0), BodyChunk: []byte("z"), BodyComplete: true},
	}, nil))
	if res := e.Get(t, "/h07"); res.Status != 200 || string(res.Body) != "z" {
		t.Errorf("got %d %q, want 200 %q", res.Status, res.Body, "z")
	}
}

// hostCheckRejectedStatus runs the H08/H09 checks for one init status: the
// client gets 502 without the plugin's header (H-S5b), Forward returns an
// error, nothing panics, and the stream is cancelled.
func hostCheckRejectedStatus(t *testing.T, code int32) {
	bridgetest.LeakCheck(t)
	cancelled := make(chan bool, 4)
	e := newHostEnv(t, bridgetest.HTTP1, hostSendAwait(cancelled,
		&bridgetest.ResponseMsg{Init: bridgetest.RespInit(code, "X-P", "leak"), BodyChunk: []byte("body"), BodyComplete: true}))

	res := e.Get(t, "/h08")
	if res.Status != 502 {
		t.Errorf("client status %d, want 502", res.Status)
	}
	if res.Header.Get("X-P") != "" {
		t.Errorf("X-P = %q reached the client; the plugin's headers must not be applied", res.Header.Get("X-P"))
	}
	if r, ok := e.returned(t, bridgetest.Promptly); ok && r.err == nil {
		t.Error("Forward returned nil for an invalid status")
	}
	if c, ok := bridgetest.WaitFor(t, cancelled, 2*bridgetest.Promptly, "the plugin's report"); ok && !c {
		t.Error("the plugin's stream context was not cancelled")
	}

	// The same through a recorder, which panics on WriteHeader(code) for
	// an invalid code if the host passes it on.
	rec, err := e.forwardRecorder(t)
	if err == nil || rec.Code != 502 {
		t.Errorf("Forward with a recorder: %v, status %d; want an error and 502", err, rec.Code)
	}
	if c, ok := bridgetest.WaitFor(t, cancelled, 2*bridgetest.Promptly, "the plugin's report"); ok && !c {
		t.Error("the plugin's stream context was not cancelled (recorder)")
	}
}

// H08: statuses outside 100–999.
func TestH08InvalidStatus(t *testing.T) {
	for _, code := range []int32{99, 1000, -1, 65535} {
		t.Run(fmt.Sprint(code), func(t *testing.T) { hostCheckRejectedStatus(t, code) })
	}
}

// H09 (amended H-S3): a 1xx status other than 101 in the init is what
// net/http makes of a handler's WriteHeader(1xx): an interim response with
// the headers, then 200 for the body. 101 would need a hijack: 502.
func TestH09InformationalStatus(t *testing.T) {
	for _, code := range []int32{100, 103} {
		for _, hv := range bridgetest.HTTPVersions {
			t.Run(fmt.Sprint(code)+"/"+string(hv), func(t *testing.T) {
				bridgetest.LeakCheck(t)
				e := newHostEnv(t, hv, bridgetest.SendThen([]*bridgetest.ResponseMsg{
					{Init: bridgetest.RespInit(code, "Link", "</a.css>; rel=preload"), BodyChunk: []byte("bo")},
					{BodyChunk: []byte("dy"), BodyComplete: true},
				}, nil))
				var interim []int
				ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
					Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
						interim = append(interim, code)
						return nil
					},
				})
				res := e.RoundTrip(t, e.Request(t, ctx, http.MethodGet, "/h09", nil))
				if res.Status != 200 || string(res.Body) != "body" || res.ReadErr != nil {
					t.Errorf("client got %d %q (%v), want 200 %q", res.Status, res.Body, res.ReadErr, "body")
				}
				// Go's client reports 103 and hides 100 (it answers Expect).
				if code == 103 && !slices.Equal(interim, []int{103}) {
					t.Errorf("interim responses %v, want [103]", interim)
				}
				if !strings.Contains(e.HostLog.String(), "informational") {
					t.Errorf("host log %q does not warn about the informational status", e.HostLog.String())
				}
			})
		}
	}
	t.Run("101", func(t *testing.T) { hostCheckRejectedStatus(t, 101) })
	t.Run("103-then-failure", func(t *testing.T) {
		// Only the interim response went out: the failure still gets a
		// final 502, not a cut-off connection.
		bridgetest.LeakCheck(t)
		e := newHostEnv(t, bridgetest.HTTP1, bridgetest.SendThen([]*bridgetest.ResponseMsg{
			{Init: bridgetest.RespInit(103, "Content-Encoding", "gzip", "Set-Cookie", "sid=plugin", "Link", "</a.css>; rel=preload")},
		}, func(context.Context) error { return status.Error(codes.Internal, "plugin exploded") }))
		res := e.Get(t, "/h09")
		bridgetest.CheckDefaultErrorResponse(t, res.Status, res.Header, res.Body, 502, "exploded")
		for _, key := range []string{"Content-Encoding", "Set-Cookie", "Link"} {
			if v := res.Header.Get(key); v != "" {
				t.Errorf("the 502 carries the plugin's interim header %s: %q", key, v)
			}
		}
		if res.ReadErr != nil {
			t.Errorf("reading the 502: %v", res.ReadErr)
		}
	})
}

// H10: 999 is the largest valid status.
func TestH10Status999(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := newHostEnv(t, bridgetest.HTTP1, bridgetest.SendThen([]*bridgetest.ResponseMsg{
		{Init: bridgetest.RespInit(999), BodyChunk: []byte("odd"), BodyComplete: true},
	}, nil))
	if res := e.Get(t, "/h10"); res.Status != 999 || string(res.Body) != "odd" {
		t.Errorf("got %d %q, want 999 %q", res.Status, res.Body, "odd")
	}
}

// hostCheckFailedBeforeResponse asserts what a failure of the plugin before
// the response started gives (H-F2, H-F4): the client gets the host's
// complete default 502, which reveals nothing the plugin sent (secret), and
// Forward returns an error that is not an abort, having written the same
// 502.
func hostCheckFailedBeforeResponse(t *testing.T, e *hostEnv, target, secret string) {
	t.Helper()
	res := e.Get(t, target)
	bridgetest.CheckDefaultErrorResponse(t, res.Status, res.Header, res.Body, 502, secret)
	if res.ReadErr != nil {
		t.Errorf("body read error %v, want a complete 502", res.ReadErr)
	}
	rec, err := e.forwardRecorder(t)
	if err == nil || errors.Is(err, pluginapiv1.ErrServeHTTPAborted) {
		t.Errorf("Forward returned %v, want an error that is not an abort", err)
	}
	bridgetest.CheckDefaultErrorResponse(t, rec.Code, rec.Header(), rec.Body.Bytes(), 502, secret)
}

// H11: the plugin ends the RPC OK without sending anything.
func TestH11EmptyStream(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := newHostEnv(t, bridgetest.HTTP1, func(bridgetest.ServerStream) error { return nil })
	hostCheckFailedBeforeResponse(t, e, "/h11", "")
}

// H12: the plugin fails the RPC before any message; its error text does
// not reach the client.
func TestH12ErrorBeforeAnyMessage(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := newHostEnv(t, bridgetest.HTTP1, func(bridgetest.ServerStream) error {
		return status.Error(codes.Internal, "plugin exploded")
	})
	hostCheckFailedBeforeResponse(t, e, "/h12", "plugin exploded")
}

// H13: a first message without init, body-only or flush-only (H-F4), is a
// protocol violation: the plugin's "x" is never written.
func TestH13FirstMessageWithoutInit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first *bridgetest.ResponseMsg
	}{
		{"body-only", &bridgetest.ResponseMsg{BodyChunk: []byte("x")}},
		{"flush-only", &bridgetest.ResponseMsg{Flush: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			e := newHostEnv(t, bridgetest.HTTP1, bridgetest.SendThen([]*bridgetest.ResponseMsg{
				tc.first,
				{Init: bridgetest.RespInit(200), BodyChunk: []byte("x"), BodyComplete: true},
			}, nil))
			hostCheckFailedBeforeResponse(t, e, "/h13", "x")
		})
	}
}

// H14: an init on a later message changes nothing and causes no second
// WriteHeader.
func TestH14LaterInitIgnored(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := newHostEnv(t, bridgetest.HTTP1, bridgetest.SendThen([]*bridgetest.ResponseMsg{
		{Init: bridgetest.RespInit(200, "X-A", "1"), BodyChunk: []byte("a")},
		{Init: bridgetest.RespInit(500, "X-B", "2"), BodyChunk: []byte("b"), BodyComplete: true},
	}, nil))
	res := e.Get(t, "/h14")
	if res.Status != 200 || string(res.Body) != "ab" || res.ReadErr != nil {
		t.Errorf("got %d %q (%v), want 200 %q", res.Status, res.Body, res.ReadErr, "ab")
	}
	if res.Header.Get("X-A") != "1" || res.Header.Get("X-B") != "" {
		t.Errorf("X-A = %q, X-B = %q; want 1 and absent", res.Header.Get("X-A"), res.Header.Get("X-B"))
	}
	// The server log is complete once the server closed; the Env's cleanup
	// checks it for "superfluous" too. Close now to check it here.
	bridgetest.CloseBounded(t, "host HTTP server", e.Server.Close)
	if s := e.ServerLog.String(); strings.Contains(s, "superfluous") {
		t.Errorf("server logged a superfluous WriteHeader:\n%s", s)
	}
}

// ---------------------------------------------------------------------------
// 6.1 Aborts and completion (H15–H18).

// hostAbortScript sends init{200} + "hello" with flush and then ends the RPC
// with end (an error, or nil for a clean end without body_complete).
func hostAbortScript(end error) func(bridgetest.ServerStream) error {
	return bridgetest.SendThen([]*bridgetest.ResponseMsg{
		{Init: bridgetest.RespInit(200), BodyChunk: []byte("hello"), Flush: true},
	}, func(context.Context) error { return end })
}

// hostCheckAbortCase runs H15/H16/H17 for one HTTP version and one end of
// the RPC.
func hostCheckAbortCase(t *testing.T, hv bridgetest.HTTPVersion, end error) {
	bridgetest.LeakCheck(t)
	// raw: the client must see what the generated ServeHTTP wrapper does.
	e := newHostEnvWith(t, hostSetup{cfg: bridgetest.Config{HTTPVersion: hv}, raw: true}, hostAbortScript(end))
	hostCheckAbort(t, hv, e.Get(t, "/abort"))

	// The host returns an abort error...
	rec, err := e.forwardRecorder(t)
	if !errors.Is(err, pluginapiv1.ErrServeHTTPAborted) {
		t.Errorf("Forward returned %v, want an error wrapping ErrServeHTTPAborted", err)
	}
	if rec.Code != 200 || rec.Body.String() != "hello" || !rec.Flushed {
		t.Errorf("recorder %d %q, flushed %v; want 200 %q, flushed", rec.Code, rec.Body, rec.Flushed, "hello")
	}
	// ...and the wrapper panics with http.ErrAbortHandler.
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	if p, _ := hostCall(t, func() error { e.Host.ServeHTTP(httptest.NewRecorder(), req); return nil }); p != http.ErrAbortHandler {
		t.Errorf("ServeHTTP panicked with %v, want http.ErrAbortHandler", p)
	}
	// Not logged by net/http: no "panic serving" (also checked at cleanup).
	bridgetest.CloseBounded(t, "host HTTP server", e.Server.Close)
	if s := e.ServerLog.String(); strings.Contains(s, "panic") {
		t.Errorf("net/http logged the abort:\n%s", s)
	}
}

// H15: RPC error after "hello" + flush, HTTP/1.1.
func TestH15AbortAfterRPCError(t *testing.T) {
	hostCheckAbortCase(t, bridgetest.HTTP1, status.Error(codes.Internal, "plugin failed"))
}

// H16: clean end of the RPC without body_complete, HTTP/1.1.
func TestH16AbortAfterCleanEnd(t *testing.T) {
	hostCheckAbortCase(t, bridgetest.HTTP1, nil)
}

// H17: H15 (and H16) over HTTP/2: the stream is reset.
func TestH17AbortOverHTTP2(t *testing.T) {
	t.Run("rpc-error", func(t *testing.T) {
		hostCheckAbortCase(t, bridgetest.HTTP2, status.Error(codes.Internal, "plugin failed"))
	})
	t.Run("clean-end", func(t *testing.T) { hostCheckAbortCase(t, bridgetest.HTTP2, nil) })
}

// H18: after body_complete the plugin keeps sending and never ends the
// RPC: the host returns, ignores the rest, and cancels the stream.
func TestH18MessagesAfterComplete(t *testing.T) {
	bridgetest.LeakCheck(t)
	ctxDone := make(chan time.Time, 1)
	e := newHostEnv(t, bridgetest.HTTP1, func(stream bridgetest.ServerStream) error {
		if _, err := stream.Recv(); err != nil {
			return err
		}
		if err := stream.Send(&bridgetest.ResponseMsg{Init: bridgetest.RespInit(200), BodyChunk: []byte("a"), BodyComplete: true}); err != nil {
			return err
		}
		deadline := time.Now().Add(bridgetest.ExchangeTimeout)
		for stream.Context().Err() == nil && time.Now().Before(deadline) {
			if stream.Send(bridgetest.Resp("zzz", true, false)) != nil {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		select {
		case <-stream.Context().Done():
			ctxDone <- time.Now()
		case <-time.After(time.Until(deadline)):
		}
		return nil
	})
	start := time.Now()
	res := e.Get(t, "/h18")
	if res.Status != 200 || string(res.Body) != "a" || res.ReadErr != nil {
		t.Errorf("got %d %q (%v), want 200 %q", res.Status, res.Body, res.ReadErr, "a")
	}
	r, ok := e.returned(t, bridgetest.Promptly)
	if ok && r.err != nil {
		t.Errorf("Forward returned %v, want nil", r.err)
	}
	if ok && r.at.Sub(start) > time.Second {
		t.Errorf("host returned %v after the request started, want within 1s", r.at.Sub(start))
	}
	if at, ok := bridgetest.WaitFor(t, ctxDone, bridgetest.Promptly, "the plugin's stream context to be cancelled"); ok && !r.at.IsZero() && at.Sub(r.at) > time.Second {
		t.Errorf("stream cancelled %v after the host returned, want within 1s", at.Sub(r.at))
	}
}

// ---------------------------------------------------------------------------
// 6.1 Flushing (H19–H21).

// H19: the plugin sends "x" with flush and waits for the client to have
// read it before it sends "y".
func TestH19FlushReachesClient(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			clientGotX := make(chan struct{})
			waited := make(chan bool, 1)
			e := newHostEnv(t, hv, func(stream bridgetest.ServerStream) error {
				if _, err := stream.Recv(); err != nil {
					return err
				}
				if err := stream.Send(&bridgetest.ResponseMsg{Init: bridgetest.RespInit(200), BodyChunk: []byte("x"), Flush: true}); err != nil {
					return err
				}
				select {
				case <-clientGotX:
					waited <- true
				case <-time.After(bridgetest.Promptly):
					waited <- false
				case <-stream.Context().Done():
					waited <- false
					return stream.Context().Err()
				}
				return stream.Send(bridgetest.Resp("y", false, true))
			})
			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			resp, err := e.Client.Do(e.Request(t, ctx, http.MethodGet, "/h19", nil))
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			defer resp.Body.Close()
			x := make([]byte, 1)
			if _, err := io.ReadFull(resp.Body, x); err != nil || string(x) != "x" {
				t.Fatalf("first byte %q, %v; want x", x, err)
			}
			close(clientGotX)
			if ok, _ := bridgetest.WaitFor(t, waited, bridgetest.ExchangeTimeout, "the plugin"); !ok {
				t.Error("the plugin did not hear from the client: \"x\" was not delivered before \"y\" was sent")
			}
			rest, err := io.ReadAll(resp.Body)
			if err != nil || string(rest) != "y" {
				t.Errorf("rest %q, %v; want y", rest, err)
			}
		})
	}
}

// H20: flush flags on a writer that cannot flush are not an error.
func TestH20FlushWithoutFlusher(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := newHostEnv(t, bridgetest.HTTP1, bridgetest.SendThen([]*bridgetest.ResponseMsg{
		{Init: bridgetest.RespInit(200), BodyChunk: []byte("a"), Flush: true},
		bridgetest.Resp("b", true, false),
		bridgetest.Resp("c", true, true),
	}, nil))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/h20", nil)
	p, err := hostCall(t, func() error { return e.Host.Forward(hostNoFlushWriter{rec}, req) })
	if err != nil || p != nil {
		t.Errorf("Forward: %v (panic %v), want nil", err, p)
	}
	if rec.Code != 200 || rec.Body.String() != "abc" {
		t.Errorf("recorder %d %q, want 200 %q", rec.Code, rec.Body, "abc")
	}
}

// H21: a writer that exposes only Unwrap() still gets flushed.
func TestH21FlushThroughUnwrap(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := newHostEnv(t, bridgetest.HTTP1, bridgetest.SendThen([]*bridgetest.ResponseMsg{
		{Init: bridgetest.RespInit(200), BodyChunk: []byte("a"), Flush: true},
		bridgetest.Resp("b", false, true),
	}, nil))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/h21", nil)
	if p, err := hostCall(t, func() error { return e.Host.Forward(hostUnwrapWriter{hostNoFlushWriter{rec}}, req) }); err != nil || p != nil {
		t.Errorf("Forward: %v (panic %v), want nil", err, p)
	}
	if !rec.Flushed {
		t.Error("recorder Flushed = false; the host must flush through Unwrap (http.ResponseController)")
	}
	if rec.Body.String() != "ab" {
		t.Errorf("recorder body %q, want ab", rec.Body)
	}
}

// ---------------------------------------------------------------------------
// 6.1 Early responses and full duplex (H22–H24).

// H-Q7 (not a row of 6.1, but not observable through H24 either, since the
// host also closes HTTP/1 connections with unread uploads): full duplex is
// enabled before anything reaches the writer.
func TestHQ7EnableFullDuplexFirst(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := newHostEnv(t, bridgetest.HTTP1, bridgetest.SendThen([]*bridgetest.ResponseMsg{hostOK()}, nil))
	w := &hostDuplexWriter{hostNoFlushWriter: hostNoFlushWriter{httptest.NewRecorder()}}
	req := httptest.NewRequest(http.MethodPost, "/hq7", strings.NewReader("body"))
	if p, err := hostCall(t, func() error { return e.Host.Forward(w, req) }); err != nil || p != nil {
		t.Errorf("Forward: %v (panic %v)", err, p)
	}
	if got := strings.Join(w.calls, " "); !strings.HasPrefix(got, "EnableFullDuplex ") {
		t.Errorf("calls on the writer: %q, want EnableFullDuplex first", got)
	}
}

// hostDuplexWriter records the order of EnableFullDuplex and the first
// WriteHeader or Write.
type hostDuplexWriter struct {
	hostNoFlushWriter
	calls []string
}

func (w *hostDuplexWriter) EnableFullDuplex() error {
	w.calls = append(w.calls, "EnableFullDuplex")
	return nil
}

func (w *hostDuplexWriter) WriteHeader(code int) {
	w.calls = append(w.calls, "WriteHeader")
	w.hostNoFlushWriter.WriteHeader(code)
}

func (w *hostDuplexWriter) Write(p []byte) (int, error) {
	w.calls = append(w.calls, "Write")
	return w.hostNoFlushWriter.Write(p)
}

// H22: the plugin answers at once without reading a 10 MiB upload.
func TestH22EarlyResponseLargeUpload(t *testing.T) {
	upload := make([]byte, 10<<20)
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			e := newHostEnv(t, hv, bridgetest.SendThen([]*bridgetest.ResponseMsg{hostOK()}, nil))
			res := hostPost(t, e, "/h22", bytes.NewReader(upload))
			if res.Status != 200 || string(res.Body) != "ok" || res.ReadErr != nil {
				t.Errorf("got %d %q (%v), want 200 ok", res.Status, res.Body, res.ReadErr)
			}
			if r, ok := e.returned(t, bridgetest.Promptly); ok && r.err != nil {
				t.Errorf("Forward returned %v, want nil", r.err)
			}
		})
	}
}

// H23: a raw client declares Content-Length 1000, sends 10 bytes and
// stalls; the plugin answers at once. The client gets the whole response
// while still stalled and the host's handler has returned.
func TestH23StalledUploadEarlyResponse(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := newHostEnv(t, bridgetest.HTTP1, bridgetest.SendThen([]*bridgetest.ResponseMsg{
		{Init: bridgetest.RespInit(200), BodyChunk: []byte("early"), BodyComplete: true},
	}, nil))
	conn, err := net.Dial("tcp", e.Server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer hostRSTClose(conn)
	if _, err := fmt.Fprintf(conn, "POST /h23 HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(bridgetest.Promptly))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response while the upload is stalled: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "early" || err != nil {
		t.Errorf("got %d %q (%v), want 200 %q", resp.StatusCode, body, err, "early")
	}
	if r, ok := e.returned(t, bridgetest.Promptly); ok && r.err != nil {
		t.Errorf("Forward returned %v, want nil", r.err)
	}
}

// After an early response (the plugin answered before reading the upload),
// a raw HTTP/1.1 client finishes its upload and sends a second request on
// the same connection: the host must have announced Connection: close, or
// the second request must be answered (H-Q7, H-Q8; net/http could otherwise
// parse the unread upload as the next request, golang/go#68560).
func TestHostEarlyResponseKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers string
		first   string // body bytes sent before the response
		rest    string // body bytes sent after it
	}{
		{"chunked", "Transfer-Encoding: chunked\r\n", "", "5\r\nhello\r\n0\r\n\r\n"},
		// With a declared length the first body byte must arrive for the
		// request to start.
		{"content-length", "Content-Length: 5\r\n", "h", "ello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			e := bridgetest.NewEnv(t, bridgetest.Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "ok:"+r.URL.Path)
			})})
			conn, err := net.Dial("tcp", e.Server.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer hostRSTClose(conn)
			_ = conn.SetDeadline(time.Now().Add(2 * bridgetest.Promptly))
			br := bufio.NewReader(conn)
			_, _ = fmt.Fprintf(conn, "POST /first HTTP/1.1\r\nHost: test\r\n%s\r\n%s", tc.headers, tc.first)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("first response: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(body) != "ok:/first" || err != nil {
				t.Fatalf("first response: %d %q %v", resp.StatusCode, body, err)
			}
			_, _ = fmt.Fprint(conn, tc.rest)
			if resp.Close {
				return // the host announced that the connection closes
			}
			_, _ = fmt.Fprint(conn, "GET /second HTTP/1.1\r\nHost: test\r\n\r\n")
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("second request on the kept-alive connection: %v", err)
			}
			body, err = io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(body) != "ok:/second" || err != nil {
				t.Errorf("second response: %d %q %v", resp.StatusCode, body, err)
			}
		})
	}
}

// H24: HTTP/1.1 full duplex: a 1 MiB upload in 16 KiB pieces with pauses,
// echoed chunk by chunk with flush while it arrives.
func TestH24FullDuplexEcho(t *testing.T) {
	bridgetest.LeakCheck(t)
	type seen struct {
		before   int // bytes received before body_complete
		complete bool
		err      error
	}
	outcome := make(chan seen, 1)
	e := newHostEnv(t, bridgetest.HTTP1, func(stream bridgetest.ServerStream) error {
		if _, err := stream.Recv(); err != nil {
			return err
		}
		// Headers first: the response starts before the upload ends.
		if err := stream.Send(&bridgetest.ResponseMsg{Init: bridgetest.RespInit(200), Flush: true}); err != nil {
			return err
		}
		var s seen
		for {
			m, err := stream.Recv()
			if err != nil {
				s.err = err
				break
			}
			if len(m.GetBodyChunk()) > 0 {
				s.before += len(m.GetBodyChunk())
				if err := stream.Send(bridgetest.Resp(string(m.GetBodyChunk()), true, false)); err != nil {
					s.err = err
					break
				}
			}
			if m.GetBodyComplete() {
				s.complete = true
				break
			}
		}
		outcome <- s
		if !s.complete {
			return s.err
		}
		return stream.Send(bridgetest.Resp("", false, true))
	})
	upload := bridgetest.RandomBytes(t, 1<<20)
	res := hostPost(t, e, "/h24", hostPipeBody(t, time.Millisecond, hostSplit(upload, 16<<10)...))
	if res.Status != 200 || res.ReadErr != nil || !bytes.Equal(res.Body, upload) {
		t.Errorf("status %d, read error %v, echo: %s", res.Status, res.ReadErr, bridgetest.FirstDiff(res.Body, upload))
	}
	if s, ok := bridgetest.WaitFor(t, outcome, bridgetest.ExchangeTimeout, "the plugin's outcome"); ok {
		if !s.complete || s.before != len(upload) {
			t.Errorf("plugin saw body_complete=%v after %d bytes (end %v), want true after %d", s.complete, s.before, s.err, len(upload))
		}
	}
}

// ---------------------------------------------------------------------------
// 6.1 Cancellation (H25–H28).

// H25: the client cancels mid-upload: the plugin's stream context ends and
// it never sees body_complete.
func TestH25CancelDuringUpload(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			gotData := make(chan struct{})
			type seen struct {
				complete bool
				ctxDone  time.Time
			}
			outcome := make(chan seen, 1)
			e := newHostEnv(t, hv, func(stream bridgetest.ServerStream) error {
				var s seen
				signalled := false
				for {
					m, err := stream.Recv()
					if err != nil {
						break
					}
					if len(m.GetBodyChunk()) > 0 && !signalled {
						signalled = true
						close(gotData)
					}
					if m.GetBodyComplete() {
						s.complete = true
						break
					}
				}
				select {
				case <-stream.Context().Done():
					s.ctxDone = time.Now()
				case <-time.After(bridgetest.ExchangeTimeout):
				}
				outcome <- s
				return nil
			})
			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			pw, pr := hostPipe(t, ctx)
			go func() { _, _ = pw.Write([]byte("partial upload")) }()
			cancelled := make(chan time.Time, 1)
			go func() {
				select {
				case <-gotData:
				case <-ctx.Done():
				}
				cancelled <- time.Now()
				cancel()
			}()
			resp, err := e.Client.Do(e.Request(t, ctx, http.MethodPost, "/h25", pr))
			if err == nil {
				resp.Body.Close()
				t.Errorf("Do succeeded with %d, want the cancellation error", resp.StatusCode)
			}
			at, _ := bridgetest.WaitFor(t, cancelled, bridgetest.ExchangeTimeout, "the cancel")
			s, ok := bridgetest.WaitFor(t, outcome, bridgetest.ExchangeTimeout, "the plugin's outcome")
			if !ok {
				return
			}
			if s.complete {
				t.Error("the plugin saw body_complete for a cancelled upload")
			}
			if s.ctxDone.IsZero() {
				t.Error("the plugin's stream context was never cancelled")
			} else if d := s.ctxDone.Sub(at); d > time.Second {
				t.Errorf("the plugin's stream context ended %v after the cancel, want within 1s", d)
			}
		})
	}
}

// H26: the client cancels while the plugin streams slowly: the host
// returns, the plugin's context ends and its Sends fail.
func TestH26CancelDuringDownload(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			type seen struct{ ctxDone, sendFailed bool }
			outcome := make(chan seen, 1)
			e := newHostEnv(t, hv, func(stream bridgetest.ServerStream) error {
				if _, err := stream.Recv(); err != nil {
					return err
				}
				var s seen
				msg := &bridgetest.ResponseMsg{Init: bridgetest.RespInit(200), BodyChunk: []byte("tick"), Flush: true}
				deadline := time.Now().Add(bridgetest.ExchangeTimeout)
				for time.Now().Before(deadline) {
					if err := stream.Send(msg); err != nil {
						s.sendFailed = true
						break
					}
					msg = bridgetest.Resp("tick", true, false)
					time.Sleep(20 * time.Millisecond)
				}
				select {
				case <-stream.Context().Done():
					s.ctxDone = true
				case <-time.After(bridgetest.Promptly):
				}
				outcome <- s
				return nil
			})
			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			resp, err := e.Client.Do(e.Request(t, ctx, http.MethodGet, "/h26", nil))
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			tick := make([]byte, 4)
			if _, err := io.ReadFull(resp.Body, tick); err != nil {
				t.Fatalf("first tick: %v", err)
			}
			cancelAt := time.Now()
			cancel()
			resp.Body.Close()
			if r, ok := e.returned(t, bridgetest.Promptly); ok && r.at.Sub(cancelAt) > time.Second {
				t.Errorf("host returned %v after the cancel, want within 1s", r.at.Sub(cancelAt))
			}
			if s, ok := bridgetest.WaitFor(t, outcome, bridgetest.ExchangeTimeout, "the plugin's outcome"); ok && (!s.ctxDone || !s.sendFailed) {
				t.Errorf("plugin: context done %v, a Send failed %v; want both", s.ctxDone, s.sendFailed)
			}
		})
	}
}

// H27: the plugin never answers; the client gives up after 100 ms.
func TestH27SilentPluginClientCancels(t *testing.T) {
	bridgetest.LeakCheck(t)
	ctxDone := make(chan bool, 1)
	e := newHostEnv(t, bridgetest.HTTP1, hostSendAwait(ctxDone))
	// hostSendAwait waits only Promptly; that is enough, the client gives
	// up after 100 ms.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	resp, err := e.Client.Do(e.Request(t, ctx, http.MethodGet, "/h27", nil))
	if err == nil {
		resp.Body.Close()
		t.Errorf("Do succeeded with %d, want a timeout", resp.StatusCode)
	}
	cancelAt := time.Now()
	if r, ok := e.returned(t, bridgetest.Promptly); ok {
		if d := r.at.Sub(cancelAt); d > time.Second {
			t.Errorf("host returned %v after the client gave up, want within 1s", d)
		}
		if r.err == nil {
			t.Error("Forward returned nil for a request whose client went away")
		}
	}
	if done, ok := bridgetest.WaitFor(t, ctxDone, 2*bridgetest.Promptly, "the plugin's report"); ok && !done {
		t.Error("the plugin's stream context was not cancelled")
	}
}

// H28: the caller limits the body with MaxBytesReader(10) and the client
// sends 100 bytes: the plugin never sees body_complete, and its 413 is
// relayed.
func TestH28MaxBytesReader(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			type seen struct {
				complete bool
				sent413  bool
				bytes    int // body bytes received
				end      error
			}
			outcome := make(chan seen, 1)
			e := newHostEnvWith(t, hostSetup{cfg: bridgetest.Config{
				HTTPVersion: hv,
				Wrap: func(next http.Handler) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						r.Body = http.MaxBytesReader(w, r.Body, 10)
						next.ServeHTTP(w, r)
					})
				},
			}}, func(stream bridgetest.ServerStream) error {
				msgs, err := bridgetest.RecvRequest(stream)
				s := seen{complete: err == nil && len(msgs) > 0 && msgs[len(msgs)-1].GetBodyComplete(), end: err}
				for _, m := range msgs {
					s.bytes += len(m.GetBodyChunk())
				}
				if !s.complete {
					s.sent413 = stream.Send(&bridgetest.ResponseMsg{
						Init: bridgetest.RespInit(413, "Content-Type", "text/plain"), BodyChunk: []byte("too large"), BodyComplete: true,
					}) == nil
				} else {
					_ = stream.Send(hostOK())
				}
				outcome <- s
				return nil
			})
			res := hostPost(t, e, "/h28", bytes.NewReader(bytes.Repeat([]byte("x"), 100)))
			s, ok := bridgetest.WaitFor(t, outcome, bridgetest.ExchangeTimeout, "the plugin's outcome")
			if !ok {
				return
			}
			if s.complete {
				t.Fatal("the plugin saw body_complete although the body failed after 10 bytes")
			}
			t.Logf("plugin's request stream ended with %v after %d body bytes; its 413 sent: %v", s.end, s.bytes, s.sent413)
			if s.sent413 && (res.Status != 413 || string(res.Body) != "too large") {
				t.Errorf("client got %d %q, want the plugin's 413 %q", res.Status, res.Body, "too large")
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 6.1 Sizes, statuses without body, HEAD, header safety (H29–H34).

// H29: one 1 MiB body_chunk is relayed whole.
func TestH29LargeChunk(t *testing.T) {
	bridgetest.LeakCheck(t)
	body := bridgetest.RandomBytes(t, 1<<20)
	e := newHostEnv(t, bridgetest.HTTP1, bridgetest.SendThen([]*bridgetest.ResponseMsg{
		{Init: bridgetest.RespInit(200), BodyChunk: body, BodyComplete: true},
	}, nil))
	res := e.Get(t, "/h29")
	if res.Status != 200 || res.ReadErr != nil || !bytes.Equal(res.Body, body) {
		t.Errorf("status %d, read error %v, body: %s", res.Status, res.ReadErr, bridgetest.FirstDiff(res.Body, body))
	}
}

// H30: a chunk over the host's configured gRPC receive limit gives 502
// before the headers (H-S5b), an abort after them.
func TestH30ChunkOverReceiveLimit(t *testing.T) {
	const limit = 256 << 10
	big := make([]byte, 2*limit)
	opts := bridgetest.PluginOptions{DialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(limit))}}
	t.Run("before-headers", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		e := newHostEnvWith(t, hostSetup{cfg: bridgetest.Config{PluginOptions: opts}}, bridgetest.SendThen([]*bridgetest.ResponseMsg{
			{Init: bridgetest.RespInit(200), BodyChunk: big, BodyComplete: true},
		}, nil))
		if res := e.Get(t, "/h30"); res.Status != 502 {
			t.Errorf("client status %d, want 502", res.Status)
		}
	})
	t.Run("after-headers", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		e := newHostEnvWith(t, hostSetup{cfg: bridgetest.Config{PluginOptions: opts}}, bridgetest.SendThen([]*bridgetest.ResponseMsg{
			{Init: bridgetest.RespInit(200), BodyChunk: []byte("hello"), Flush: true},
			{BodyChunk: big, BodyComplete: true},
		}, nil))
		hostCheckAbort(t, bridgetest.HTTP1, e.Get(t, "/h30"))
		if r, ok := e.returned(t, bridgetest.Promptly); ok && !errors.Is(r.err, pluginapiv1.ErrServeHTTPAborted) {
			t.Errorf("Forward returned %v, want ErrServeHTTPAborted", r.err)
		}
	})
}

// H31: a body sent with 204 is dropped without error.
func TestH31NoContentWithBody(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := newHostEnv(t, bridgetest.HTTP1, bridgetest.SendThen([]*bridgetest.ResponseMsg{
		{Init: bridgetest.RespInit(204), BodyChunk: []byte("x"), BodyComplete: true},
	}, nil))
	res := e.Get(t, "/h31")
	if res.Status != 204 || len(res.Body) != 0 || res.ReadErr != nil {
		t.Errorf("got %d %q (%v), want 204 with an empty body", res.Status, res.Body, res.ReadErr)
	}
	if r, ok := e.returned(t, bridgetest.Promptly); ok && r.err != nil {
		t.Errorf("Forward returned %v, want nil", r.err)
	}
}

// hostDirect serves h directly (no bridge) over hv and returns a client.
func hostDirect(t *testing.T, hv bridgetest.HTTPVersion, h http.HandlerFunc) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := bridgetest.StartHTTPServer(t, hv, h, nil)
	return srv, srv.Client()
}

// hostDo does method on url with client, bounded.
func hostDo(t *testing.T, client *http.Client, method, url string) bridgetest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return bridgetest.RoundTrip(t, client, req)
}

// hostComparable is a header set without Date, for differential checks.
func hostComparable(h http.Header) http.Header {
	c := h.Clone()
	c.Del("Date")
	return c
}

// H32: HEAD with an 11-byte body from the plugin, compared with a direct
// handler.
func TestH32Head(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			srv, client := hostDirect(t, hv, func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "hello world")
			})
			direct := hostDo(t, client, http.MethodHead, srv.URL+"/h32")
			e := newHostEnv(t, hv, bridgetest.SendThen([]*bridgetest.ResponseMsg{
				{Init: bridgetest.RespInit(200), BodyChunk: []byte("hello world"), BodyComplete: true},
			}, nil))
			bridged := hostDo(t, e.Client, http.MethodHead, e.Server.URL+"/h32")
			if len(bridged.Body) != 0 || bridged.ReadErr != nil {
				t.Errorf("HEAD body %q (%v), want none", bridged.Body, bridged.ReadErr)
			}
			for _, k := range []string{"Content-Length", "Content-Type"} {
				if bridged.Header.Get(k) != direct.Header.Get(k) {
					t.Errorf("%s = %q, direct %q", k, bridged.Header.Get(k), direct.Header.Get(k))
				}
			}
			if bridged.Header.Get("Content-Length") != "11" {
				t.Errorf("Content-Length = %q, want 11", bridged.Header.Get("Content-Length"))
			}
			if bridged.Status != direct.Status {
				t.Errorf("status %d, direct %d", bridged.Status, direct.Status)
			}
		})
	}
}

// H33: header values with CR/LF and invalid names cannot inject headers;
// the client sees what a direct handler's client sees.
func TestH33HeaderInjection(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			srv, client := hostDirect(t, hv, func(w http.ResponseWriter, r *http.Request) {
				w.Header()["X-V"] = []string{"a\r\nInjected: 1"}
				w.Header()["Bad Key"] = []string{"v"}
				_, _ = io.WriteString(w, "ok")
			})
			direct := hostDo(t, client, http.MethodGet, srv.URL+"/h33")
			e := newHostEnv(t, hv, bridgetest.SendThen([]*bridgetest.ResponseMsg{
				{Init: bridgetest.RespInit(200, "X-V", "a\r\nInjected: 1", "Bad Key", "v"), BodyChunk: []byte("ok"), BodyComplete: true},
			}, nil))
			bridged := e.Get(t, "/h33")
			if bridged.Status != 200 || string(bridged.Body) != "ok" {
				t.Errorf("got %d %q, want 200 ok", bridged.Status, bridged.Body)
			}
			for k := range bridged.Header {
				if strings.EqualFold(k, "Injected") || strings.Contains(k, " ") {
					t.Errorf("client got header %q: %q", k, bridged.Header[k])
				}
			}
			if got, want := hostComparable(bridged.Header), hostComparable(direct.Header); !reflect.DeepEqual(got, want) {
				t.Errorf("headers differ from direct:\nbridged %q\ndirect  %q", got, want)
			}
		})
	}
}

// H34: plugin headers replace what host middleware preset for the same key;
// other preset keys stay.
func TestH34PluginHeadersReplacePreset(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := newHostEnvWith(t, hostSetup{cfg: bridgetest.Config{
		Wrap: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("X-Frame-Options", "DENY")
				next.ServeHTTP(w, r)
			})
		},
	}}, bridgetest.SendThen([]*bridgetest.ResponseMsg{
		{Init: bridgetest.RespInit(200, "Content-Type", "text/plain"), BodyChunk: []byte("ok"), BodyComplete: true},
	}, nil))
	res := e.Get(t, "/h34")
	if got := res.Header.Values("Content-Type"); !slices.Equal(got, []string{"text/plain"}) {
		t.Errorf("Content-Type = %q, want exactly [text/plain]", got)
	}
	if got := res.Header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options = %q, want DENY", got)
	}
}

// ---------------------------------------------------------------------------
// 6.1 Cleanup and failures to connect (H35–H37).

// H35: with a recorder and a Background request context, the host still
// cancels the stream when it returns.
func TestH35RecorderStreamCancelled(t *testing.T) {
	bridgetest.LeakCheck(t)
	cancelled := make(chan bool, 1)
	e := newHostEnv(t, bridgetest.HTTP1, hostSendAwait(cancelled, hostOK()))
	rec, err := e.forwardRecorder(t)
	if err != nil || rec.Code != 200 || rec.Body.String() != "ok" {
		t.Errorf("Forward: %v, %d %q; want nil, 200 ok", err, rec.Code, rec.Body)
	}
	if c, ok := bridgetest.WaitFor(t, cancelled, 2*bridgetest.Promptly, "the plugin's report"); ok && !c {
		t.Error("the plugin's stream context was not Done after the host returned")
	}
}

// H36: the stream cannot be opened, because the plugin server is gone or
// because Open fails: the client gets the host's default 503 (H-F1, H-S5b),
// which does not reveal the error, and the host returns an error.
func TestH36OpenFails(t *testing.T) {
	for _, tr := range bridgetest.Transports {
		t.Run("plugin-server-stopped/"+string(tr), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			e := newHostEnvWith(t, hostSetup{cfg: bridgetest.Config{Transport: tr}}, bridgetest.SendThen([]*bridgetest.ResponseMsg{hostOK()}, nil))
			if res := e.Get(t, "/h36"); res.Status != 200 {
				t.Fatalf("warm-up got %d", res.Status)
			}
			e.returned(t, bridgetest.Promptly)
			e.Plugin.Stop()
			e.Plugin.WaitNotReady(t)
			res := e.Get(t, "/h36")
			bridgetest.CheckDefaultErrorResponse(t, res.Status, res.Header, res.Body, 503)
			if r, ok := e.returned(t, bridgetest.Promptly); ok && r.err == nil {
				t.Error("Forward returned nil although the stream could not be opened")
			}
			rec, err := e.forwardRecorder(t)
			if err == nil || rec.Code != 503 {
				t.Errorf("Forward with a recorder: %v, status %d; want an error and 503", err, rec.Code)
			}
		})
	}
	t.Run("Open-returns-error", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		e := newHostEnvWith(t, hostSetup{cfg: bridgetest.Config{
			SetupHost: func(h *pluginapiv1.ServeHTTPHost) { h.Open = hostFailingOpen },
		}}, bridgetest.SendThen([]*bridgetest.ResponseMsg{hostOK()}, nil))
		res := e.Get(t, "/h36")
		bridgetest.CheckDefaultErrorResponse(t, res.Status, res.Header, res.Body, 503, "secret-open-detail")
		rec, err := e.forwardRecorder(t)
		if !errors.Is(err, errHostOpen) {
			t.Errorf("Forward returned %v, want an error wrapping Open's", err)
		}
		bridgetest.CheckDefaultErrorResponse(t, rec.Code, rec.Header(), rec.Body.Bytes(), 503, "secret-open-detail")
		if n := e.plugin.Calls(); n != 0 {
			t.Errorf("the plugin was called %d times", n)
		}
	})
}

// errHostOpen is what hostFailingOpen fails with.
var errHostOpen = errors.New("dial plugin: secret-open-detail")

// hostFailingOpen is a ServeHTTPHost.Open that cannot open a stream.
func hostFailingOpen(context.Context, ...grpc.CallOption) (bridgetest.ClientStream, error) {
	return nil, errHostOpen
}

// The host's ErrorHandler replaces its default answer to a failure before
// the response started (H-F1, H-F2) and gets the error and the request; a
// failure after the status was written is an abort (H-F3) and does not
// call it.
func TestHostErrorHandler(t *testing.T) {
	type call struct {
		err    error
		method string
	}
	for _, tc := range []struct {
		name     string
		open     bool // Open fails
		msgs     []*bridgetest.ResponseMsg
		wantErr  error // the error ErrorHandler must get, if not only "some error"
		wantCall bool
	}{
		{name: "open-fails", open: true, wantErr: errHostOpen, wantCall: true},
		{name: "plugin-error-before-output", wantCall: true},
		{name: "plugin-error-after-output", msgs: []*bridgetest.ResponseMsg{
			{Init: bridgetest.RespInit(200), BodyChunk: []byte("hello"), Flush: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			calls := make(chan call, 1)
			e := newHostEnvWith(t, hostSetup{raw: true, cfg: bridgetest.Config{
				SetupHost: func(h *pluginapiv1.ServeHTTPHost) {
					if tc.open {
						h.Open = hostFailingOpen
					}
					h.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
						calls <- call{err, r.Method}
						w.WriteHeader(http.StatusTeapot)
						_, _ = io.WriteString(w, "custom")
					}
				},
			}}, bridgetest.SendThen(tc.msgs, func(context.Context) error { return status.Error(codes.Internal, "plugin failed") }))
			res := e.Get(t, "/")
			if !tc.wantCall {
				hostCheckAbort(t, bridgetest.HTTP1, res)
				select {
				case c := <-calls:
					t.Errorf("ErrorHandler called after the status was written: %v", c.err)
				default:
				}
				return
			}
			if res.Status != http.StatusTeapot || string(res.Body) != "custom" || res.ReadErr != nil {
				t.Errorf("got %d %q (%v), want the ErrorHandler's 418 %q", res.Status, res.Body, res.ReadErr, "custom")
			}
			c, ok := bridgetest.WaitFor(t, calls, bridgetest.Promptly, "ErrorHandler")
			if ok && (c.err == nil || (tc.wantErr != nil && !errors.Is(c.err, tc.wantErr)) || c.method != http.MethodGet) {
				t.Errorf("ErrorHandler got (%v, %s), want the error (%v) and the request", c.err, c.method, tc.wantErr)
			}
		})
	}
}

// H37: 100 mixed exchanges (normal, aborted, cancelled, early response):
// goroutines return to baseline within 2 s. The race detector is the rest.
func TestH37MixedExchanges(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			e := newHostEnv(t, hv, hostMixedScript)
			upload := make([]byte, 512<<10) // over net/http's 256 KiB drain limit
			exchange := func(i int) {
				switch i % 4 {
				case 0:
					if res := e.Get(t, "/ok"); res.Status != 200 || string(res.Body) != "ok" {
						t.Errorf("exchange %d: %d %q", i, res.Status, res.Body)
					}
				case 1:
					if res := e.Get(t, "/abort"); res.ReadErr == nil {
						t.Errorf("exchange %d: aborted response ended cleanly", i)
					}
				case 2:
					ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
					defer cancel()
					resp, err := e.Client.Do(e.Request(t, ctx, http.MethodGet, "/slow", nil))
					if err != nil {
						t.Errorf("exchange %d: %v", i, err)
						return
					}
					_, _ = io.ReadFull(resp.Body, make([]byte, 4))
					cancel()
					resp.Body.Close()
				case 3:
					if res := hostPost(t, e, "/early", bytes.NewReader(upload)); res.Status != 200 || string(res.Body) != "ok" {
						t.Errorf("exchange %d: %d %q", i, res.Status, res.Body)
					}
				}
			}
			// Baseline: servers, the gRPC connection and one exchange of
			// each kind done, idle connections closed.
			for i := range 4 {
				exchange(i)
			}
			e.Client.CloseIdleConnections()
			baseline := hostSettledGoroutines()
			for i := range 100 {
				exchange(i)
			}
			e.Client.CloseIdleConnections()
			var n int
			if !bridgetest.Eventually(2*time.Second, func() bool {
				e.Client.CloseIdleConnections()
				n = runtime.NumGoroutine()
				return n <= baseline
			}) {
				t.Errorf("%d goroutines 2s after 100 exchanges, baseline %d", n, baseline)
			}
		})
	}
}

// hostMixedScript answers by path: /ok, /abort (RPC error after "hello"),
// /slow (ticks until the stream ends), /early (answers without reading the
// upload).
func hostMixedScript(stream bridgetest.ServerStream) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	switch first.GetInit().GetUrl() {
	case "/abort":
		if err := stream.Send(&bridgetest.ResponseMsg{Init: bridgetest.RespInit(200), BodyChunk: []byte("hello"), Flush: true}); err != nil {
			return err
		}
		return status.Error(codes.Internal, "plugin failed")
	case "/slow":
		msg := &bridgetest.ResponseMsg{Init: bridgetest.RespInit(200), BodyChunk: []byte("tick"), Flush: true}
		for range 500 {
			if err := stream.Send(msg); err != nil {
				return err
			}
			msg = bridgetest.Resp("tick", true, false)
			select {
			case <-stream.Context().Done():
				return stream.Context().Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
		return nil
	default:
		return stream.Send(hostOK())
	}
}

// hostSettledGoroutines returns the goroutine count once it stopped
// falling (at most 1 s).
func hostSettledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return min(m, n)
		}
		n = m
	}
	return n
}
