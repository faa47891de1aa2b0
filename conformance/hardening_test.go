package conformance

// Misuse that a real peer or caller can produce: a plugin that is not built
// from these templates (rules H-S5a, H-S5b), requests the contract cannot
// carry, secrets in logs, out-of-range settings, and a handler that leaves a
// body read pending (F-B8, F-P4).

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// H-S5a: a scripted plugin declares trailers, framing, an upgrade and
// connection options; none of it reaches the client, and the rest of its
// headers and its body do.
func TestHostDropsHopByHopHeaders(t *testing.T) {
	dropped := []string{"Trailer", "Trailer:X-Evil", "trailer:x-evil2", "Transfer-Encoding", "Upgrade", "Keep-Alive", "Connection", "Proxy-Connection", "Te", "X-Named", "X-Named-Too"}
	init := bridgetest.RespInit(200,
		"Trailer", "X-Declared",
		"Trailer:X-Evil", "1",
		"trailer:x-evil2", "1",
		"Transfer-Encoding", "chunked",
		"Upgrade", "h2c",
		"Keep-Alive", "timeout=1",
		"Connection", "X-Named, x-named-too",
		"Proxy-Connection", "keep-alive",
		"Te", "trailers",
		"X-Named", "1",
		"X-Named-Too", "1",
		"X-Kept", "k",
	)
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			env := bridgetest.NewEnv(t, bridgetest.Config{HTTPVersion: hv, Plugin: &bridgetest.ScriptedPlugin{
				Script: bridgetest.SendThen([]*bridgetest.ResponseMsg{{Init: init, BodyChunk: []byte("hello")}, bridgetest.Resp("", false, true)}, nil),
			}})
			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			resp, err := env.Client.Do(env.Request(t, ctx, http.MethodGet, "/", nil))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(body) != "hello" || resp.StatusCode != 200 {
				t.Fatalf("client got %d %q (%v), want 200 %q", resp.StatusCode, body, err, "hello")
			}
			if len(resp.Trailer) != 0 {
				t.Errorf("client got trailers %v", resp.Trailer)
			}
			if resp.Header.Get("X-Kept") != "k" {
				t.Errorf("X-Kept = %q, want k", resp.Header.Get("X-Kept"))
			}
			for _, key := range dropped {
				if v := resp.Header.Values(key); len(v) > 0 && !(key == "Connection" && hv == bridgetest.HTTP1 && v[0] == "close") {
					t.Errorf("%s: %q reached the client", key, v)
				}
			}
			if len(resp.TransferEncoding) > 0 && hv == bridgetest.HTTP1 && resp.ContentLength != -1 {
				t.Errorf("TransferEncoding %v with Content-Length %d", resp.TransferEncoding, resp.ContentLength)
			}
			if hv == bridgetest.HTTP1 {
				// The raw head: net/http frames the 5 bytes with Content-Length.
				raw := rawHTTP1Get(t, env.Server.Listener.Addr().String(), "/", "")
				raw.Body.Close()
				if raw.ContentLength != 5 || len(raw.TransferEncoding) != 0 {
					t.Errorf("raw response framed with Content-Length %d, Transfer-Encoding %v; want 5 and none", raw.ContentLength, raw.TransferEncoding)
				}
			}
		})
	}
}

// H-S5b: a request whose header value or query is not valid UTF-8 cannot be
// carried by a proto3 string. It gets 400, the plugin is not called, and
// the host does not log it as an error: any client can send it.
func TestHostUncarriableRequest(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			plugin := &bridgetest.ScriptedPlugin{Script: bridgetest.SendThen([]*bridgetest.ResponseMsg{{Init: bridgetest.RespInit(200), BodyComplete: true}}, nil)}
			env := bridgetest.NewEnv(t, bridgetest.Config{HTTPVersion: hv, Plugin: plugin})
			for _, tc := range []struct {
				name   string
				header string // "" for none
				query  string
			}{
				{name: "header-value", header: "caf\xe9"},
				{name: "raw-query", query: "q=\xff\xfe"},
			} {
				ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
				req := env.Request(t, ctx, http.MethodGet, "/p", nil)
				if tc.header != "" {
					req.Header.Set("X-Latin1", tc.header)
				}
				req.URL.RawQuery = tc.query
				res := env.RoundTrip(t, req)
				cancel()
				bridgetest.CheckDefaultErrorResponse(t, res.Status, res.Header, res.Body, http.StatusBadRequest)
			}
			// HTTP/2 servers accept bytes over 0x7f in :method; Forward
			// sees such a request as any caller could build it.
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/p", nil)
			req.Method = "G\xffT"
			if err := env.Host.Forward(rec, req); err == nil || rec.Code != http.StatusBadRequest {
				t.Errorf("method %q: Forward %v, status %d; want an error and 400", req.Method, err, rec.Code)
			}
			if n := plugin.Calls(); n != 0 {
				t.Errorf("the plugin was called %d times", n)
			}
			if log := env.HostLog.String(); strings.Contains(log, "level=ERROR") {
				t.Errorf("the host logged an error for a client's request:\n%s", log)
			}
		})
	}
}

