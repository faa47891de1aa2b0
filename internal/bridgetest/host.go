package bridgetest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
)

// HTTPVersion is the protocol between the HTTP client and the host.
type HTTPVersion string

// The HTTP versions.
const (
	HTTP1 HTTPVersion = "http1" // plain HTTP/1.1
	HTTP2 HTTPVersion = "http2" // HTTP/2 over TLS (httptest's EnableHTTP2)
)

// HTTPVersions lists every HTTPVersion, for tests that run over each.
var HTTPVersions = []HTTPVersion{HTTP1, HTTP2}

// ProtoMajor is the major version the server sees for v.
func (v HTTPVersion) ProtoMajor() int {
	if v == HTTP2 {
		return 2
	}
	return 1
}

// Config describes an Env. Exactly one of Handler and Plugin must be set.
type Config struct {
	Transport   Transport   // how the host reaches the plugin; default Bufconn
	HTTPVersion HTTPVersion // default HTTP1

	// Handler, in facade mode, is the plugin's handler behind the generated
	// facade.
	Handler http.Handler
	// Plugin, in scripted mode, is the plugin's gRPC implementation (often
	// a *ScriptedPlugin).
	Plugin pluginapiv1.PluginHooksServer

	// PluginOptions tunes the gRPC server and client.
	PluginOptions PluginOptions

	// SetupHost adjusts the host before the HTTP server starts.
	SetupHost func(*pluginapiv1.ServeHTTPHost)
	// Wrap, if set, wraps the host handler (middleware) in the HTTP server.
	Wrap func(http.Handler) http.Handler
}

// Env is the generated host mounted in an httptest.Server, in front of a
// plugin gRPC server. Everything is closed at cleanup, and the cleanup
// fails the test if the host's HTTP server logged a panic (other than
// http.ErrAbortHandler) or a superfluous WriteHeader.
type Env struct {
	Plugin      *Plugin
	Host        *pluginapiv1.ServeHTTPHost
	Server      *httptest.Server
	Client      *http.Client
	HTTPVersion HTTPVersion

	HostLog   *LogBuffer // the host's Logger
	PluginLog *LogBuffer // the facade's Logger (facade mode only, else nil)
	ServerLog *LogBuffer // the ErrorLog of the host's net/http server
}

// NewEnv starts the plugin, the host and the HTTP server described by cfg.
func NewEnv(t testing.TB, cfg Config) *Env {
	t.Helper()
	if cfg.Transport == "" {
		cfg.Transport = Bufconn
	}
	if cfg.HTTPVersion == "" {
		cfg.HTTPVersion = HTTP1
	}
	e := &Env{HTTPVersion: cfg.HTTPVersion, HostLog: &LogBuffer{}, ServerLog: &LogBuffer{}}
	impl := cfg.Plugin
	if cfg.Handler != nil {
		var bridge *pluginapiv1.ServeHTTPPlugin
		bridge, e.PluginLog = NewFacade(cfg.Handler)
		impl = &FacadeServer{Bridge: bridge}
	}
	if impl == nil {
		t.Fatal("bridgetest.Config needs a Handler or a Plugin")
	}
	e.Plugin = StartPluginWith(t, cfg.Transport, impl, cfg.PluginOptions)

	e.Host = pluginapiv1.NewPluginHooksServeHTTPHost(e.Plugin.Client)
	e.Host.Logger = e.HostLog.Slog()
	if cfg.SetupHost != nil {
		cfg.SetupHost(e.Host)
	}

	var handler http.Handler = e.Host
	if cfg.Wrap != nil {
		handler = cfg.Wrap(handler)
	}
	e.Server = StartHTTPServer(t, cfg.HTTPVersion, handler, e.ServerLog)
	e.Client = e.Server.Client()
	t.Cleanup(func() {
		// Runs before the server's own cleanup (registered earlier), so
		// the log is complete only once the server closed: close it here.
		CloseBounded(t, "host HTTP server", e.Server.Close)
		CheckServerLog(t, e.ServerLog)
	})
	return e
}

