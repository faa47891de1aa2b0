package pluginapiv1_test

// More plugin-facade conformance cases from the spec's table 6.2, driven by
// a scripted host, plus two end-to-end ones (interactive echo,
// MaxBytesReader).

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// bodyOutcome is what a handler read from its request body.
type bodyOutcome struct {
	data      string
	err       error // the error that ended the reading
	firstRead time.Time
}

// readBody reads r.Body with a small buffer until an error.
func readBody(r *http.Request) bodyOutcome {
	var o bodyOutcome
	buf := make([]byte, 2)
	for {
		n, err := r.Body.Read(buf)
		if o.firstRead.IsZero() {
			o.firstRead = time.Now()
		}
		o.data += string(buf[:n])
		if err != nil {
			o.err = err
			return o
		}
	}
}

// F07, F08, F10: request body streaming and truncation.
func TestFacadeRequestBody(t *testing.T) {
	t.Run("F07-chunks-delivered-as-they-arrive", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		outcome := make(chan bodyOutcome, 1)
		p := bridgetest.StartFacade(t, func(w http.ResponseWriter, r *http.Request) { outcome <- readBody(r) })
		stream, _ := bridgetest.OpenStream(t, p.Client)
		init := bridgetest.ReqInit("POST", "/")
		init.ContentLength = -1
		start := time.Now()
		if err := stream.Send(&bridgetest.RequestMsg{Init: init, BodyChunk: []byte("hel")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if err := stream.Send(&bridgetest.RequestMsg{BodyChunk: []byte("lo"), BodyComplete: true}); err != nil {
			t.Fatal(err)
		}
		stream.CloseSend()
		o, ok := bridgetest.WaitFor(t, outcome, bridgetest.Promptly, "handler")
		if !ok {
			return
		}
		if o.data != "hello" || o.err != io.EOF {
			t.Errorf("handler read %q then %v, want %q then EOF", o.data, o.err, "hello")
		}
		if d := o.firstRead.Sub(start); d >= 200*time.Millisecond {
			t.Errorf("first Read returned after %v, not before the second chunk was sent", d)
		}
		drain(t, stream)
	})
	for _, tc := range []struct {
		name          string
		contentLength int64
		msgs          []*bridgetest.RequestMsg
		want          string
	}{
		{"F08-half-close-without-complete", -1, []*bridgetest.RequestMsg{{BodyChunk: []byte("ab")}}, "ab"},
		{"F10-shorter-than-content-length", 5, []*bridgetest.RequestMsg{{BodyChunk: []byte("abc"), BodyComplete: true}}, "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			outcome := make(chan bodyOutcome, 1)
			p := bridgetest.StartFacade(t, func(w http.ResponseWriter, r *http.Request) { outcome <- readBody(r) })
			init := bridgetest.ReqInit("POST", "/")
			init.ContentLength = tc.contentLength
			msgs := append([]*bridgetest.RequestMsg{{Init: init}}, tc.msgs...)
			if _, err := bridgetest.ScriptedHost(t, p.Client, msgs...); err != nil {
				t.Errorf("response stream: %v", err)
			}
			o, ok := bridgetest.WaitFor(t, outcome, bridgetest.Promptly, "handler")
			if ok && (o.data != tc.want || !errors.Is(o.err, io.ErrUnexpectedEOF)) {
				t.Errorf("handler read %q then %v, want %q then unexpected EOF", o.data, o.err, tc.want)
			}
		})
	}
}

// drain reads the rest of a raw stream's responses (bounded by its context).
func drain(t *testing.T, stream interface {
	Recv() (*bridgetest.ResponseMsg, error)
}) {
	t.Helper()
	for {
		if _, err := stream.Recv(); err != nil {
			return
		}
	}
}

