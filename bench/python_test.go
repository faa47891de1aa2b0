package bench

// Python: the same comparison for a plugin written in Python. One plain
// ASGI app, python/app.py, with the routes and bytes of the Go plugin's
// handler, is served two ways, beside the transport's ceiling:
//
//   - py-raw: raw_test.go's bare gRPC stream, served by grpc.aio
//     (python/raw.py) in the py-bridge process;
//   - py-bridge: the generated ServeHTTPHost, gRPC over 127.0.0.1 TCP, and
//     a Python process running the generated serve_plugin_hooks on the app
//     (python/plugin.py);
//   - py-uvicorn: httputil.ReverseProxy to uvicorn serving the app over
//     127.0.0.1 TCP, on a listening socket the host passes it (--fd 3).
//
// BenchmarkPythonWSGI does the same for the app as WSGI, python/wsgi_app.py:
//
//   - py-wsgi: the generated ServeHTTPHost, and python/wsgi_plugin.py
//     running serve_plugin_hooks, which serves a WSGI app from grpcio's
//     synchronous server (ServeHTTPThreadedWSGI);
//   - py-wsgi-aio: the same with the grpc.aio WSGI facade (ServeHTTPWSGI
//     on a grpc.aio server), what serve_plugin_hooks did before;
//   - py-wsgi-uvicorn: the proxy to uvicorn --interface wsgi.
//
// The host side, the workloads and the figures are BenchmarkExchange's;
// plugin-cpu-ns/op and plugin-switches/op are the Python process's, read
// from /proc.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	// envPyProf, if set, is a directory where each Python process writes
	// its cProfile statistics (py-bridge.prof, py-uvicorn.prof) when it
	// stops; read them with python3 -m pstats.
	envPyProf = "HTTPBRIDGE_BENCH_PYPROF"
	// envUvicorn, if set, holds more arguments for uvicorn, such as
	// "--http httptools" where that is installed. By default uvicorn runs
	// h11, the HTTP parser Debian's package has by itself.
	envUvicorn = "HTTPBRIDGE_BENCH_UVICORN"
	// envPyLoop is the event loop of every Python process, as uvicorn's
	// --loop: "auto" (the default) is uvloop's where it is installed, as
	// for run_plugin_hooks and uvicorn alike; "asyncio" is asyncio's own.
	envPyLoop = "HTTPBRIDGE_BENCH_LOOP"
)

// pyLoop is the event loop the Python processes run, from envPyLoop.
func pyLoop() string {
	if loop := os.Getenv(envPyLoop); loop != "" {
		return loop
	}
	return "auto"
}

// pySystemNames are the Python systems, in report order.
var pySystemNames = []string{"py-raw", "py-bridge", "py-uvicorn"}

// pyWSGISystemNames are the Python systems of the WSGI app, in report
// order: the threaded facade between the grpc.aio one and uvicorn's, so
// that a run alternates the two facades.
var pyWSGISystemNames = []string{"py-wsgi-aio", "py-wsgi", "py-wsgi-uvicorn"}

// pyWSGIWorkloads are the workloads the WSGI systems run.
var pyWSGIWorkloads = pickWorkloads("upload-64MiB", "download-64MiB", "get-c1", "get-c32")

// pyWorkloads are the workloads of BenchmarkExchange that the Python
// systems run: bulk both ways, latency, concurrency and events.
var pyWorkloads = pickWorkloads("upload-64MiB", "download-64MiB", "get-c1", "get-c32", "events-1000")

func pickWorkloads(names ...string) []workload {
	var picked []workload
	for _, name := range names {
		for _, wl := range workloads {
			if wl.name == name {
				picked = append(picked, wl)
			}
		}
	}
	if len(picked) != len(names) {
		panic("pickWorkloads: a workload is missing")
	}
	return picked
}

// BenchmarkPython runs the Python app's workloads through the bridge and
// under uvicorn behind the proxy, and raw's over grpc.aio, with
// BenchmarkExchange's figures.
func BenchmarkPython(b *testing.B) {
	requirePython(b)
	for _, wl := range pyWorkloads {
		b.Run("work="+wl.name, func(b *testing.B) {
			for _, name := range pySystemNames {
				b.Run("sys="+name, func(b *testing.B) {
					sys, err := getSystem(name)
					if err != nil {
						b.Fatal(err)
					}
					runExchanges(b, sys, wl)
				})
			}
		})
	}
}

