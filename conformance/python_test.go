package conformance

// Cross-language tests: the generated Go host, over gRPC on loopback TCP,
// in front of a Python plugin process that serves an app with the
// generated Python module (gen/python), as plugin authors run it. Three
// apps with the same routes (conformance/python/apps): a plain ASGI app, a
// Starlette app and a Flask (WSGI) app. The oracle is the same app served
// by uvicorn behind httputil.ReverseProxy: both sides are reached by the
// same Go client through the same kind of Go HTTP/1.1 server.
//
// Python means /usr/bin/python3 with Debian's grpcio, protobuf, starlette,
// uvicorn and flask. Without them the tests are skipped, except where CI
// is set, where they fail. Each app's processes are started once, for
// all of its subtests, and stopped with SIGTERM at cleanup: they must exit
// with status 0.
//
// What the two sides may show differently, each normalised in pyNormalize
// or named in the differs field of a case:
//   - Date: each server stamps its own (bridgetest.Observe drops it);
//   - Server: uvicorn adds "Server: uvicorn" to every response;
//   - framing of a body the app sent whole without declaring its length
//     (also for HEAD): see pyNormalize.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

const (
	// pyStartTimeout bounds a Python server's start, until it prints its
	// port.
	pyStartTimeout = 30 * time.Second
	// pyStopTimeout bounds a Python server's exit after SIGTERM.
	pyStopTimeout = 10 * time.Second
	// pyBulkTimeout bounds one 100 MiB transfer.
	pyBulkTimeout = 60 * time.Second
	// pyHost is the Host header of the requests of the sweep, so that the
	// apps see the same one on both sides (the two servers listen on
	// different ports).
	pyHost = "app.test"
)

// pyModules are the modules the tests need besides the generated ones.
var pyModules = []string{"grpc", "google.protobuf", "starlette", "uvicorn", "flask"}

// pyApp is one of the apps in conformance/python/apps.
type pyApp struct {
	name   string // of the subtest
	module string
	wsgi   bool
}

var pyApps = []pyApp{
	{name: "asgi", module: "asgi_app"},
	{name: "starlette", module: "starlette_app"},
	{name: "flask", module: "flask_app", wsgi: true},
}

// pyDirs returns the directory of the test apps and the one that holds the
// generated Python package (the tests run in conformance/).
func pyDirs() (apps, gen string, err error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", "", err
	}
	return filepath.Join(wd, "python", "apps"), filepath.Join(wd, "..", "gen", "python"), nil
}

// pyEnviron is the environment of the Python processes: PYTHONPATH points
// at gen/python only, no bytecode is written into the tree, and string
// hashing is the same in every process, so that what an app builds from a
// set (such as Werkzeug's Allow header) is the same under both servers.
func pyEnviron(gen string) []string {
	set := []string{"PYTHONPATH=" + gen, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "PYTHONHASHSEED=0"}
	name := func(kv string) string {
		k, _, _ := strings.Cut(kv, "=")
		return k
	}
	var env []string
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc(set, func(s string) bool { return name(s) == name(kv) }) {
			env = append(env, kv)
		}
	}
	return append(env, set...)
}

// pyProcess is a running serve.py.
type pyProcess struct {
	name   string
	port   int
	stderr *bridgetest.LogBuffer
}

// pyStart runs serve.py for app with server "plugin" or "uvicorn", waits
// for the port it prints and registers its stop: SIGTERM, then a clean exit
// within pyStopTimeout.
func pyStart(t *testing.T, server string, app pyApp) *pyProcess {
	t.Helper()
	apps, gen, err := pyDirs()
	if err != nil {
		t.Fatal(err)
	}
	p := &pyProcess{name: server + " " + app.module, stderr: &bridgetest.LogBuffer{}}

	// The context is ours, not t.Context(): that one ends before the
	// cleanups run, and the servers in front must close first.
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bridgetest.Python, filepath.Join(apps, "serve.py"), "--watch-stdin", server, app.module)
	cmd.Env = pyEnviron(gen)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	// After SIGTERM, the time the process has to exit before it is killed.
	cmd.WaitDelay = pyStopTimeout
	cmd.Stderr = p.stderr
	// stdin stays open for as long as the test runs: serve.py stops when
	// it ends, so that a test binary that dies takes the server with it.
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout = stdinR, stdoutW
	err = cmd.Start()
	_ = stdinR.Close()
	_ = stdoutW.Close()
	if err != nil {
		cancel()
		_ = stdinW.Close()
		_ = stdoutR.Close()
		t.Fatalf("start %s: %v", p.name, err)
	}

	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
	}()
	portLine := make(chan string, 1)
	stdoutDone := make(chan struct{})
	var stdout bytes.Buffer // after the port line; nothing is expected
	go func() {
		defer close(stdoutDone)
		defer stdoutR.Close()
		br := bufio.NewReader(stdoutR)
		line, _ := br.ReadString('\n')
		portLine <- line
		_, _ = io.Copy(&stdout, br)
	}()

	t.Cleanup(func() {
		cancel() // SIGTERM
		select {
		case <-exited:
			if st := cmd.ProcessState; !st.Exited() || st.ExitCode() != 0 {
				t.Errorf("%s did not exit cleanly after SIGTERM: %v", p.name, st)
			}
		case <-time.After(pyStopTimeout + 5*time.Second):
			t.Errorf("%s did not exit within %v of SIGTERM", p.name, pyStopTimeout+5*time.Second)
		}
		_ = stdinW.Close()
		select {
		case <-stdoutDone:
			if s := strings.TrimSpace(stdout.String()); s != "" {
				t.Errorf("%s printed more than its port on stdout: %q", p.name, s)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: stdout still open 5s after exit", p.name)
		}
		if t.Failed() {
			t.Logf("stderr of %s:\n%s", p.name, p.stderr)
		}
	})

	select {
	case line := <-portLine:
		port, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || port <= 0 || port > 65535 {
			t.Fatalf("%s printed %q, want its port; stderr:\n%s", p.name, line, p.stderr)
		}
		p.port = port
	case <-time.After(pyStartTimeout):
		t.Fatalf("%s did not print its port within %v; stderr:\n%s", p.name, pyStartTimeout, p.stderr)
	}
	return p
}