// F09 / F28: the host cancels its stream. A handler blocked in Body.Read
// gets a non-EOF error and a Done context; a handler writing 64 KiB at a
// time gets a Write error, all within bounds.
func TestFacadeHostCancels(t *testing.T) {
	t.Run("F09-during-body-read", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		outcome := make(chan handlerOutcome, 1)
		p := bridgetest.StartFacade(t, func(w http.ResponseWriter, r *http.Request) {
			o := readBody(r)
			select {
			case <-r.Context().Done():
			case <-time.After(bridgetest.Promptly):
			}
			outcome <- handlerOutcome{err: o.err, ctxErr: r.Context().Err(), at: time.Now()}
		})
		stream, cancel := bridgetest.OpenStream(t, p.Client)
		init := bridgetest.ReqInit("POST", "/")
		init.ContentLength = -1
		if err := stream.Send(&bridgetest.RequestMsg{Init: init, BodyChunk: []byte("ab")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		cancelAt := time.Now()
		cancel()
		o, ok := bridgetest.WaitFor(t, outcome, bridgetest.ExchangeTimeout, "handler")
		if !ok {
			return
		}
		if o.err == nil || errors.Is(o.err, io.EOF) {
			t.Errorf("body Read error = %v, want a non-EOF error", o.err)
		}
		if o.ctxErr == nil {
			t.Error("request context not Done after the host cancelled")
		}
		if d := o.at.Sub(cancelAt); d > time.Second {
			t.Errorf("handler noticed the cancel after %v", d)
		}
	})
	t.Run("F28-while-writing", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		outcome := make(chan handlerOutcome, 1)
		p := bridgetest.StartFacade(t, func(w http.ResponseWriter, r *http.Request) {
			chunk := make([]byte, 64<<10)
			deadline := time.Now().Add(bridgetest.ExchangeTimeout)
			for time.Now().Before(deadline) {
				if _, err := w.Write(chunk); err != nil {
					outcome <- handlerOutcome{err: err, ctxErr: r.Context().Err(), at: time.Now()}
					return
				}
			}
			outcome <- handlerOutcome{}
		})
		stream, cancel := bridgetest.OpenStream(t, p.Client)
		if err := stream.Send(&bridgetest.RequestMsg{Init: bridgetest.ReqInit("GET", "/"), BodyComplete: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("first response message: %v", err)
		}
		cancelAt := time.Now()
		cancel()
		o, ok := bridgetest.WaitFor(t, outcome, bridgetest.ExchangeTimeout, "handler")
		if !ok {
			return
		}
		if o.err == nil {
			t.Fatal("handler wrote for 10s after the host cancelled")
		}
		if d := o.at.Sub(cancelAt); d > time.Second {
			t.Errorf("Write failed %v after the cancel, want within 1s", d)
		}
	})
}

// F13: the request body and context after the handler returned.
func TestFacadeRequestAfterReturn(t *testing.T) {
	bridgetest.LeakCheck(t)
	kept := make(chan *http.Request, 1)
	p := bridgetest.StartFacade(t, func(w http.ResponseWriter, r *http.Request) {
		kept <- r
		io.WriteString(w, "ok")
	})
	init := bridgetest.ReqInit("POST", "/")
	init.ContentLength = -1
	msgs, err := bridgetest.ScriptedHost(t, p.Client, &bridgetest.RequestMsg{Init: init, BodyChunk: []byte("unread")})
	if err != nil {
		t.Fatalf("response stream: %v", err)
	}
	bridgetest.CheckFraming(t, msgs, bridgetest.ChunkMax)
	r, ok := bridgetest.WaitFor(t, kept, bridgetest.Promptly, "handler")
	if !ok {
		return
	}
	if _, err := r.Body.Read(make([]byte, 10)); err == nil {
		t.Error("Body.Read after the handler returned succeeded")
	}
	select {
	case <-r.Context().Done():
	case <-time.After(bridgetest.Promptly):
		t.Error("request context not Done after the handler returned")
	}
}

// ResponseWriter semantics that mirror net/http (F17, F19, F20, F21, F29,
// F31), observed as response messages.
func TestFacadeResponseWriterSemantics(t *testing.T) {
	for _, tc := range []struct {
		name       string
		handler    func(w http.ResponseWriter) error // returns the error to check
		wantErr    error                             // nil: no error expected
		wantStatus int32
		wantBody   string
		present    []string
		absent     []string
	}{
		{
			name: "F17-header-change-after-write",
			handler: func(w http.ResponseWriter) error {
				w.Header().Set("A", "1")
				io.WriteString(w, "hi")
				w.Header().Set("B", "2")
				return nil
			},
			wantStatus: 200, wantBody: "hi", present: []string{"A"}, absent: []string{"B"},
		},
		{
			name: "F19-second-WriteHeader-ignored",
			handler: func(w http.ResponseWriter) error {
				w.WriteHeader(404)
				w.WriteHeader(500)
				io.WriteString(w, "x")
				return nil
			},
			wantStatus: 404, wantBody: "x",
		},
		{
			name: "F20-header-change-after-WriteHeader",
			handler: func(w http.ResponseWriter) error {
				w.WriteHeader(202)
				w.Header().Set("A", "x")
				return nil
			},
			wantStatus: 202, absent: []string{"A"},
		},
		{
			name: "F21-1xx-does-not-lock",
			handler: func(w http.ResponseWriter) error {
				w.WriteHeader(103)
				w.Header().Set("X", "1")
				w.WriteHeader(201)
				io.WriteString(w, "x")
				return nil
			},
			wantStatus: 201, wantBody: "x", present: []string{"X"},
		},
		{
			name: "F29-204-refuses-body",
			handler: func(w http.ResponseWriter) error {
				w.WriteHeader(204)
				_, err := io.WriteString(w, "x")
				return err
			},
			wantErr: http.ErrBodyNotAllowed, wantStatus: 204,
		},
		{
			name: "F29-304-refuses-body",
			handler: func(w http.ResponseWriter) error {
				w.WriteHeader(304)
				_, err := io.WriteString(w, "x")
				return err
			},
			wantErr: http.ErrBodyNotAllowed, wantStatus: 304,
		},
		{
			name: "F31-write-past-content-length",
			handler: func(w http.ResponseWriter) error {
				w.Header().Set("Content-Length", "3")
				_, err := io.WriteString(w, "abcdef")
				return err
			},
			wantErr: http.ErrContentLength, wantStatus: 200, present: []string{"Content-Length"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			errc := make(chan error, 1)
			p := bridgetest.StartFacade(t, func(w http.ResponseWriter, r *http.Request) { errc <- tc.handler(w) })
			msgs, err := bridgetest.ScriptedHost(t, p.Client, &bridgetest.RequestMsg{Init: bridgetest.ReqInit("GET", "/"), BodyComplete: true})
			if err != nil {
				t.Errorf("response stream: %v", err)
			}
			f := bridgetest.CheckFraming(t, msgs, bridgetest.ChunkMax)
			if f.Status != tc.wantStatus || string(f.Body) != tc.wantBody {
				t.Errorf("response %d %q, want %d %q", f.Status, f.Body, tc.wantStatus, tc.wantBody)
			}
			sent := map[string]bool{}
			for _, h := range f.Headers {
				sent[http.CanonicalHeaderKey(h.GetKey())] = true
			}
			for _, k := range tc.present {
				if !sent[k] {
					t.Errorf("header %s not sent (headers %v)", k, f.Headers)
				}
			}
			for _, k := range tc.absent {
				if sent[k] {
					t.Errorf("header %s sent, want absent", k)
				}
			}
			if herr, ok := bridgetest.WaitFor(t, errc, bridgetest.Promptly, "handler"); ok && herr != tc.wantErr {
				t.Errorf("handler's Write error = %v, want %v", herr, tc.wantErr)
			}
		})
	}
}

// F41: a goroutine the handler left behind writes after the response ended:
// the calls fail without panicking and send nothing after body_complete.
func TestFacadeWriteAfterReturn(t *testing.T) {
	bridgetest.LeakCheck(t)
	ended := make(chan struct{})
	lateErr := make(chan error, 1)
	p := bridgetest.StartFacade(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "x")
		go func() {
			<-ended
			defer func() {
				if v := recover(); v != nil {
					lateErr <- errors.New("late use of the ResponseWriter panicked")
				}
			}()
			w.Header().Set("Late", "1")
			w.WriteHeader(500)
			_, werr := io.WriteString(w, "late")
			w.(http.Flusher).Flush()
			ferr := http.NewResponseController(w).Flush()
			switch {
			case werr == nil:
				lateErr <- errors.New("Write after the response ended succeeded")
			case ferr == nil:
				lateErr <- errors.New("ResponseController.Flush after the response ended succeeded")
			default:
				lateErr <- nil
			}
		}()
	})
	msgs, err := bridgetest.ScriptedHost(t, p.Client, &bridgetest.RequestMsg{Init: bridgetest.ReqInit("GET", "/"), BodyComplete: true})
	close(ended)
	if err != nil {
		t.Errorf("response stream: %v", err)
	}
	if f := bridgetest.CheckFraming(t, msgs, bridgetest.ChunkMax); string(f.Body) != "x" || f.Status != 200 {
		t.Errorf("response %d %q, want 200 %q", f.Status, f.Body, "x")
	}
	if err, ok := bridgetest.WaitFor(t, lateErr, bridgetest.Promptly, "late writer"); ok && err != nil {
		t.Error(err)
	}
}