// BenchmarkPythonWSGI runs the WSGI app's workloads through the bridge
// from grpcio's synchronous server and from grpc.aio, and under uvicorn
// --interface wsgi behind the proxy.
func BenchmarkPythonWSGI(b *testing.B) {
	requirePython(b)
	for _, wl := range pyWSGIWorkloads {
		b.Run("work="+wl.name, func(b *testing.B) {
			for _, name := range pyWSGISystemNames {
				b.Run("sys="+name, func(b *testing.B) {
					sys, err := getSystem(name)
					if err != nil {
						b.Fatal(err)
					}
					runExchanges(b, sys, wl)
				})
			}
		})
	}
}

// TestPythonSystems checks, with small bodies, that the Python systems
// serve every workload correctly, and that the app's events reach the host
// one by one, as the app sends them.
func TestPythonSystems(t *testing.T) {
	requirePython(t)
	const size = 300<<10 + 7 // several chunks and a ragged end
	checks := []workload{
		{name: "upload", kind: "upload", size: size},
		{name: "download", kind: "download", size: size},
		{name: "get", kind: "get", size: int64(len(small))},
		{name: "events", kind: "events", size: 10},
	}
	for _, name := range slices.Concat(pySystemNames, pyWSGISystemNames) {
		t.Run(name, func(t *testing.T) {
			sys, err := getSystem(name)
			if err != nil {
				t.Fatal(err)
			}
			before, err := sys.py.stats()
			if err != nil {
				t.Fatalf("Python process figures: %v", err)
			}
			for _, wl := range checks {
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				e := newExchanger(sys, wl)
				e.w.keep = true
				err := e.do(ctx)
				cancel()
				if err != nil {
					t.Errorf("%s: %v", wl.name, err)
					continue
				}
				if sys.handler == nil {
					continue // raw checks its own counts
				}
				if wl.kind == "download" && e.w.crc != wantCRC(size) {
					t.Errorf("%s: body differs from what the app sent", wl.name)
				}
				if wl.kind == "events" && e.w.flushes == 0 {
					t.Errorf("%s: no flush reached the host's ResponseWriter", wl.name)
				}
			}
			if err := concurrentGets(t.Context(), sys, 32, 4); err != nil {
				t.Errorf("get at concurrency 32: %v", err)
			}
			if sys.handler != nil {
				if err := pacedEvents(t.Context(), sys, 5); err != nil {
					t.Errorf("paced events: %v", err)
				}
			}
			after, err := sys.py.stats()
			if err != nil {
				t.Fatalf("Python process figures: %v", err)
			}
			if after.cpu < before.cpu || after.switches <= before.switches {
				t.Errorf("Python process figures do not grow: %+v, then %+v", before, after)
			}
		})
	}
}