// Log lines name the path and never carry the query (tokens, OAuth codes):
// the host's, for a plugin failure, and the facade's, for a panic and for a
// target it cannot parse.
func TestLogsOmitQuery(t *testing.T) {
	const secret = "s3cr3t-token"
	bridgetest.LeakCheck(t)
	env := bridgetest.NewEnv(t, bridgetest.Config{Plugin: &bridgetest.ScriptedPlugin{
		Script: func(bridgetest.ServerStream) error { return status.Error(codes.Internal, "plugin failed") },
	}})
	if res := env.Get(t, "/fail?token="+secret); res.Status != http.StatusBadGateway {
		t.Errorf("status %d, want 502", res.Status)
	}
	if log := env.HostLog.String(); !strings.Contains(log, "path=/fail") || strings.Contains(log, secret) {
		t.Errorf("host log should name the path and not the query:\n%s", log)
	}

	facade := bridgetest.NewEnv(t, bridgetest.Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("boom")
	})})
	if res := facade.Get(t, "/boom?token="+secret); res.Status != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", res.Status)
	}
	msgs, err := bridgetest.ScriptedHost(t, facade.Plugin.Client, &bridgetest.RequestMsg{Init: bridgetest.ReqInit(http.MethodGet, "/bad%zz?token="+secret), BodyComplete: true})
	if err != nil || len(msgs) == 0 || msgs[0].GetInit().GetStatusCode() != http.StatusBadRequest {
		t.Errorf("unparsable target: %v %v, want a 400", msgs, err)
	}
	if log := facade.PluginLog.String(); !strings.Contains(log, "path=/boom") || !strings.Contains(log, "invalid request target") || strings.Contains(log, secret) {
		t.Errorf("facade log should name the path and not the query:\n%s", log)
	}
}

// A Go handler that sets a header value a proto3 string cannot hold: the
// facade logs the key and answers 500 rather than failing the stream
// without a word. A trailer, which is never sent, does not count.
func TestFacadeNonUTF8ResponseHeader(t *testing.T) {
	t.Run("trailer", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		env := bridgetest.NewEnv(t, bridgetest.Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(http.TrailerPrefix+"X-Sum", "caf\xe9")
			_, _ = io.WriteString(w, "data")
		})})
		if res := env.Get(t, "/download"); res.Status != http.StatusOK || string(res.Body) != "data" {
			t.Errorf("got %d %q, want 200 %q", res.Status, res.Body, "data")
		}
	})
	for _, write := range []bool{false, true} {
		name := map[bool]string{false: "no-body", true: "with-body"}[write]
		t.Run(name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			writeErr := make(chan error, 1)
			env := bridgetest.NewEnv(t, bridgetest.Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Disposition", "attachment; filename=caf\xe9.txt")
				var err error
				if write {
					_, err = io.WriteString(w, "data")
				}
				writeErr <- err
			})})
			res := env.Get(t, "/download")
			bridgetest.CheckDefaultErrorResponse(t, res.Status, res.Header, res.Body, http.StatusInternalServerError)
			if err := <-writeErr; write && err == nil {
				t.Error("the handler's Write succeeded")
			}
			if log := env.PluginLog.String(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "Content-Disposition") {
				t.Errorf("facade log does not name the key at Error:\n%s", log)
			}
		})
	}
}