// End to end: the client sends a piece, waits for its echo, then sends the
// next one (H04, F-B1, F39): nothing may wait to fill a 64 KiB chunk.
func TestEndToEndInteractiveEcho(t *testing.T) {
	forEachE2E(t, func(t *testing.T, tr bridgetest.Transport, hv bridgetest.HTTPVersion) {
		e := bridgetest.NewEnv(t, bridgetest.Config{Transport: tr, HTTPVersion: hv, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			buf := make([]byte, 64)
			for {
				n, err := r.Body.Read(buf)
				if n > 0 {
					w.Write(buf[:n])
					w.(http.Flusher).Flush()
				}
				if err != nil {
					return
				}
			}
		})})
		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) })
		ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
		defer cancel()
		go pw.Write([]byte("ping-1"))
		resp, err := e.Client.Do(e.Request(t, ctx, http.MethodPost, "/echo", pr))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		for i, piece := range []string{"ping-1", "ping-2", "ping-3"} {
			if i > 0 {
				if _, err := pw.Write([]byte(piece)); err != nil {
					t.Fatalf("sending %q: %v", piece, err)
				}
			}
			got := make([]byte, len(piece))
			if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != piece {
				t.Fatalf("echo of %q: %q, %v", piece, got, err)
			}
		}
		pw.Close()
		if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
			t.Errorf("after the upload ended: %q, %v; want a clean end", rest, err)
		}
	})
}