// concurrentGets runs conc goroutines of n GET exchanges each.
func concurrentGets(ctx context.Context, sys *system, conc, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	wl := workload{name: "get", kind: "get", size: int64(len(small)), conc: conc}
	errs := make([]error, conc)
	var wg sync.WaitGroup
	for i := range conc {
		wg.Go(func() {
			e := newExchanger(sys, wl)
			for range n {
				if errs[i] = e.do(ctx); errs[i] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

var gateSeq atomic.Int64

// pacedEvents asks the app for n events, each after the first only once
// the host's ResponseWriter got the one before (python/app.py's gates).
// An event held back anywhere on the way, or sent together with the next,
// would stall the stream until the app gives up.
func pacedEvents(ctx context.Context, sys *system, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	key := "g" + strconv.FormatInt(gateSeq.Add(1), 10)
	w := &pacer{sink: newSink(), events: n, open: func() error {
		w := newSink()
		r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/next?gate="+key, http.NoBody)
		sys.handler.ServeHTTP(w, r)
		if w.code != http.StatusOK {
			return fmt.Errorf("open gate: status %d, body %q", w.code, w.head)
		}
		return nil
	}}
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/events?n="+strconv.Itoa(n)+"&gate="+key, http.NoBody)
	sys.handler.ServeHTTP(w, r)
	switch {
	case w.err != nil:
		return w.err
	case w.code != http.StatusOK:
		return fmt.Errorf("status %d, body %q", w.code, w.head)
	case w.n != int64(n)*eventSize:
		return fmt.Errorf("got %d bytes, want %d events of %d", w.n, n, eventSize)
	case w.writes != n:
		return fmt.Errorf("%d events came in %d writes, want one each", n, w.writes)
	case w.flushes < n:
		return fmt.Errorf("%d events came with %d flushes, want one each", n, w.flushes)
	}
	return nil
}

// pacer is the host's ResponseWriter of pacedEvents: once an event has
// arrived whole, it lets the app send the next.
type pacer struct {
	*sink
	events int          // how many the app sends
	open   func() error // lets the app send one more event
	writes int
	err    error // the first failure to open the gate
}

func (p *pacer) Write(b []byte) (int, error) {
	n, err := p.sink.Write(b)
	p.writes++
	if p.sink.n%eventSize == 0 && p.sink.n/eventSize < int64(p.events) && p.err == nil {
		p.err = p.open()
	}
	return n, err
}

// requirePython skips the test unless Debian's Python and its modules are
// there, and fails it instead where CI is set.
func requirePython(tb testing.TB) {
	tb.Helper()
	if runtime.GOOS != "linux" {
		tb.Skip("the Python process's figures need Linux's /proc")
	}
	bridgetest.RequirePython(tb, "grpc", "google.protobuf", "uvicorn")
}

// newPySystem starts the Python process of system name and connects the
// host's side to it.
func newPySystem(name string) (*system, error) {
	s := &system{name: name}
	switch name {
	case "py-raw", "py-bridge":
		p, err := startPyBridge()
		if err != nil {
			return nil, err
		}
		s.py = p.proc
		port := p.port
		if name == "py-raw" {
			port = p.rawPort
		}
		opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, grpcProfiles[runProfile()].dial...)
		conn, err := grpc.NewClient(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), opts...)
		if err != nil {
			return nil, err
		}
		s.conn = conn
		if name == "py-bridge" {
			host := pluginapiv1.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(conn))
			host.ChunkSize = chunkSize()
			s.handler = host
		}
	case "py-wsgi", "py-wsgi-aio":
		how := "threads"
		if name == "py-wsgi-aio" {
			how = "aio"
		}
		p, port, err := startPyWSGI(name, how)
		if err != nil {
			return nil, err
		}
		s.py = p
		opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, grpcProfiles[runProfile()].dial...)
		conn, err := grpc.NewClient(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), opts...)
		if err != nil {
			return nil, err
		}
		s.conn = conn
		host := pluginapiv1.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(conn))
		host.ChunkSize = chunkSize()
		s.handler = host
	case "py-uvicorn", "py-wsgi-uvicorn", "py-uvicorn-ws":
		app := "app:app"
		if name == "py-wsgi-uvicorn" {
			app = "wsgi_app:app"
		}
		p, addr, err := startPyUvicorn(name, app)
		if err != nil {
			return nil, err
		}
		s.py = p
		s.handler = newReverseProxy("tcp", addr)
	default:
		return nil, fmt.Errorf("unknown Python system %q", name)
	}
	if err := s.waitReady(); err != nil {
		return nil, err
	}
	return s, nil
}

