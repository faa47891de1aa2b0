package pluginapiv1_test

// Test harness shared by the behaviour tests in bridge_test.go:
//
//   - a plugin gRPC server (the generated facade around an http.Handler, or a
//     scripted fake) reachable over bufconn or loopback TCP;
//   - the generated host mounted in an httptest.Server over HTTP/1.1 or
//     HTTP/2 (TLS);
//   - a scripted host that drives the plugin's stream directly;
//   - a goroutine leak check that every test registers first.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	_ "github.com/httpbridge/httpbridge/internal/golden" // accept -update
)

type (
	reqMsg       = pluginapiv1.ServeHTTPRequest
	respMsg      = pluginapiv1.ServeHTTPResponse
	serverStream = grpc.BidiStreamingServer[pluginapiv1.ServeHTTPRequest, pluginapiv1.ServeHTTPResponse]
)

const (
	// exchangeTimeout bounds one whole HTTP exchange in a test: a broken
	// bridge makes the test fail after this long instead of hanging.
	exchangeTimeout = 10 * time.Second
	// promptly is the bound for things the spec wants "within bounds" (1 s),
	// with some slack for -race on a loaded machine.
	promptly = 2 * time.Second
	// chunkMax is the largest response body_chunk the facade may send.
	chunkMax = 64 << 10
)

// leakCheck must be the first call of a test (or subtest) that starts
// servers: t.Cleanup runs last-registered first, so the check runs after the
// servers and clients registered later have been closed.
//
// Goroutines alive when leakCheck is called are ignored, so a leak is
// reported by the test that caused it and not by every later one.
func leakCheck(t *testing.T) {
	t.Helper()
	baseline := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			err := goleak.Find(baseline)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines did not return to baseline: %v", err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// logBuffer collects log output safely across goroutines (and after a test
// ended, unlike t.Log).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) slog() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// closeBounded runs f (a Close or Stop) and fails the test instead of hanging
// when it does not return, which happens when a handler is stuck.
func closeBounded(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("%s did not close within 5s (a handler is stuck)", what)
	}
}

// waitFor receives from ch within d, or fails the test.
func waitFor[T any](t *testing.T, ch <-chan T, d time.Duration, what string) (T, bool) {
	t.Helper()
	select {
	case v := <-ch:
		return v, true
	case <-time.After(d):
		var zero T
		t.Errorf("timed out after %v waiting for %s", d, what)
		return zero, false
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// firstDiff describes where two byte slices differ, for readable failures.
func firstDiff(got, want []byte) string {
	n := min(len(got), len(want))
	for i := 0; i < n; i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("got %d bytes, want %d; first difference at offset %d", len(got), len(want), i)
		}
	}
	return fmt.Sprintf("got %d bytes, want %d; one is a prefix of the other", len(got), len(want))
}

// ---------------------------------------------------------------------------
// Plugin side: gRPC server over bufconn or TCP.

type transportKind string

const (
	viaBufconn transportKind = "bufconn"
	viaTCP     transportKind = "tcp"
)

type httpVersion string

const (
	http1 httpVersion = "http1"
	http2 httpVersion = "http2"
)

var (
	allTransports   = []transportKind{viaBufconn, viaTCP}
	allHTTPVersions = []httpVersion{http1, http2}
)

// facadeServer is how a plugin wires the generated facade into its gRPC
// server.
type facadeServer struct {
	pluginapiv1.UnimplementedPluginHooksServer
	bridge *pluginapiv1.ServeHTTPPlugin
}

func (s *facadeServer) ServeHTTP(stream serverStream) error {
	return s.bridge.Serve(stream)
}

// scriptedPlugin is a fake plugin whose ServeHTTP runs script.
type scriptedPlugin struct {
	pluginapiv1.UnimplementedPluginHooksServer
	script func(stream serverStream) error
	calls  atomic.Int32
}

func (p *scriptedPlugin) ServeHTTP(stream serverStream) error {
	p.calls.Add(1)
	return p.script(stream)
}

// pluginConn is a running plugin gRPC server and a client connected to it.
type pluginConn struct {
	client   pluginapiv1.PluginHooksClient
	conn     *grpc.ClientConn
	server   *grpc.Server
	served   chan struct{}
	stopOnce sync.Once
}

func startPlugin(t *testing.T, tr transportKind, impl pluginapiv1.PluginHooksServer) *pluginConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	var (
		lis    net.Listener
		target string
	)
	switch tr {
	case viaBufconn:
		bl := bufconn.Listen(1 << 20)
		lis = bl
		target = "passthrough:///bufnet"
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return bl.DialContext(ctx)
		}))
	case viaTCP:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis = l
		target = l.Addr().String()
	default:
		t.Fatalf("unknown transport %q", tr)
	}

	p := &pluginConn{server: grpc.NewServer(), served: make(chan struct{})}
	pluginapiv1.RegisterPluginHooksServer(p.server, impl)
	go func() {
		defer close(p.served)
		_ = p.server.Serve(lis)
	}()
	t.Cleanup(func() { closeBounded(t, "plugin gRPC server", p.stop) })

	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	p.conn = conn
	p.client = pluginapiv1.NewPluginHooksClient(conn)
	return p
}

