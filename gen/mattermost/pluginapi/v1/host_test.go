package pluginapiv1_test

// More host-adapter conformance cases from the spec's table 6.1, against
// scripted plugins (and one raw TCP client).

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// H06, H14, H31: what the client sees of a scripted message sequence.
func TestHostScriptedResponses(t *testing.T) {
	for _, tc := range []struct {
		name       string
		msgs       []*bridgetest.ResponseMsg
		wantStatus int
		wantBody   string
		present    map[string][]string
		absent     []string
	}{
		{
			name: "H06-multi-message-body-and-cookies",
			msgs: []*bridgetest.ResponseMsg{
				{Init: bridgetest.RespInit(201, "Set-Cookie", "a=1", "Set-Cookie", "b=2", "X-A", "x"), BodyChunk: []byte("ab")},
				{BodyChunk: []byte("cd"), BodyComplete: true},
			},
			wantStatus: 201, wantBody: "abcd",
			present: map[string][]string{"Set-Cookie": {"a=1", "b=2"}, "X-A": {"x"}},
		},
		{
			name: "H14-later-init-ignored",
			msgs: []*bridgetest.ResponseMsg{
				{Init: bridgetest.RespInit(200, "X-A", "1"), BodyChunk: []byte("a")},
				{Init: bridgetest.RespInit(500, "X-B", "2"), BodyChunk: []byte("b"), BodyComplete: true},
			},
			wantStatus: 200, wantBody: "ab",
			present: map[string][]string{"X-A": {"1"}},
			absent:  []string{"X-B"},
		},
		{
			name: "H31-204-with-body",
			msgs: []*bridgetest.ResponseMsg{
				{Init: bridgetest.RespInit(204), BodyChunk: []byte("x"), BodyComplete: true},
			},
			wantStatus: 204, wantBody: "",
		},
		{
			name: "lowercase-header-keys-canonicalized",
			msgs: []*bridgetest.ResponseMsg{
				{Init: bridgetest.RespInit(200, "x-lower", "v"), BodyChunk: []byte("ok"), BodyComplete: true},
			},
			wantStatus: 200, wantBody: "ok",
			present: map[string][]string{"X-Lower": {"v"}},
		},
		{
			name: "H29-chunk-larger-than-64KiB",
			msgs: []*bridgetest.ResponseMsg{
				{Init: bridgetest.RespInit(200), BodyChunk: make([]byte, 1<<20), BodyComplete: true},
			},
			wantStatus: 200, wantBody: string(make([]byte, 1<<20)),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, hv := range bridgetest.HTTPVersions {
				t.Run(string(hv), func(t *testing.T) {
					bridgetest.LeakCheck(t)
					e := bridgetest.NewEnv(t, bridgetest.Config{HTTPVersion: hv, Plugin: &bridgetest.ScriptedPlugin{Script: bridgetest.SendThen(tc.msgs, nil)}})
					res := e.Get(t, "/")
					if res.Status != tc.wantStatus || string(res.Body) != tc.wantBody || res.ReadErr != nil {
						t.Errorf("got %d, %d body bytes, read error %v; want %d, %d bytes",
							res.Status, len(res.Body), res.ReadErr, tc.wantStatus, len(tc.wantBody))
					}
					for k, want := range tc.present {
						if got := res.Header.Values(k); !slices.Equal(got, want) {
							t.Errorf("%s = %q, want %q", k, got, want)
						}
					}
					for _, k := range tc.absent {
						if v := res.Header.Values(k); v != nil {
							t.Errorf("%s = %q, want absent", k, v)
						}
					}
					// A recorder, unlike net/http, keeps a 204's body: the host
					// leaves that filtering to the real ResponseWriter (H-S9).
					rec, err := e.Forward(t, "/")
					if err != nil || rec.Code != tc.wantStatus || (tc.wantStatus != 204 && rec.Body.String() != tc.wantBody) {
						t.Errorf("Forward: %v, recorder %d with %d bytes", err, rec.Code, rec.Body.Len())
					}
				})
			}
		})
	}
}

// H18: after body_complete the plugin keeps sending and never ends the RPC:
// the host ignores the rest, returns bridgetest.Promptly and cancels the stream.
func TestHostIgnoresMessagesAfterComplete(t *testing.T) {
	bridgetest.LeakCheck(t)
	pluginCtxDone := make(chan struct{})
	script := func(stream bridgetest.ServerStream) error {
		if _, err := stream.Recv(); err != nil {
			return err
		}
		if err := stream.Send(&bridgetest.ResponseMsg{Init: bridgetest.RespInit(200), BodyChunk: []byte("a"), BodyComplete: true}); err != nil {
			return err
		}
		deadline := time.After(5 * time.Second)
		for {
			if err := stream.Send(&bridgetest.ResponseMsg{BodyChunk: []byte("zzz")}); err != nil {
				break
			}
			select {
			case <-stream.Context().Done():
			case <-deadline:
				return nil
			case <-time.After(5 * time.Millisecond):
				continue
			}
			break
		}
		select {
		case <-stream.Context().Done():
			close(pluginCtxDone)
		case <-time.After(5 * time.Second):
		}
		return nil
	}
	e := bridgetest.NewEnv(t, bridgetest.Config{Plugin: &bridgetest.ScriptedPlugin{Script: script}})
	start := time.Now()
	rec, err := e.Forward(t, "/")
	if d := time.Since(start); d > bridgetest.Promptly {
		t.Errorf("Forward took %v after body_complete", d)
	}
	if err != nil || rec.Code != 200 || rec.Body.String() != "a" {
		t.Errorf("Forward: %v, recorder %d %q; want nil, 200 %q", err, rec.Code, rec.Body, "a")
	}
	bridgetest.WaitFor(t, pluginCtxDone, bridgetest.Promptly, "the plugin's stream context to be cancelled")
}