// pyTarget is one side of the comparison and a client for it.
type pyTarget struct {
	side   string // "bridge" or "uvicorn"
	url    string
	client *http.Client
}

// pyEnv is one app served both ways.
type pyEnv struct {
	app     pyApp
	bridge  pyTarget // generated host → gRPC → Python plugin
	oracle  pyTarget // ReverseProxy → uvicorn
	hostLog *bridgetest.LogBuffer
}

// pyStartEnv starts the plugin and uvicorn for app, the generated host in
// front of the plugin and a ReverseProxy in front of uvicorn, each in an
// httptest.Server over HTTP/1.1. Everything stops at cleanup.
func pyStartEnv(t *testing.T, app pyApp) *pyEnv {
	t.Helper()
	env := &pyEnv{app: app, hostLog: &bridgetest.LogBuffer{}}
	plugin := pyStart(t, "plugin", app)
	oracle := pyStart(t, "uvicorn", app)

	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", plugin.port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	host := pluginapiv1.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(conn))
	host.Logger = env.hostLog.Slog()
	env.bridge = pyServe(t, "bridge", host)

	backend, err := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", oracle.port))
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 128}
	t.Cleanup(transport.CloseIdleConnections)
	proxyLog := &bridgetest.LogBuffer{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(backend)
			r.Out.Host = r.In.Host // the app sees the client's Host, as through the bridge
		},
		Transport:     transport,
		FlushInterval: -1, // every read from uvicorn is passed on at once
		ErrorLog:      proxyLog.Log(),
	}
	env.oracle = pyServe(t, "uvicorn", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// As the generated host does: the app may answer while the client
		// uploads (full duplex) without net/http draining the upload first.
		_ = http.NewResponseController(w).EnableFullDuplex()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host log:\n%s\nproxy log:\n%s", env.hostLog, proxyLog)
		}
	})
	return env
}

// pyServe serves h over HTTP/1.1 and returns a client for it that does not
// follow redirects (the apps' redirects are compared, not followed).
func pyServe(t *testing.T, side string, h http.Handler) pyTarget {
	t.Helper()
	logs := &bridgetest.LogBuffer{}
	srv := bridgetest.StartHTTPServer(t, bridgetest.HTTP1, h, logs)
	client := &http.Client{
		Transport:     srv.Client().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		bridgetest.CloseBounded(t, side+" HTTP server", srv.Close)
		bridgetest.CheckServerLog(t, logs)
	})
	return pyTarget{side: side, url: srv.URL, client: client}
}

// pyID returns a key for the apps' gates and records, unique in the run.
var pyIDs atomic.Int64

func pyID() string {
	return fmt.Sprintf("k%d-%d", os.Getpid(), pyIDs.Add(1))
}

// get does a bounded GET of target and returns the body; anything but a
// complete 200 fails the test.
func (tg pyTarget) get(t *testing.T, target string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tg.url+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := bridgetest.Observe(tg.client, req)
	if o.Err != bridgetest.ErrNone || o.Status != http.StatusOK {
		t.Fatalf("%s: GET %s: %s", tg.side, target, o)
	}
	return o.Body
}

// ---------------------------------------------------------------------------
// The payload pattern of support.py.

// pyPatternBlock is support.PATTERN_BLOCK.
const pyPatternBlock = 65521

// pyPattern reads the first n bytes of support.pattern: blocks of
// pyPatternBlock bytes, each its index as 8 big-endian bytes and then
// byte(j*31+7) at offset j.
type pyPattern struct {
	n, off int64
	block  []byte
	index  int64
}

func newPyPattern(n int64) *pyPattern {
	block := make([]byte, pyPatternBlock)
	for j := range block {
		block[j] = byte(j*31 + 7)
	}
	return &pyPattern{n: n, block: block, index: -1}
}

func (p *pyPattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	total := 0
	for len(b) > 0 && p.off < p.n {
		if i := p.off / pyPatternBlock; i != p.index {
			binary.BigEndian.PutUint64(p.block, uint64(i))
			p.index = i
		}
		j := p.off % pyPatternBlock
		end := min(int64(pyPatternBlock), j+p.n-p.off)
		n := copy(b, p.block[j:end])
		b = b[n:]
		p.off += int64(n)
		total += n
	}
	return total, nil
}