// stop stops the plugin's gRPC server (as if the plugin process died).
func (p *pluginConn) stop() {
	p.stopOnce.Do(func() {
		p.server.Stop()
		<-p.served
	})
}

// waitNotReady waits until the client connection noticed that the server is
// gone, so that the next Open fails instead of racing the disconnect.
func (p *pluginConn) waitNotReady(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for p.conn.GetState() == connectivity.Ready {
		if !p.conn.WaitForStateChange(ctx, connectivity.Ready) {
			t.Fatal("gRPC client still READY 5s after the plugin server stopped")
		}
	}
}

// newFacade builds the generated facade around h with a captured log.
func newFacade(h http.Handler) (*pluginapiv1.ServeHTTPPlugin, *logBuffer) {
	logs := &logBuffer{}
	return &pluginapiv1.ServeHTTPPlugin{Handler: h, ErrorLog: logs.slog()}, logs
}

// startFacade serves h through the generated facade over bufconn.
func startFacade(t *testing.T, h http.HandlerFunc) *pluginConn {
	t.Helper()
	bridge, _ := newFacade(h)
	return startPlugin(t, viaBufconn, &facadeServer{bridge: bridge})
}

// ---------------------------------------------------------------------------
// Host side: the generated host mounted in an httptest.Server.

type env struct {
	plugin    *pluginConn
	host      *pluginapiv1.ServeHTTPHost
	srv       *httptest.Server
	client    *http.Client
	hv        httpVersion
	hostLog   *logBuffer // the host's ErrorLog
	pluginLog *logBuffer // the facade's ErrorLog (facade envs only)
	serverLog *logBuffer // the host net/http server's ErrorLog
}

type envConfig struct {
	tr      transportKind // default bufconn
	hv      httpVersion   // default http1
	handler http.Handler  // facade mode: the plugin's handler
	plugin  pluginapiv1.PluginHooksServer
	// setupHost adjusts the host before the HTTP server starts.
	setupHost func(*pluginapiv1.ServeHTTPHost)
	// wrap, if set, wraps the host handler (middleware) in the HTTP server.
	wrap func(http.Handler) http.Handler
}

func newEnv(t *testing.T, cfg envConfig) *env {
	t.Helper()
	if cfg.tr == "" {
		cfg.tr = viaBufconn
	}
	if cfg.hv == "" {
		cfg.hv = http1
	}
	e := &env{hv: cfg.hv, hostLog: &logBuffer{}, serverLog: &logBuffer{}}
	impl := cfg.plugin
	if cfg.handler != nil {
		var bridge *pluginapiv1.ServeHTTPPlugin
		bridge, e.pluginLog = newFacade(cfg.handler)
		impl = &facadeServer{bridge: bridge}
	}
	if impl == nil {
		t.Fatal("envConfig needs a handler or a plugin")
	}
	e.plugin = startPlugin(t, cfg.tr, impl)

	e.host = pluginapiv1.NewPluginHooksServeHTTPHost(e.plugin.client)
	e.host.ErrorLog = e.hostLog.slog()
	if cfg.setupHost != nil {
		cfg.setupHost(e.host)
	}

	var handler http.Handler = e.host
	if cfg.wrap != nil {
		handler = cfg.wrap(handler)
	}
	e.srv = httptest.NewUnstartedServer(handler)
	e.srv.Config.ErrorLog = log.New(e.serverLog, "", 0)
	switch cfg.hv {
	case http1:
		e.srv.Start()
	case http2:
		e.srv.EnableHTTP2 = true
		e.srv.StartTLS()
	default:
		t.Fatalf("unknown HTTP version %q", cfg.hv)
	}
	e.client = e.srv.Client()
	t.Cleanup(func() {
		closeBounded(t, "host HTTP server", e.srv.Close)
		// A panic other than http.ErrAbortHandler, or a second WriteHeader,
		// is a host bug (spec H-F5, H-F9).
		if logs := e.serverLog.String(); strings.Contains(logs, "panic serving") || strings.Contains(logs, "superfluous") {
			t.Errorf("host HTTP server logged a panic or a superfluous WriteHeader:\n%s", logs)
		}
	})
	return e
}

func (e *env) wantProtoMajor() int {
	if e.hv == http2 {
		return 2
	}
	return 1
}

// request builds a request to the host under ctx.
func (e *env) request(t *testing.T, ctx context.Context, method, target string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+target, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// result is what an http.Client observed.
type result struct {
	status  int
	header  http.Header
	body    []byte
	readErr error // error reading the body (nil for a clean end)
	proto   int
}

// roundTrip sends req (Do errors are fatal) and reads the whole body.
func (e *env) roundTrip(t *testing.T, req *http.Request) result {
	t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: body, readErr: readErr, proto: resp.ProtoMajor}
}