// StartHTTPServer serves h with httptest over v (HTTP/2 uses TLS), logging
// net/http's errors into logs (which may be nil). The server is closed at
// cleanup.
func StartHTTPServer(t testing.TB, v HTTPVersion, h http.Handler, logs *LogBuffer) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if logs != nil {
		srv.Config.ErrorLog = logs.Log()
	}
	switch v {
	case HTTP1, "":
		srv.Start()
	case HTTP2:
		srv.EnableHTTP2 = true
		srv.StartTLS()
	default:
		t.Fatalf("unknown HTTP version %q", v)
	}
	t.Cleanup(func() { CloseBounded(t, "HTTP server", srv.Close) })
	return srv
}

// CheckServerLog fails the test if a net/http server log shows a panic
// (http.ErrAbortHandler is not logged) or a superfluous WriteHeader: both
// are host bugs (spec H-F5, H-F9).
func CheckServerLog(t testing.TB, logs *LogBuffer) {
	t.Helper()
	if s := logs.String(); strings.Contains(s, "panic serving") || strings.Contains(s, "superfluous") {
		t.Errorf("host HTTP server logged a panic or a superfluous WriteHeader:\n%s", s)
	}
}

// Request builds a request to the host's server under ctx; target is the
// path and query.
func (e *Env) Request(t testing.TB, ctx context.Context, method, target string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, e.Server.URL+target, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// Result is what an http.Client observed of one exchange.
type Result struct {
	Status  int
	Header  http.Header
	Body    []byte
	ReadErr error // error reading the body; nil for a clean end
	Proto   int   // ProtoMajor of the response
}

// RoundTrip sends req with the Env's client (a Do error is fatal) and reads
// the whole body.
func (e *Env) RoundTrip(t testing.TB, req *http.Request) Result {
	t.Helper()
	return RoundTrip(t, e.Client, req)
}

// RoundTrip sends req with client (a Do error is fatal) and reads the whole
// body.
func RoundTrip(t testing.TB, client *http.Client, req *http.Request) Result {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(resp.Body)
	return Result{Status: resp.StatusCode, Header: resp.Header, Body: body, ReadErr: readErr, Proto: resp.ProtoMajor}
}

// Get does a GET of target bounded by ExchangeTimeout.
func (e *Env) Get(t testing.TB, target string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), ExchangeTimeout)
	defer cancel()
	return e.RoundTrip(t, e.Request(t, ctx, http.MethodGet, target, nil))
}

// Forward calls the host's Forward directly with a recorder and a GET whose
// context is context.Background() (httptest.NewRequest), like a synthetic or
// internal request. It stops the test if Forward does not return within
// ExchangeTimeout.
func (e *Env) Forward(t testing.TB, target string) (*httptest.ResponseRecorder, error) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	errc := make(chan error, 1)
	go func() { errc <- e.Host.Forward(rec, req) }()
	err, ok := WaitFor(t, errc, ExchangeTimeout, "Forward to return")
	if !ok {
		t.FailNow()
	}
	return rec, err
}

// CheckDefaultErrorResponse asserts the host's default error answer: the
// given status, a short text/plain body, and none of the secrets in it.
func CheckDefaultErrorResponse(t testing.TB, status int, header http.Header, body []byte, wantStatus int, secrets ...string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("status = %d, want %d (body %q)", status, wantStatus, body)
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	if len(body) > 512 {
		t.Errorf("error body is %d bytes, want a short text", len(body))
	}
	for _, s := range secrets {
		if s != "" && bytes.Contains(body, []byte(s)) {
			t.Errorf("error body %q leaks %q", body, s)
		}
	}
}

// ---------------------------------------------------------------------------
// Scripted host: drives the plugin's stream directly.