// F43: http.MaxBytesReader on the facade's body, and the handler's 413.
func TestEndToEndMaxBytesReader(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := bridgetest.NewEnv(t, bridgetest.Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 10))
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		io.WriteString(w, "fits")
	})})
	for _, tc := range []struct {
		body       string
		wantStatus int
	}{
		{strings.Repeat("x", 100), 413},
		{"small", 200},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
		res := e.RoundTrip(t, e.Request(t, ctx, http.MethodPost, "/", strings.NewReader(tc.body)))
		cancel()
		if res.Status != tc.wantStatus {
			t.Errorf("%d-byte body: status %d, want %d", len(tc.body), res.Status, tc.wantStatus)
		}
	}
}

// F44 with the scripted host: the handler reads the plugin context the
// host sent.
func TestFacadePluginContext(t *testing.T) {
	bridgetest.LeakCheck(t)
	seen := make(chan *pluginapiv1.PluginContext, 1)
	p := bridgetest.StartFacade(t, func(w http.ResponseWriter, r *http.Request) {
		init, _ := pluginapiv1.ServeHTTPRequestInitFromContext(r.Context())
		seen <- init.GetPluginContext()
	})
	init := bridgetest.ReqInit("GET", "/")
	init.PluginContext = &pluginapiv1.PluginContext{
		SessionId: "s", RequestId: "r", IpAddress: "i", AcceptLanguage: "a", UserAgent: "u",
	}
	if _, err := bridgetest.ScriptedHost(t, p.Client, &bridgetest.RequestMsg{Init: init, BodyComplete: true}); err != nil {
		t.Errorf("response stream: %v", err)
	}
	if pc, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "handler"); ok {
		if pc.GetSessionId() != "s" || pc.GetRequestId() != "r" || pc.GetIpAddress() != "i" ||
			pc.GetAcceptLanguage() != "a" || pc.GetUserAgent() != "u" {
			t.Errorf("plugin context = %v", pc)
		}
	}
	// Outside a facade request there is no init.
	if init, ok := pluginapiv1.ServeHTTPRequestInitFromContext(context.Background()); ok || init != nil {
		t.Errorf("ServeHTTPRequestInitFromContext(Background) = %v, %v", init, ok)
	}
}