// H34: plugin headers replace values the host's middleware pre-set for the
// same key; other pre-set keys stay.
func TestHostPluginHeadersReplacePreset(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := bridgetest.NewEnv(t, bridgetest.Config{
		Plugin: &bridgetest.ScriptedPlugin{Script: bridgetest.SendThen([]*bridgetest.ResponseMsg{
			{Init: bridgetest.RespInit(200, "Content-Type", "text/plain"), BodyChunk: []byte("ok"), BodyComplete: true},
		}, nil)},
		Wrap: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("X-Frame-Options", "DENY")
				next.ServeHTTP(w, r)
			})
		},
	})
	res := e.Get(t, "/")
	if got := res.Header.Values("Content-Type"); !slices.Equal(got, []string{"text/plain"}) {
		t.Errorf("Content-Type = %q, want [text/plain]", got)
	}
	if got := res.Header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options = %q, want DENY", got)
	}
}

// H23 / H-Q8: a raw client declares Content-Length 1000, sends 10 bytes and
// stalls; the plugin answers at once. The client gets the whole response
// while still stalled, and the host's handler returns: it does not wait for
// the stuck body pump.
func TestHostStalledUploadEarlyResponse(t *testing.T) {
	bridgetest.LeakCheck(t)
	hostReturned := make(chan struct{}, 1)
	gotBytes := make(chan int, 1)
	e := bridgetest.NewEnv(t, bridgetest.Config{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			buf := make([]byte, 10)
			n, _ := io.ReadFull(r.Body, buf)
			gotBytes <- n
			io.WriteString(w, "early")
		}),
		Wrap: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer func() { hostReturned <- struct{}{} }()
				next.ServeHTTP(w, r)
			})
		},
	})
	conn, err := net.Dial("tcp", e.Server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// End like a vanished client (reset): a clean close here would race
	// net/http's own body drain (see TestHostEarlyResponseKeepAlive).
	defer rstClose(conn)
	fmt.Fprintf(conn, "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n0123456789")
	conn.SetReadDeadline(time.Now().Add(bridgetest.Promptly))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response while the upload is stalled: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "early" || err != nil {
		t.Errorf("got %d %q (%v), want 200 %q", resp.StatusCode, body, err, "early")
	}
	if n, ok := bridgetest.WaitFor(t, gotBytes, bridgetest.Promptly, "plugin handler"); ok && n != 10 {
		t.Errorf("plugin read %d bytes, want 10", n)
	}
	bridgetest.WaitFor(t, hostReturned, bridgetest.Promptly, "the host handler to return while the upload is stalled")
}

// H20/H21 with Forward: flush flags reach a writer that only exposes
// Unwrap(), and a writer that cannot flush is not an error.
func TestHostFlushThroughWrappers(t *testing.T) {
	bridgetest.LeakCheck(t)
	msgs := []*bridgetest.ResponseMsg{
		{Init: bridgetest.RespInit(200), BodyChunk: []byte("a"), Flush: true},
		{BodyChunk: []byte("b"), Flush: true, BodyComplete: true},
	}
	e := bridgetest.NewEnv(t, bridgetest.Config{Plugin: &bridgetest.ScriptedPlugin{Script: bridgetest.SendThen(msgs, nil)}})
	for _, tc := range []struct {
		name        string
		wrap        func(*httptest.ResponseRecorder) http.ResponseWriter
		wantFlushed bool
	}{
		{"unwrap-only", func(rec *httptest.ResponseRecorder) http.ResponseWriter { return unwrapOnly{rec} }, true},
		{"no-flusher", func(rec *httptest.ResponseRecorder) http.ResponseWriter { return noFlusher{rec} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "/", nil)
			err := e.Host.Forward(tc.wrap(rec), req)
			if err != nil || rec.Code != 200 || rec.Body.String() != "ab" {
				t.Errorf("Forward: %v, recorder %d %q", err, rec.Code, rec.Body)
			}
			if rec.Flushed != tc.wantFlushed {
				t.Errorf("recorder Flushed = %v, want %v", rec.Flushed, tc.wantFlushed)
			}
		})
	}
}