// ReqInit is a typical first request message's init for method and target.
func ReqInit(method, target string) *pluginapiv1.ServeHTTPRequestInit {
	return &pluginapiv1.ServeHTTPRequestInit{
		Method:     method,
		Url:        target,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Host:       "plugin.test",
		RemoteAddr: "192.0.2.1:1234",
		RequestUri: target,
	}
}

// ScriptedHost opens a stream to the plugin, sends reqs, half-closes and
// collects every response message until the stream ends. It returns the
// messages and the stream's final error (nil for a clean end). The
// exchange is bounded by ExchangeTimeout.
func ScriptedHost(t testing.TB, client pluginapiv1.PluginHooksClient, reqs ...*RequestMsg) ([]*ResponseMsg, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), ExchangeTimeout)
	defer cancel()
	stream, err := client.ServeHTTP(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	for _, m := range reqs {
		if err := stream.Send(m); err != nil {
			t.Fatalf("send request message: %v", err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
	var msgs []*ResponseMsg
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return msgs, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("response stream did not end within %v", ExchangeTimeout)
			}
			return msgs, err
		}
		msgs = append(msgs, m)
	}
}

// OpenStream opens a raw stream to the plugin for tests that interleave
// sends and receives. cancel ends it; it is also cancelled at cleanup and
// after ExchangeTimeout.
func OpenStream(t testing.TB, client pluginapiv1.PluginHooksClient) (ClientStream, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), ExchangeTimeout)
	t.Cleanup(cancel)
	stream, err := client.ServeHTTP(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	return stream, cancel
}

// Framed is a response stream checked against the framing invariants.
type Framed struct {
	Status  int32 // 0 normalised to 200
	Headers []*pluginapiv1.HTTPHeader
	Body    []byte
	Sizes   []int // body_chunk size of each message
}

// CheckFraming asserts the response framing invariants (spec F-C1): init
// on the first message only, chunks at most max bytes, body_complete on the
// last message only, empty chunks only on init-only, flush-only or
// completion messages. It stops the test if there is no message.
func CheckFraming(t testing.TB, msgs []*ResponseMsg, max int) Framed {
	t.Helper()
	var f Framed
	if len(msgs) == 0 {
		t.Fatal("no response message")
	}
	if msgs[0].GetInit() == nil {
		t.Errorf("first response message has no init")
	}
	f.Status = msgs[0].GetInit().GetStatusCode()
	if f.Status == 0 {
		f.Status = 200
	}
	f.Headers = msgs[0].GetInit().GetHeaders()
	for i, m := range msgs {
		last := i == len(msgs)-1
		if i > 0 && m.GetInit() != nil {
			t.Errorf("message %d of %d carries an init", i, len(msgs))
		}
		if n := len(m.GetBodyChunk()); n > max {
			t.Errorf("message %d carries %d bytes, more than %d", i, n, max)
		}
		if m.GetBodyComplete() != last {
			t.Errorf("message %d of %d: body_complete=%v", i, len(msgs), m.GetBodyComplete())
		}
		if len(m.GetBodyChunk()) == 0 && i > 0 && !last && !m.GetFlush() {
			t.Errorf("message %d is empty but neither flush nor complete", i)
		}
		f.Body = append(f.Body, m.GetBodyChunk()...)
		f.Sizes = append(f.Sizes, len(m.GetBodyChunk()))
	}
	return f
}

// OpenStreamOffering is OpenStream for a stream on which the host offers an
// upgrade to protocol: its gRPC request metadata has
// pluginapiv1.ServeHTTPUpgradeKey naming it, as the generated host sends
// for an eligible request (upgrade.md §1.2).
func OpenStreamOffering(t testing.TB, client pluginapiv1.PluginHooksClient, protocol string) (ClientStream, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), ExchangeTimeout)
	t.Cleanup(cancel)
	ctx = metadata.AppendToOutgoingContext(ctx, pluginapiv1.ServeHTTPUpgradeKey, protocol)
	stream, err := client.ServeHTTP(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	return stream, cancel
}