// Request reconstruction edge cases (F02, F03, F06, F14, F15, F16).
func TestFacadeRequestEdgeCases(t *testing.T) {
	type view struct {
		method, path, rawQuery, proto string
		major, minor                  int
		contentLength                 int64
		noBody                        bool
		body                          string
		x                             []string
	}
	for _, tc := range []struct {
		name       string
		init       func(*pluginapiv1.ServeHTTPRequestInit)
		msgs       []*bridgetest.RequestMsg // after the init message (which has none)
		wantStatus int32
		want       *view // nil: the handler must not be called
	}{
		{
			name: "F02-empty-url", init: func(i *pluginapiv1.ServeHTTPRequestInit) { i.Url = "" },
			wantStatus: 200,
			want:       &view{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, noBody: true},
		},
		{
			name: "F02-query-only-url", init: func(i *pluginapiv1.ServeHTTPRequestInit) { i.Url = "?a=b" },
			wantStatus: 200,
			want:       &view{method: "GET", rawQuery: "a=b", proto: "HTTP/1.1", major: 1, minor: 1, noBody: true},
		},
		{
			name: "F03-invalid-url", init: func(i *pluginapiv1.ServeHTTPRequestInit) { i.Url = "/%zz" },
			wantStatus: 400,
		},
		{
			name: "F15-empty-proto-and-method",
			init: func(i *pluginapiv1.ServeHTTPRequestInit) {
				i.Method, i.Proto, i.ProtoMajor, i.ProtoMinor = "", "", 0, 0
			},
			wantStatus: 200,
			want:       &view{method: "GET", path: "/p", proto: "HTTP/1.1", major: 1, minor: 1, noBody: true},
		},
		{
			name: "F16-repeated-header-entries",
			init: func(i *pluginapiv1.ServeHTTPRequestInit) {
				i.Headers = []*pluginapiv1.HTTPHeader{{Key: "X", Values: []string{"1"}}, {Key: "x", Values: []string{"2"}}}
			},
			wantStatus: 200,
			want:       &view{method: "GET", path: "/p", proto: "HTTP/1.1", major: 1, minor: 1, noBody: true, x: []string{"1", "2"}},
		},
		{
			// [ref] F-Q7: a body announced as length 0 has an unknown length.
			name:       "F14-body-despite-content-length-0",
			init:       func(i *pluginapiv1.ServeHTTPRequestInit) { i.Method = "POST" },
			msgs:       []*bridgetest.RequestMsg{{BodyChunk: []byte("abc"), BodyComplete: true}},
			wantStatus: 200,
			want:       &view{method: "POST", path: "/p", proto: "HTTP/1.1", major: 1, minor: 1, contentLength: -1, body: "abc"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			seen := make(chan view, 1)
			p := bridgetest.StartFacade(t, func(w http.ResponseWriter, r *http.Request) {
				v := view{
					method: r.Method, path: r.URL.Path, rawQuery: r.URL.RawQuery, proto: r.Proto,
					major: r.ProtoMajor, minor: r.ProtoMinor, contentLength: r.ContentLength,
					noBody: r.Body == http.NoBody, x: r.Header.Values("X"),
				}
				b, err := io.ReadAll(r.Body)
				v.body = string(b)
				if err != nil {
					v.body += "<" + err.Error() + ">"
				}
				seen <- v
			})
			init := bridgetest.ReqInit("GET", "/p")
			tc.init(init)
			first := &bridgetest.RequestMsg{Init: init, BodyComplete: len(tc.msgs) == 0}
			msgs, err := bridgetest.ScriptedHost(t, p.Client, append([]*bridgetest.RequestMsg{first}, tc.msgs...)...)
			if err != nil {
				t.Errorf("response stream: %v", err)
			}
			if f := bridgetest.CheckFraming(t, msgs, bridgetest.ChunkMax); f.Status != tc.wantStatus {
				t.Errorf("status %d, want %d", f.Status, tc.wantStatus)
			}
			if tc.want == nil {
				select {
				case v := <-seen:
					t.Errorf("handler called with %+v", v)
				default:
				}
				return
			}
			v, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "handler")
			if !ok {
				return
			}
			if v.method != tc.want.method || v.path != tc.want.path || v.rawQuery != tc.want.rawQuery ||
				v.proto != tc.want.proto || v.major != tc.want.major || v.minor != tc.want.minor ||
				v.contentLength != tc.want.contentLength || v.noBody != tc.want.noBody ||
				v.body != tc.want.body || !slices.Equal(v.x, tc.want.x) {
				t.Errorf("handler saw %+v\nwant           %+v", v, *tc.want)
			}
		})
	}
}