// unwrapOnly hides every optional interface but Unwrap, as middleware
// wrappers often do; http.ResponseController still reaches the flusher.
type unwrapOnly struct{ rec *httptest.ResponseRecorder }

func (u unwrapOnly) Header() http.Header         { return u.rec.Header() }
func (u unwrapOnly) Write(p []byte) (int, error) { return u.rec.Write(p) }
func (u unwrapOnly) WriteHeader(code int)        { u.rec.WriteHeader(code) }
func (u unwrapOnly) Unwrap() http.ResponseWriter { return u.rec }

// noFlusher is a writer with no way to flush at all.
type noFlusher struct{ rec *httptest.ResponseRecorder }

func (n noFlusher) Header() http.Header         { return n.rec.Header() }
func (n noFlusher) Write(p []byte) (int, error) { return n.rec.Write(p) }
func (n noFlusher) WriteHeader(code int)        { n.rec.WriteHeader(code) }

// rstClose closes a raw TCP connection with a reset, like a client that
// disappears, so that the server's pending read fails instead of seeing a
// clean end of stream.
func rstClose(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// After an early response (the plugin answered before reading the upload),
// the client finishes its upload and sends a second request on the same
// HTTP/1.1 connection: the server must answer it (or have announced
// Connection: close), and the host's server must not panic.
func TestHostEarlyResponseKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers string
		body    string
	}{
		{"chunked", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"},
		{"content-length", "Content-Length: 5\r\n", "hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			e := bridgetest.NewEnv(t, bridgetest.Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "ok:"+r.URL.Path)
			})})
			conn, err := net.Dial("tcp", e.Server.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer rstClose(conn)
			conn.SetDeadline(time.Now().Add(2 * bridgetest.Promptly))
			br := bufio.NewReader(conn)
			fmt.Fprintf(conn, "POST /first HTTP/1.1\r\nHost: test\r\n%s\r\n", tc.headers)
			if tc.name == "content-length" {
				// With a declared length the first body bytes must arrive for
				// the request to start; send one, the rest after the answer.
				fmt.Fprint(conn, tc.body[:1])
				tc.body = tc.body[1:]
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("first response: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(body) != "ok:/first" || err != nil {
				t.Fatalf("first response: %d %q %v", resp.StatusCode, body, err)
			}
			fmt.Fprint(conn, tc.body)
			if resp.Close {
				return // the server announced it closes the connection
			}
			fmt.Fprint(conn, "GET /second HTTP/1.1\r\nHost: test\r\n\r\n")
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

// H05: client-style requests given to Forward directly (as Mattermost does
// for inter-plugin calls): a nil Body, and a streaming Body with
// ContentLength 0 whose bytes must all be forwarded.
func TestHostClientStyleRequests(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := bridgetest.NewEnv(t, bridgetest.Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		io.WriteString(w, r.Method+":"+string(b))
	})})
	t.Run("nil-body", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, "/x", nil)
		rec := httptest.NewRecorder()
		if err := e.Host.Forward(rec, req); err != nil || rec.Body.String() != "POST:" {
			t.Errorf("Forward: %v, %d %q", err, rec.Code, rec.Body)
		}
	})
	t.Run("stream-with-content-length-0", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			io.WriteString(pw, "part1,")
			io.WriteString(pw, "part2")
			pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPut, "/x", pr)
		req.ContentLength = 0
		rec := httptest.NewRecorder()
		if err := e.Host.Forward(rec, req); err != nil || rec.Body.String() != "PUT:part1,part2" {
			t.Errorf("Forward: %v, %d %q", err, rec.Code, rec.Body)
		}
	})
}

// H37: many mixed exchanges (normal, aborted, cancelled, early response) on
// one bridge; goroutines return to baseline afterwards (leak check) and
// -race stays clean.
func TestMixedExchanges(t *testing.T) {
	upload := make([]byte, 1<<20) // over net/http's 256 KiB drain limit
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			e := bridgetest.NewEnv(t, bridgetest.Config{HTTPVersion: hv, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/abort":
					io.WriteString(w, "hello")
					w.(http.Flusher).Flush()
					panic(http.ErrAbortHandler)
				case "/slow":
					io.WriteString(w, "tick")
					w.(http.Flusher).Flush()
					<-r.Context().Done()
				default: // "/ok" and the early response to "/upload"
					io.WriteString(w, "ok")
				}
			})})
			for i := range 40 {
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
					ctx, cancel := context.WithCancel(t.Context())
					resp, err := e.Client.Do(e.Request(t, ctx, http.MethodGet, "/slow", nil))
					if err != nil {
						cancel()
						t.Fatalf("exchange %d: %v", i, err)
					}
					io.ReadFull(resp.Body, make([]byte, 4))
					cancel()
					resp.Body.Close()
				case 3:
					ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
					res := e.RoundTrip(t, e.Request(t, ctx, http.MethodPost, "/upload", bytes.NewReader(upload)))
					cancel()
					if res.Status != 200 || string(res.Body) != "ok" {
						t.Errorf("exchange %d: %d %q", i, res.Status, res.Body)
					}
				}
			}
		})
	}
}