// pyPatternSum returns the SHA-256 of the first n bytes of the pattern.
func pyPatternSum(n int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, newPyPattern(n))
	return hex.EncodeToString(h.Sum(nil))
}

// ---------------------------------------------------------------------------

func TestPython(t *testing.T) {
	bridgetest.RequirePython(t, pyModules...)
	for _, app := range pyApps {
		t.Run(app.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			env := pyStartEnv(t, app)
			t.Run("sweep", func(t *testing.T) { pySweep(t, env) })
			t.Run("bulk", func(t *testing.T) { pyBulk(t, env) })
			t.Run("full-duplex", func(t *testing.T) { pyFullDuplex(t, env) })
			t.Run("server-sent-events", func(t *testing.T) { pyServerSentEvents(t, env) })
			t.Run("client-abort", func(t *testing.T) { pyClientAbort(t, env) })
			t.Run("background", func(t *testing.T) { pyBackground(t, env) })
			t.Run("app-exception", func(t *testing.T) { pyAppException(t, env) })
			t.Run("no-growth", func(t *testing.T) { pyNoGrowth(t, env) })
		})
	}
}

// ---------------------------------------------------------------------------
// Sweep: status, headers and body bytes equal between bridge and uvicorn.

// pyCase is one request of the sweep.
type pyCase struct {
	name    string
	method  string // default GET
	target  string // path and query
	header  http.Header
	body    []byte
	unsized bool // send body with an unknown length (chunked)
	// differs names, per app, why uvicorn's answer differs; the bridge's
	// is then checked by check alone, and the difference is logged.
	differs map[string]string
	// check, if set, runs on the bridge's observation (and on uvicorn's
	// unless it differs).
	check func(t *testing.T, side string, o bridgetest.Observation)
	// whenDiffers, if set, runs on the bridge's observation where it
	// differs from uvicorn's.
	whenDiffers func(t *testing.T, side string, o bridgetest.Observation)
}