// get does a bounded GET of target.
func (e *env) get(t *testing.T, target string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), exchangeTimeout)
	defer cancel()
	return e.roundTrip(t, e.request(t, ctx, http.MethodGet, target, nil))
}

// forward calls the host's Forward directly with a recorder and a request
// whose context is context.Background() (httptest.NewRequest), like a
// synthetic or internal request. It fails the test if Forward does not
// return within exchangeTimeout.
func (e *env) forward(t *testing.T, target string) (*httptest.ResponseRecorder, error) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	errc := make(chan error, 1)
	go func() { errc <- e.host.Forward(rec, req) }()
	err, ok := waitFor(t, errc, exchangeTimeout, "Forward to return")
	if !ok {
		t.FailNow()
	}
	return rec, err
}

// checkDefaultErrorResponse asserts the host's default error answer: the
// given status, a short text/plain body, and none of the secrets in it.
func checkDefaultErrorResponse(t *testing.T, status int, header http.Header, body []byte, wantStatus int, secrets ...string) {
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
// Scripted plugin helpers.

// respInit builds a response init; kv are header key/value pairs, a repeated
// key adds a value to the same entry.
func respInit(status int32, kv ...string) *pluginapiv1.ServeHTTPResponseInit {
	return &pluginapiv1.ServeHTTPResponseInit{StatusCode: status, Headers: headers(kv...)}
}

func headers(kv ...string) []*pluginapiv1.HTTPHeader {
	var hs []*pluginapiv1.HTTPHeader
	for i := 0; i+1 < len(kv); i += 2 {
		if n := len(hs); n > 0 && hs[n-1].Key == kv[i] {
			hs[n-1].Values = append(hs[n-1].Values, kv[i+1])
			continue
		}
		hs = append(hs, &pluginapiv1.HTTPHeader{Key: kv[i], Values: []string{kv[i+1]}})
	}
	return hs
}

// sendThen is a plugin script: it receives the first request message, sends
// msgs in order, and then returns end(ctx) (nil if end is nil).
func sendThen(msgs []*respMsg, end func(ctx context.Context) error) func(serverStream) error {
	return func(stream serverStream) error {
		if _, err := stream.Recv(); err != nil {
			return err
		}
		for _, m := range msgs {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
		if end == nil {
			return nil
		}
		return end(stream.Context())
	}
}

// awaitCancel returns an end function for sendThen that waits (at most
// limit) for the stream context to be cancelled and closes done if it was.
func awaitCancel(done chan<- struct{}, limit time.Duration) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			close(done)
			return ctx.Err()
		case <-time.After(limit):
			return errors.New("scripted plugin: stream context was never cancelled")
		}
	}
}

// ---------------------------------------------------------------------------
// Scripted host helpers.

// reqInit is a typical first request message's init.
func reqInit(method, target string) *pluginapiv1.ServeHTTPRequestInit {
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

// scriptedHost opens the plugin's stream, sends reqs, half-closes and
// collects every response message until the stream ends. It returns the
// messages and the stream's final error (nil for a clean end).
func scriptedHost(t *testing.T, client pluginapiv1.PluginHooksClient, reqs ...*reqMsg) ([]*respMsg, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), exchangeTimeout)
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
	var msgs []*respMsg
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return msgs, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("response stream did not end within %v", exchangeTimeout)
			}
			return msgs, err
		}
		msgs = append(msgs, m)
	}
}

// openStream opens a raw stream to the plugin for tests that interleave
// sends and receives; cancel ends it (it is also cancelled at cleanup).
func openStream(t *testing.T, client pluginapiv1.PluginHooksClient) (grpc.BidiStreamingClient[reqMsg, respMsg], context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), exchangeTimeout)
	t.Cleanup(cancel)
	stream, err := client.ServeHTTP(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	return stream, cancel
}

// framedResponse is a response stream checked against the framing
// invariants (spec F-C1).
type framedResponse struct {
	status  int32 // 0 normalised to 200
	headers []*pluginapiv1.HTTPHeader
	body    []byte
	sizes   []int
}

// checkFraming asserts the response framing invariants: init on the first
// message only, chunks at most max bytes, body_complete on the last message
// only, empty chunks only on init-only, flush-only or completion messages.
func checkFraming(t *testing.T, msgs []*respMsg, max int) framedResponse {
	t.Helper()
	var f framedResponse
	if len(msgs) == 0 {
		t.Fatal("no response message")
	}
	if msgs[0].GetInit() == nil {
		t.Errorf("first response message has no init")
	}
	f.status = msgs[0].GetInit().GetStatusCode()
	if f.status == 0 {
		f.status = 200
	}
	f.headers = msgs[0].GetInit().GetHeaders()
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
		f.body = append(f.body, m.GetBodyChunk()...)
		f.sizes = append(f.sizes, len(m.GetBodyChunk()))
	}
	return f
}