// waitReady waits until the system answers a GET, or its process exits.
func (s *system) waitReady() error {
	deadline := time.Now().Add(60 * time.Second)
	wl := workload{name: "get", kind: "get", size: int64(len(small))}
	for {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := newExchanger(s, wl).do(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.py.done:
			return fmt.Errorf("%s exited (%v) before it served: %w%s", s.py.name, s.py.err, err, s.py.stderr.tail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not serving after 60s: %w", s.py.name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pyProc is a running Python process.
type pyProc struct {
	name   string
	cmd    *exec.Cmd
	stderr *logBuffer
	done   chan struct{} // closed when it has exited
	err    error         // what Wait returned, set before done closes
}

// pyProcs are all the Python processes started, for stopPython.
var pyProcs struct {
	sync.Mutex
	all []*pyProc
}

// startPy starts /usr/bin/python3 with args, with the app and gen/python
// on its path; extra, if not nil, is its file descriptor 3. Its standard
// error goes to stderr, kept until it stops so that it never splits a
// benchmark's result line, and so does its standard output if stdout is
// nil.
func startPy(name string, args []string, extra *os.File, stdout io.Writer, stderr *logBuffer) (*pyProc, error) {
	pyDir, err := filepath.Abs("python")
	if err != nil {
		return nil, err
	}
	genDir, err := filepath.Abs(filepath.Join("..", "gen", "python"))
	if err != nil {
		return nil, err
	}
	if dir := os.Getenv(envPyProf); dir != "" {
		out, err := filepath.Abs(filepath.Join(dir, name+".prof"))
		if err != nil {
			return nil, err
		}
		args = append([]string{"-m", "cProfile", "-o", out}, args...)
	}
	// A PYTHONPATH of the caller's comes first, so that another build of
	// the generated modules can be tried without touching gen/.
	path := genDir + string(os.PathListSeparator) + pyDir
	if first := os.Getenv("PYTHONPATH"); first != "" {
		path = first + string(os.PathListSeparator) + path
	}
	cmd := exec.Command(bridgetest.Python, args...)
	// No bytecode lands in the tree.
	cmd.Env = append(os.Environ(), "PYTHONPATH="+path, "PYTHONDONTWRITEBYTECODE=1", envPyLoop+"="+pyLoop())
	if stdout == nil {
		stdout = stderr
	}
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = procAttr() // the process ends if this one dies
	if extra != nil {
		cmd.ExtraFiles = []*os.File{extra}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &pyProc{name: name, cmd: cmd, stderr: stderr, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	pyProcs.Lock()
	pyProcs.all = append(pyProcs.all, p)
	pyProcs.Unlock()
	return p, nil
}

// pyPlugin is the process of python/plugin.py, which py-bridge and py-raw
// share.
type pyPlugin struct {
	proc          *pyProc
	port, rawPort int // of the plugin's server and of raw's
}

// pyPluginRunning is the one pyPlugin, guarded by getSystem's lock.
var pyPluginRunning *pyPlugin

// startPyBridge returns the process of python/plugin.py, starting it the
// first time.
func startPyBridge() (*pyPlugin, error) {
	if p := pyPluginRunning; p != nil {
		return p, nil
	}
	stderr := &logBuffer{}
	out := &firstLine{line: make(chan string, 1), rest: stderr}
	proc, err := startPy("py-bridge", []string{filepath.Join("python", "plugin.py")}, nil, out, stderr)
	if err != nil {
		return nil, err
	}
	select {
	case line := <-out.line:
		p := &pyPlugin{proc: proc}
		if _, err := fmt.Sscan(line, &p.port, &p.rawPort); err != nil {
			return nil, fmt.Errorf("py-bridge printed %q, want its two ports", line)
		}
		pyPluginRunning = p
		return p, nil
	case <-proc.done:
		return nil, fmt.Errorf("py-bridge exited before it served: %v%s", proc.err, proc.stderr.tail())
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("py-bridge did not print its ports within 60s%s", proc.stderr.tail())
	}
}

// startPyWSGI starts python/wsgi_plugin.py, serving the WSGI app the way
// how says ("threads" or "aio"), and returns its port.
func startPyWSGI(name, how string) (*pyProc, int, error) {
	stderr := &logBuffer{}
	out := &firstLine{line: make(chan string, 1), rest: stderr}
	proc, err := startPy(name, []string{filepath.Join("python", "wsgi_plugin.py"), how}, nil, out, stderr)
	if err != nil {
		return nil, 0, err
	}
	select {
	case line := <-out.line:
		port, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil {
			return nil, 0, fmt.Errorf("%s printed %q, want its port", name, line)
		}
		return proc, port, nil
	case <-proc.done:
		return nil, 0, fmt.Errorf("%s exited before it served: %v%s", name, proc.err, proc.stderr.tail())
	case <-time.After(60 * time.Second):
		return nil, 0, fmt.Errorf("%s did not print its port within 60s%s", name, proc.stderr.tail())
	}
}

// startPyUvicorn starts uvicorn serving app ("module:attribute" of
// python/; a WSGI one for py-wsgi-uvicorn; WebSockets with wsproto for
// py-uvicorn-ws) on a socket that listens already, and returns its
// address.
func startPyUvicorn(name, app string) (*pyProc, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := l.Addr().String()
	f, err := l.(*net.TCPListener).File()
	_ = l.Close() // f holds the socket; uvicorn's is then the only one
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	// uvicorn takes an --fd socket for a unix one, so asyncio does not set
	// TCP_NODELAY on the connections it accepts; they inherit it from the
	// listening socket, as from one uvicorn opened with --port.
	if err := setNoDelay(f); err != nil {
		return nil, "", err
	}
	args := []string{
		"-m", "uvicorn", "--fd", "3", "--app-dir", "python",
		"--http", "h11", "--loop", pyLoop(),
		// Quiet, and keep-alive longer than a run, as for the Go server.
		"--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "3600",
	}
	switch name {
	case "py-wsgi-uvicorn":
		args = append(args, "--interface", "wsgi", "--lifespan", "off")
	case "py-uvicorn-ws":
		// WebSockets framed by wsproto, as the generated facade does.
		args = append(args, "--ws", "wsproto", "--lifespan", "on")
	default:
		args = append(args, "--lifespan", "on")
	}
	args = append(args, strings.Fields(os.Getenv(envUvicorn))...)
	args = append(args, app)
	p, err := startPy(name, args, f, nil, &logBuffer{})
	if err != nil {
		return nil, "", err
	}
	return p, addr, nil
}

// stats returns the process's CPU time and context switches so far.
func (p *pyProc) stats() (pluginStats, error) {
	return procStats(p.cmd.Process.Pid)
}

// stop sends SIGTERM and waits for the process to exit, killing it if it
// does not within 20s.
func (p *pyProc) stop() error {
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s exited early: %w", p.name, p.err)
		}
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s on SIGTERM: %w", p.name, p.err)
		}
		return nil
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within 20s of SIGTERM: killed", p.name)
	}
}

// stopPython stops every Python process, waiting for each to exit, and
// copies what each wrote to standard error to this process's.
func stopPython() error {
	pyProcs.Lock()
	defer pyProcs.Unlock()
	var errs []error
	for _, p := range pyProcs.all {
		errs = append(errs, p.stop())
		if out := p.stderr.String(); out != "" {
			fmt.Fprintf(os.Stderr, "bench: standard error of %s:\n%s", p.name, out)
		}
	}
	pyProcs.all = nil
	pyPluginRunning = nil
	return errors.Join(errs...)
}

// logBuffer keeps the last logKeep bytes written to it.
type logBuffer struct {
	mu      sync.Mutex
	buf     []byte
	dropped int64
}

const logKeep = 64 << 10

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if over := len(l.buf) - logKeep; over > 0 {
		l.dropped += int64(over)
		l.buf = append(l.buf[:0], l.buf[over:]...)
	}
	return len(p), nil
}

// String returns what was kept, saying how much was dropped before it.
func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped > 0 {
		return fmt.Sprintf("[%d bytes dropped]\n%s", l.dropped, l.buf)
	}
	return string(l.buf)
}

// tail is String for an error message: empty, or on lines of its own.
func (l *logBuffer) tail() string {
	if s := strings.TrimSpace(l.String()); s != "" {
		return "\n" + s
	}
	return ""
}

// firstLine is a process's standard output: it passes on the first line,
// and the rest to rest. Only exec's copying goroutine writes to it.
type firstLine struct {
	buf  []byte
	line chan string // buffered: gets the first line
	done bool
	rest io.Writer
}

func (f *firstLine) Write(p []byte) (int, error) {
	if f.done {
		_, _ = f.rest.Write(p)
		return len(p), nil
	}
	f.buf = append(f.buf, p...)
	if i := bytes.IndexByte(f.buf, '\n'); i >= 0 {
		f.done = true
		f.line <- string(f.buf[:i])
		_, _ = f.rest.Write(f.buf[i+1:])
		f.buf = nil
	}
	return len(p), nil
}

// TestPythonFacadeAlone runs python/facade.py, the ASGI facade's own cost
// without gRPC, for a few rounds: it checks every exchange's bytes, and
// prints one benchmark line per workload and handler.
func TestPythonFacadeAlone(t *testing.T) {
	requirePython(t)
	var out bytes.Buffer
	p, err := startPy("py-facade", []string{filepath.Join("python", "facade.py"), "20"}, nil, &out, &logBuffer{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatal("facade.py did not end within a minute")
	}
	if p.err != nil {
		t.Fatalf("facade.py: %v%s", p.err, p.stderr.tail())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("facade.py printed %d lines, want 4:\n%s", len(lines), out.String())
	}
	for _, line := range lines {
		if !strings.HasPrefix(line, "BenchmarkFacade/work=") || !strings.HasSuffix(line, " ns/op") {
			t.Errorf("not a benchmark line: %q", line)
		}
	}
}