func (tc pyCase) request(t *testing.T, ctx context.Context, base string) *http.Request {
	t.Helper()
	method := pyOr(tc.method, http.MethodGet)
	var body io.Reader
	switch {
	case tc.unsized:
		body = io.MultiReader(bytes.NewReader(tc.body)) // hides the length: chunked
	case tc.body != nil:
		body = bytes.NewReader(tc.body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+tc.target, body)
	if err != nil {
		t.Fatal(err)
	}
	if tc.body != nil && len(tc.body) == 0 && !tc.unsized {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	req.Host = pyHost
	for k, v := range tc.header {
		req.Header[k] = v
	}
	return req
}

func pyOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// pyWantBody checks that the client received want, completely.
func pyWantBody(want []byte) func(t *testing.T, side string, o bridgetest.Observation) {
	return func(t *testing.T, side string, o bridgetest.Observation) {
		if o.Err != bridgetest.ErrNone || o.Status != http.StatusOK || !bytes.Equal(o.Body, want) {
			t.Errorf("%s: %s; body %s", side, o, bridgetest.FirstDiff(o.Body, want))
		}
	}
}

// pyWant500 checks for a short 500 that reveals nothing of the app's
// failure, the answer to an app that failed before its response started.
func pyWant500(t *testing.T, side string, o bridgetest.Observation) {
	t.Helper()
	if o.Err != bridgetest.ErrNone {
		t.Errorf("%s: %s; want a complete 500", side, o)
	}
	bridgetest.CheckDefaultErrorResponse(t, o.Status, o.Header, o.Body, http.StatusInternalServerError, "boom", "Traceback")
}

// pyWantUpload checks /upload's answer for body.
func pyWantUpload(body []byte) func(t *testing.T, side string, o bridgetest.Observation) {
	sum := sha256.Sum256(body)
	return pyWantBody(fmt.Appendf(nil, "%d %s\n", len(body), hex.EncodeToString(sum[:])))
}

// pyWantView checks fields of /request's JSON view.
func pyWantView(want map[string]any) func(t *testing.T, side string, o bridgetest.Observation) {
	return func(t *testing.T, side string, o bridgetest.Observation) {
		var view map[string]any
		if err := json.Unmarshal(o.Body, &view); err != nil {
			t.Errorf("%s: %s: not a request view: %v", side, o, err)
			return
		}
		for k, v := range want {
			if fmt.Sprint(view[k]) != fmt.Sprint(v) {
				t.Errorf("%s: the app saw %s %v, want %v", side, k, view[k], v)
			}
		}
	}
}

// Why uvicorn's answer differs, for the differs fields of the cases.

const pyHeldStart = "the app's first body event (WSGI item) is one the server refuses (more than the " +
	"declared Content-Length): both raise in the app, but uvicorn " +
	"has sent the head at http.response.start, so the client gets it and a body cut short or none, " +
	"while the bridge holds the start until the first body bytes, so nothing was sent and the client gets a 500"

const pyNotUTF8 = "the contract carries header values as proto strings, which must be UTF-8: the bridge " +
	"refuses the app's Latin-1 value before anything is sent and answers 500, as the Go facade does for " +
	"a Go handler's; uvicorn sends the byte as it is"

const pyWSGIASCIIHeaders = "uvicorn 0.17.6's WSGI middleware encodes header values as ASCII, not Latin-1 " +
	"(PEP 3333): a non-ASCII value fails the response with uvicorn's own 500"

const pyWSGIChunked = "uvicorn's WSGI middleware passes no body of unknown length: without " +
	"wsgi.input_terminated and CONTENT_LENGTH, Werkzeug reads an empty body; the bridge sets " +
	"wsgi.input_terminated and the app reads the whole upload"

func pySweepCases() []pyCase {
	upload := sweepPayload(1<<20+3, 7)
	large := strings.Repeat("x", 8000)
	return []pyCase{
		{name: "status-200", target: "/status/200"},
		{name: "status-201", target: "/status/201"},
		{name: "status-204", target: "/status/204"},
		{
			// The bridge drops the body, as net/http does; so do Werkzeug
			// and uvicorn (which sends the head, then refuses the body).
			name: "status-204-with-body", target: "/status/204?body=1",
		},
		{name: "status-302-location", target: "/status/302"},
		{name: "status-304", target: "/status/304"},
		{name: "status-404", target: "/status/404"},
		{name: "status-418", target: "/status/418"},
		{name: "status-500", target: "/status/500"},
		{name: "status-503", target: "/status/503"},
		{name: "unknown-route", target: "/no/such/route"},
		{name: "multi-value-headers-and-set-cookie", target: "/headers"},
		{name: "empty-body", target: "/empty"},
		{name: "content-length-set", target: "/length-set"},
		{name: "content-length-unset", target: "/length-unset"},
		{name: "body-in-pieces", target: "/pieces"},
		{
			name: "content-length-over", target: "/length-over",
			differs:     map[string]string{"asgi": pyHeldStart, "starlette": pyHeldStart, "flask": pyHeldStart},
			whenDiffers: pyWant500,
		},
		{name: "head-content-length-set", method: http.MethodHead, target: "/length-set"},
		{name: "head-content-length-unset", method: http.MethodHead, target: "/length-unset"},
		{name: "head-in-pieces", method: http.MethodHead, target: "/pieces"},
		{name: "3MB-streamed", target: "/big?n=3000000"},
		{name: "3MB-streamed-with-length", target: "/big?n=3000000&length=1"},
		// More than gRPC's 4 MiB message limit in one body event (one WSGI
		// item): the plugin must split it.
		{name: "10MiB-in-one-event", target: "/big?n=10485760&one=1"},
		{name: "large-response-header", target: "/large-header?n=8000"},
		{name: "100-response-headers", target: "/many-headers?n=100"},
		{
			name: "response-header-utf8", target: "/header-value?encoding=utf-8",
			differs: map[string]string{"flask": pyWSGIASCIIHeaders},
			check: func(t *testing.T, side string, o bridgetest.Observation) {
				if v := o.Header.Values("X-Value"); o.Status != http.StatusOK || len(v) != 1 || v[0] != "café" {
					t.Errorf("%s: %s, X-Value %q; want 200 with X-Value café", side, o, v)
				}
			},
		},
		{
			name: "response-header-not-utf8", target: "/header-value?encoding=latin-1",
			differs:     map[string]string{"asgi": pyNotUTF8, "starlette": pyNotUTF8, "flask": pyNotUTF8 + "; " + pyWSGIASCIIHeaders},
			whenDiffers: pyWant500,
		},
		{
			name: "query-string", target: "/where?a=1&a=2&b=%20x+y&c=%2F%3F%26&d=&e",
			check: pyWantView(map[string]any{"query": "a=1&a=2&b=%20x+y&c=%2F%3F%26&d=&e"}),
		},
		{name: "path-double-slash", target: "/where//x"},
		{name: "path-encoded-slash", target: "/where/a%2Fb"},
		{name: "path-utf8", target: "/where/caf%C3%A9"},
		{name: "path-escapes", target: "/where/100%25/sp%20ace/%7Etilde?q=%25"},
		{
			name: "request-view-get", target: "/request",
			header: http.Header{"X-Multi": {"one", "two"}, "X-Test": {"v"}},
		},
		{
			name: "request-view-put", method: http.MethodPut, target: "/request?x=1",
			header: http.Header{"X-Multi": {"one", "two"}, "Content-Type": {"text/plain"}, "X-Test": {"café ✓"}},
			body:   []byte("abc"),
		},
		{
			name: "large-request-header", method: http.MethodPost, target: "/request",
			header: http.Header{"X-Large": {large}}, body: []byte("x"),
			check: pyWantView(map[string]any{"x-large-bytes": len(large)}),
		},
		{name: "post-empty-body", method: http.MethodPost, target: "/request", body: []byte{}},
		// The plain ASGI app answers without reading the upload; Starlette
		// and Flask refuse the method (405), also without reading it.
		{name: "answer-without-reading-upload", method: http.MethodPost, target: "/status/201", body: upload},
		{
			name: "echo-sized", method: http.MethodPost, target: "/echo", body: upload,
			check: pyWantBody(upload),
		},
		{
			name: "echo-unsized", method: http.MethodPost, target: "/echo", body: upload, unsized: true,
			differs: map[string]string{"flask": pyWSGIChunked},
			check:   pyWantBody(upload),
		},
		{
			name: "upload-sized", method: http.MethodPost, target: "/upload", body: upload,
			check: pyWantUpload(upload),
		},
		{
			name: "upload-unsized", method: http.MethodPost, target: "/upload", body: upload, unsized: true,
			differs: map[string]string{"flask": pyWSGIChunked},
			check:   pyWantUpload(upload),
		},
	}
}

// pyObserve does one bounded exchange of tc.
func pyObserve(t *testing.T, tg pyTarget, tc pyCase) bridgetest.Observation {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
	defer cancel()
	return bridgetest.Observe(tg.client, tc.request(t, ctx, tg.url))
}

// pyNormalize removes from the two observations what legitimately differs
// between the servers, and says what it removed.
func pyNormalize(method string, oracle, bridge *bridgetest.Observation) []string {
	var notes []string
	// Date is each server's clock; bridgetest.Observe drops it already.
	//
	// Server: uvicorn names itself in every response (server_header); the
	// bridge adds nothing of its own. A Server header the app sets is
	// compared.
	if v := oracle.Header.Values("Server"); len(v) == 1 && v[0] == "uvicorn" {
		oracle.Header.Del("Server")
	}
	// Framing of a body the app sent whole, in one body event (or one WSGI
	// item) without declaring its length: uvicorn cannot know the length
	// and chunks it, and the proxy passes that on; the bridge sends it as
	// one message, and net/http in front of it, seeing the whole body
	// before the handler returns, declares its Content-Length. The client
	// gets the same bytes, and both framings are complete.
	if len(oracle.Header.Values("Content-Length")) == 0 && slices.Equal(oracle.TransferEncoding, []string{"chunked"}) &&
		len(bridge.TransferEncoding) == 0 && bridge.Header.Get("Content-Length") == strconv.Itoa(len(bridge.Body)) {
		bridge.Header.Del("Content-Length")
		bridge.TransferEncoding = oracle.TransferEncoding
		notes = append(notes, fmt.Sprintf("framing: uvicorn chunked the body, the host declared Content-Length %d", len(bridge.Body)))
	}
	// The same for HEAD: net/http in front of the bridge declares the
	// length of the body the app sent whole (and sends none of it), where
	// uvicorn declares nothing.
	if method == http.MethodHead && len(oracle.Header.Values("Content-Length")) == 0 && len(bridge.Body) == 0 {
		if v := bridge.Header.Values("Content-Length"); len(v) == 1 {
			if _, err := strconv.ParseUint(v[0], 10, 63); err == nil {
				bridge.Header.Del("Content-Length")
				notes = append(notes, fmt.Sprintf("framing: for HEAD, the host declared Content-Length %s, uvicorn none", v[0]))
			}
		}
	}
	return notes
}

func pySweep(t *testing.T, env *pyEnv) {
	for _, tc := range pySweepCases() {
		t.Run(tc.name, func(t *testing.T) {
			want := pyObserve(t, env.oracle, tc)
			got := pyObserve(t, env.bridge, tc)
			for _, note := range pyNormalize(pyOr(tc.method, http.MethodGet), &want, &got) {
				t.Log(note)
			}
			if tc.body != nil && got.Close && !want.Close {
				// The host announces Connection: close when its response
				// starts before the upload ended (differential_test.go).
				t.Log("the bridged response announces Connection: close: it started during the upload")
				got.Close = false
			}
			diffs := bridgetest.Diff(want, got)
			reason, differs := tc.differs[env.app.name]
			switch {
			case differs && len(diffs) == 0:
				t.Errorf("uvicorn and the bridge agree, but the case says they differ: %s", reason)
			case differs:
				t.Logf("uvicorn differs (%s): %s", reason, strings.Join(diffs, "; "))
			default:
				for _, d := range diffs {
					t.Errorf("uvicorn (direct) vs bridge: %s", d)
				}
				if len(diffs) > 0 && len(want.Body) < 2048 && len(got.Body) < 2048 {
					t.Logf("uvicorn's body:\n%s\nthe bridge's body:\n%s", want.Body, got.Body)
				}
			}
			if tc.check != nil {
				tc.check(t, "bridge", got)
				if !differs {
					tc.check(t, "uvicorn", want)
				}
			}
			if tc.whenDiffers != nil && differs {
				tc.whenDiffers(t, "bridge", got)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 100 MiB each way, through the bridge.

const pyBulkSize = 100 << 20

func pyBulk(t *testing.T, env *pyEnv) {
	sum := pyPatternSum(pyBulkSize)
	t.Run("upload-100MiB", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), pyBulkTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, env.bridge.url+"/upload", newPyPattern(pyBulkSize))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = pyBulkSize
		start := time.Now()
		o := bridgetest.Observe(env.bridge.client, req)
		elapsed := time.Since(start)
		want := fmt.Sprintf("%d %s\n", pyBulkSize, sum)
		if o.Err != bridgetest.ErrNone || o.Status != http.StatusOK || string(o.Body) != want {
			t.Fatalf("upload: %s; want 200 %q", o, want)
		}
		t.Logf("100 MiB upload in %v (%.0f MB/s)", elapsed.Round(time.Millisecond), pyBulkSize/elapsed.Seconds()/1e6)
	})
	t.Run("download-100MiB", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), pyBulkTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/download?n=%d", env.bridge.url, pyBulkSize), nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		resp, err := env.bridge.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		elapsed := time.Since(start)
		if err != nil || resp.StatusCode != http.StatusOK || n != pyBulkSize {
			t.Fatalf("download: status %d, %d bytes, error %v; want 200 and %d bytes", resp.StatusCode, n, err, pyBulkSize)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != sum {
			t.Fatalf("download: sha256 %s, want %s", got, sum)
		}
		t.Logf("100 MiB download in %v (%.0f MB/s)", elapsed.Round(time.Millisecond), pyBulkSize/elapsed.Seconds()/1e6)
	})
}

// ---------------------------------------------------------------------------
// Full duplex: the client reads the echo of each part before it sends the
// next, so that a side that waits for the whole upload hangs (and fails at
// the exchange timeout).

func pyFullDuplex(t *testing.T, env *pyEnv) {
	for _, part := range []int{1, 1000, 16 << 10, 100 << 10} {
		t.Run(fmt.Sprintf("parts-of-%d", part), func(t *testing.T) {
			pyDuplex(t, env.bridge, part, 8)
			if env.app.wsgi {
				t.Log("not run under uvicorn: its WSGI middleware reads the whole upload before it calls the app")
				return
			}
			pyDuplex(t, env.oracle, part, 8)
		})
	}
}

// pyDuplex posts rounds parts of part bytes to /duplex, each once the echo
// of the previous one came back.
func pyDuplex(t *testing.T, tg pyTarget, part, rounds int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
	defer cancel()
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/duplex?part=%d", tg.url, part), pr)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		resp *http.Response
		err  error
	}
	responded := make(chan result, 1)
	go func() {
		resp, err := tg.client.Do(req)
		responded <- result{resp, err}
	}()
	var resp *http.Response
	defer func() {
		// RoundTrip returns only once the body's reader ended.
		cancel()
		_ = pw.CloseWithError(errors.New("the test ended"))
		if resp == nil {
			resp = (<-responded).resp
		}
		if resp != nil {
			resp.Body.Close()
		}
	}()
	payload := sweepPayload(part*rounds, uint64(part))
	echo := make([]byte, part)
	for i := range rounds {
		sent := payload[i*part : (i+1)*part]
		if _, err := pw.Write(sent); err != nil {
			t.Fatalf("%s: round %d: upload: %v", tg.side, i, err)
		}
		if resp == nil {
			r := <-responded
			if r.err != nil {
				t.Fatalf("%s: no response after the first part: %v", tg.side, r.err)
			}
			resp = r.resp
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: status %d, want 200", tg.side, resp.StatusCode)
			}
		}
		if _, err := io.ReadFull(resp.Body, echo); err != nil {
			t.Fatalf("%s: round %d: reading the echo of %d bytes: %v", tg.side, i, part, err)
		}
		if !bytes.Equal(echo, sent) {
			t.Fatalf("%s: round %d: echo %s", tg.side, i, bridgetest.FirstDiff(echo, sent))
		}
	}
	_ = pw.Close()
	rest, err := io.ReadAll(resp.Body)
	if err != nil || len(rest) != 0 {
		t.Errorf("%s: after the upload ended: %d more bytes, error %v; want a clean end", tg.side, len(rest), err)
	}
}

// ---------------------------------------------------------------------------
// Server-sent events at the app's pace: the app sends event i+1 only after
// GET /next, which the test sends only once event i arrived. A side that
// holds events back never delivers event i, and fails at the timeout.

func pyServerSentEvents(t *testing.T, env *pyEnv) {
	for _, tg := range []pyTarget{env.bridge, env.oracle} {
		t.Run(tg.side, func(t *testing.T) {
			const events = 4
			id := pyID()
			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/sse?id=%s&n=%d", tg.url, id, events), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tg.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
				t.Fatalf("status %d, Content-Type %q; want 200 text/event-stream", resp.StatusCode, ct)
			}
			br := bufio.NewReader(resp.Body)
			for i := range events {
				if i > 0 {
					tg.get(t, "/next?id="+id)
				}
				want := fmt.Sprintf("data: %d\n\n", i)
				got := make([]byte, len(want))
				if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
					t.Fatalf("event %d: read %q, %v; want %q", i, got, err, want)
				}
				if n := br.Buffered(); n != 0 {
					t.Fatalf("after event %d, %d more bytes arrived before the app was told to send them", i, n)
				}
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Errorf("after the events: %q, error %v; want a clean end", rest, err)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// A client that abandons its upload: the app gets http.disconnect (ASGI),
// ClientDisconnect (Starlette) or an OSError from wsgi.input (WSGI), never
// the end of a complete body.

// pyRecord is what an app's /abort route received, from /record.
type pyRecord struct {
	Events []string `json:"events"`
	Bytes  int      `json:"bytes"`
	Done   bool     `json:"done"`
}

// pyBackground checks that the work an app does after a streamed response
// (Starlette's background task, a step after the last send, Flask's
// call_on_close) runs for every request: the host ends the stream as soon
// as it has body_complete, and that must not be taken for a client that
// left.
// targets returns the bridge and uvicorn, or the bridge alone for a WSGI
// app, which uvicorn's WSGI middleware serves otherwise for the reason why.
func (env *pyEnv) targets(t *testing.T, why string) []pyTarget {
	t.Helper()
	if env.app.wsgi {
		t.Logf("not run under uvicorn: %s", why)
		return []pyTarget{env.bridge}
	}
	return []pyTarget{env.bridge, env.oracle}
}

func pyBackground(t *testing.T, env *pyEnv) {
	const requests = 20
	for _, tg := range env.targets(t, "its WSGI middleware never calls the iterable's close()") {
		t.Run(tg.side, func(t *testing.T) {
			ids := make([]string, requests)
			for i := range ids {
				ids[i] = pyID()
				if body := tg.get(t, "/background?id="+ids[i]); len(body) == 0 {
					t.Fatalf("GET /background: empty body")
				}
			}
			ran := 0
			for _, id := range ids {
				var rec pyRecord
				if err := json.Unmarshal(tg.get(t, "/record?done=1&id="+id), &rec); err != nil {
					t.Fatal(err)
				}
				if rec.Done && slices.Equal(rec.Events, []string{"background"}) {
					ran++
				}
			}
			if ran != requests {
				t.Errorf("the background work ran for %d of %d streamed responses", ran, requests)
			}
		})
	}
}

func pyClientAbort(t *testing.T, env *pyEnv) {
	var wantEnd []string
	switch env.app.name {
	case "asgi":
		wantEnd = []string{"http.disconnect"}
	case "starlette":
		wantEnd = []string{"http.disconnect", "ClientDisconnect"}
	case "flask":
		wantEnd = []string{"OSError"}
	}
	for _, tg := range env.targets(t, "its WSGI middleware reads the whole upload before it calls the app") {
		t.Run(tg.side, func(t *testing.T) {
			id := pyID()
			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			pr, pw := io.Pipe()
			defer pw.Close()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.url+"/abort?id="+id, pr)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				resp, err := tg.client.Do(req)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil {
						err = fmt.Errorf("a response %d arrived", resp.StatusCode)
					}
				}
				done <- err
			}()
			wrote := make(chan error, 1)
			go func() {
				_, err := pw.Write(sweepPayload(64<<10, 9))
				wrote <- err
			}()
			// The app has part of the upload, and waits for more.
			var rec pyRecord
			if err := json.Unmarshal(tg.get(t, "/record?min=16384&id="+id), &rec); err != nil {
				t.Fatal(err)
			}
			if rec.Done || rec.Bytes < 16384 {
				t.Fatalf("before the abort the app recorded %+v; want at least 16384 bytes and still reading", rec)
			}
			// The client gives up: the transport closes the connection, and
			// the body's reader ends (RoundTrip waits for it).
			cancel()
			pw.CloseWithError(errors.New("the client gave up"))
			if err, ok := bridgetest.WaitFor(t, done, bridgetest.ExchangeTimeout, "the aborted request"); ok && err == nil {
				t.Error("the aborted request ended without an error")
			}
			<-wrote
			rec = pyRecord{}
			if err := json.Unmarshal(tg.get(t, "/record?done=1&id="+id), &rec); err != nil {
				t.Fatal(err)
			}
			if !rec.Done {
				t.Fatalf("the app did not finish reading the abandoned upload: %+v", rec)
			}
			for _, ev := range rec.Events {
				if ev == "request-final" || ev == "complete" {
					t.Errorf("the app saw the abandoned upload as complete: events %q", rec.Events)
				}
			}
			if !slices.Equal(rec.Events[max(0, len(rec.Events)-len(wantEnd)):], wantEnd) {
				t.Errorf("the app's receive events end with %q, want %q", rec.Events, wantEnd)
			}
			t.Logf("the app received %d bytes, events %q", rec.Bytes, rec.Events)
		})
	}
}

// ---------------------------------------------------------------------------
// App exceptions: before the response started, a complete 500; after it
// started, the client sees the response cut short.

func pyAppException(t *testing.T, env *pyEnv) {
	type excCase struct {
		name   string
		target string
		only   string // run for this app only
		check  func(t *testing.T, side string, o bridgetest.Observation)
		// differs explains, per app, why uvicorn's answer differs.
		differs map[string]string
	}
	wantCut := func(t *testing.T, side string, o bridgetest.Observation) {
		if o.Status != http.StatusOK || string(o.Body) != "partial" || o.Err != bridgetest.ErrUnexpectedEOF {
			t.Errorf("%s: %s; want 200 %q cut short (unexpected EOF)", side, o, "partial")
		}
	}
	// Starlette answers an exception itself (ServerErrorMiddleware) and
	// Flask with PROPAGATE_EXCEPTIONS leaves it to the server: only for
	// the plain ASGI app and Flask is the 500 the server's own.
	own500 := "the server's own 500: uvicorn writes \"Internal Server Error\" with Content-Length 21; " +
		"the bridge writes net/http's http.Error answer, \"Internal Server Error\\n\" with X-Content-Type-Options: nosniff"
	for _, tc := range []excCase{
		{name: "raise-before-start", target: "/raise-before", check: pyWant500, differs: map[string]string{"asgi": own500, "flask": own500}},
		{name: "raise-after-start", target: "/raise-after", check: wantCut},
		{name: "return-without-finishing", target: "/return-early", only: "asgi", check: wantCut},
	} {
		if tc.only != "" && tc.only != env.app.name {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			c := pyCase{target: tc.target}
			want := pyObserve(t, env.oracle, c)
			got := pyObserve(t, env.bridge, c)
			pyNormalize(http.MethodGet, &want, &got)
			tc.check(t, "bridge", got)
			tc.check(t, "uvicorn", want)
			diffs := bridgetest.Diff(want, got)
			if reason, ok := tc.differs[env.app.name]; ok {
				t.Logf("uvicorn differs (%s): %s", reason, strings.Join(diffs, "; "))
				return
			}
			for _, d := range diffs {
				t.Errorf("uvicorn (direct) vs bridge: %s", d)
			}
		})
	}
	// The plugin serves on after the failures.
	if body := env.bridge.get(t, "/length-set"); string(body) != "hello" {
		t.Errorf("after the failures the plugin answers %q, want %q", body, "hello")
	}
}