// ChunkSize of any value panics nowhere (math.MaxInt used to panic the host
// process in the body pump) and is bounded by ServeHTTPMaxChunkSize on both
// ends.
func TestChunkSizeBounds(t *testing.T) {
	const size = 6 << 20 // more than one bounded chunk
	payload := sweepPayload(size, 9)
	for _, tc := range []struct {
		name      string
		chunkSize int
	}{
		{"MaxInt", math.MaxInt},
		{"MinInt", math.MinInt},
		{"max+1", pluginapiv1.ServeHTTPMaxChunkSize + 1},
		{"zero", 0},
	} {
		chunkSize := tc.chunkSize
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			record, got := bridgetest.Recording(&bridgetest.ResponseMsg{Init: bridgetest.RespInit(200), BodyComplete: true})
			// Upload of unknown length through the host.
			env := bridgetest.NewEnv(t, bridgetest.Config{
				Plugin:    &bridgetest.ScriptedPlugin{Script: record},
				SetupHost: func(h *pluginapiv1.ServeHTTPHost) { h.ChunkSize = chunkSize },
			})
			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			pr, pw := io.Pipe()
			go func() {
				_, _ = pw.Write(payload)
				_ = pw.Close()
			}()
			res := env.RoundTrip(t, env.Request(t, ctx, http.MethodPost, "/up", pr))
			if res.Status != 200 {
				t.Errorf("upload: status %d", res.Status)
			}
			rec, ok := bridgetest.WaitFor(t, got, bridgetest.ExchangeTimeout, "the plugin's record")
			if ok {
				if !rec.Complete() || !bytes.Equal(rec.Body(), payload) {
					t.Errorf("plugin got %d bytes (complete %v), want the %d sent", len(rec.Body()), rec.Complete(), size)
				}
				for i, m := range rec.Msgs {
					if n := len(m.GetBodyChunk()); n > pluginapiv1.ServeHTTPMaxChunkSize {
						t.Errorf("request message %d carries %d bytes", i, n)
					}
				}
			}

			// Download through the facade.
			plugin := bridgetest.StartPlugin(t, bridgetest.Bufconn, &bridgetest.FacadeServer{Bridge: &pluginapiv1.ServeHTTPPlugin{
				ChunkSize: chunkSize,
				Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(payload) }),
			}})
			msgs, err := bridgetest.ScriptedHost(t, plugin.Client, &bridgetest.RequestMsg{Init: bridgetest.ReqInit(http.MethodGet, "/down"), BodyComplete: true})
			if err != nil {
				t.Fatalf("download: %v", err)
			}
			f := bridgetest.CheckFraming(t, msgs, pluginapiv1.ServeHTTPMaxChunkSize)
			if !bytes.Equal(f.Body, payload) {
				t.Errorf("download: %s", bridgetest.FirstDiff(f.Body, payload))
			}
		})
	}
}

// F-B8, F-P4: a handler returns (or panics after its response started)
// while a goroutine it left is blocked in r.Body.Read. Against a host that
// neither cancels nor sends more, as Mattermost's host with a background
// context, Serve still returns at once, and the pending read fails.
func TestFacadePendingReadEndsWithHandler(t *testing.T) {
	for _, panics := range []bool{false, true} {
		name := map[bool]string{false: "return", true: "panic-after-start"}[panics]
		t.Run(name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			readErr := make(chan error, 1)
			laterErr := make(chan error, 1)
			plugin := bridgetest.StartPlugin(t, bridgetest.Bufconn, &bridgetest.FacadeServer{Bridge: &pluginapiv1.ServeHTTPPlugin{
				Logger: (&bridgetest.LogBuffer{}).Slog(),
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					first := make([]byte, 1)
					if _, err := io.ReadFull(r.Body, first); err != nil {
						t.Errorf("first read: %v", err)
					}
					started := make(chan struct{})
					go func() {
						close(started)
						_, err := r.Body.Read(make([]byte, 16)) // the host sends nothing more
						readErr <- err
						_, err = r.Body.Read(make([]byte, 16))
						laterErr <- err
					}()
					<-started
					time.Sleep(20 * time.Millisecond) // let the goroutine block in Read
					_, _ = io.WriteString(w, "ok")
					if panics {
						w.(http.Flusher).Flush()
						panic(http.ErrAbortHandler)
					}
				}),
			}})
			// A host that never cancels: the stream's context outlives the
			// test's checks, and nothing more is sent nor half-closed.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stream, err := plugin.Client.ServeHTTP(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&bridgetest.RequestMsg{Init: facadeInit(http.MethodPost, -1), BodyChunk: []byte("a")}); err != nil {
				t.Fatal(err)
			}
			ended := make(chan error, 1)
			go func() {
				var body []byte
				for {
					m, err := stream.Recv()
					if err != nil {
						if err == io.EOF && string(body) != "ok" {
							err = errors.New("body " + string(body))
						}
						ended <- err
						return
					}
					body = append(body, m.GetBodyChunk()...)
				}
			}()
			err, ok := bridgetest.WaitFor(t, ended, bridgetest.Promptly, "the stream to end (Serve to return)")
			if ok {
				if panics && status.Code(err) == codes.OK {
					t.Errorf("stream ended with %v, want an error after the panic", err)
				}
				if !panics && err != io.EOF {
					t.Errorf("stream ended with %v, want OK", err)
				}
			}
			if err, ok := bridgetest.WaitFor(t, readErr, bridgetest.Promptly, "the pending read to fail"); ok && (err == nil || err == io.EOF) {
				t.Errorf("pending Read returned %v, want an error", err)
			}
			if err, ok := bridgetest.WaitFor(t, laterErr, bridgetest.Promptly, "a later read to fail"); ok && (err == nil || err == io.EOF) {
				t.Errorf("later Read returned %v, want an error", err)
			}
			cancel()
		})
	}
}