// ---------------------------------------------------------------------------
// No growth: after a warm-up, 1 000 sequential and 100 concurrent requests
// leave the plugin's asyncio task count where it was, and its RSS within a
// generous margin.

// pyStats is what /stats reports.
type pyStats struct {
	Tasks   int `json:"tasks"`
	RSSKiB  int `json:"rss_kib"`
	Threads int `json:"threads"`
}

const (
	pySequential = 1000
	pyConcurrent = 100
	// pyRSSMargin is the RSS growth allowed.
	pyRSSMargin = 16 << 10 // KiB
	// pyTaskMargin is the task count growth allowed: a request's handler
	// may still be ending its stream when /stats runs, though its client
	// has the whole answer. A task left behind per request would show in
	// the hundreds.
	pyTaskMargin = 10
	// pyEchoSize is the body of half of the requests, echoed: keeping
	// every one of them (in and out) would grow the RSS by twice the
	// margin.
	pyEchoSize = 32 << 10
	// pyWSGIWorkers is max_workers' default: the size of each of the
	// threaded WSGI facade's pools (the server's, the app's, the readers').
	pyWSGIWorkers = 64
)

func pyNoGrowth(t *testing.T, env *pyEnv) {
	tg := env.bridge
	stats := func() pyStats {
		var s pyStats
		if err := json.Unmarshal(tg.get(t, "/stats"), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	body := sweepPayload(pyEchoSize, 11)
	exchange := func(i int) error {
		ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
		defer cancel()
		var (
			req  *http.Request
			want []byte
			err  error
		)
		if i%2 == 0 {
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, tg.url+"/length-set", nil)
			want = []byte("hello")
		} else {
			req, err = http.NewRequestWithContext(ctx, http.MethodPost, tg.url+"/echo", bytes.NewReader(body))
			want = body
		}
		if err != nil {
			return err
		}
		o := bridgetest.Observe(tg.client, req)
		if o.Err != bridgetest.ErrNone || o.Status != http.StatusOK || !bytes.Equal(o.Body, want) {
			return fmt.Errorf("request %d: %s", i, o)
		}
		return nil
	}
	sequential := func(n int) {
		for i := range n {
			if err := exchange(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	concurrent := func(n int) {
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- exchange(i)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}

	// Warm-up: pools, caches and allocator arenas settle.
	sequential(100)
	concurrent(pyConcurrent)
	concurrent(pyConcurrent)
	base := stats()
	sequential(pySequential)
	afterSequential := stats()
	concurrent(pyConcurrent)
	afterConcurrent := stats()
	// serve_plugin_hooks serves a WSGI app from grpcio's synchronous
	// server: its pool, the app's and the readers' (uploads with a
	// read_timeout) start threads as requests come, up to max_workers (64)
	// each, besides a few of gRPC's; a WSGI plugin may grow to that many,
	// an ASGI one not at all.
	maxThreads := base.Threads
	if env.app.wsgi {
		maxThreads = max(maxThreads, 3*pyWSGIWorkers+8)
	}
	t.Logf("plugin after warm-up %+v, after %d sequential %+v, after %d concurrent %+v",
		base, pySequential, afterSequential, pyConcurrent, afterConcurrent)
	for _, s := range []struct {
		when string
		pyStats
	}{{"sequential", afterSequential}, {"concurrent", afterConcurrent}} {
		// Each /stats runs as the same number of tasks.
		if s.Tasks > base.Tasks+pyTaskMargin {
			t.Errorf("after the %s requests the plugin has %d asyncio tasks, %d after the warm-up (margin %d)", s.when, s.Tasks, base.Tasks, pyTaskMargin)
		}
		if s.RSSKiB > base.RSSKiB+pyRSSMargin {
			t.Errorf("after the %s requests the plugin's RSS is %d KiB, %d KiB after the warm-up (margin %d KiB)", s.when, s.RSSKiB, base.RSSKiB, pyRSSMargin)
		}
		if s.Threads > maxThreads {
			t.Errorf("after the %s requests the plugin has %d threads, %d after the warm-up (at most %d allowed)", s.when, s.Threads, base.Threads, maxThreads)
		}
	}
}
