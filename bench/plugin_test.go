package bench

// The plugin process. The test binary runs as the plugin when envPlugin is
// set: it serves the generated facade and the raw service over gRPC, and
// the same handler with net/http, each over 127.0.0.1 TCP and a unix
// socket; prints the addresses as one JSON line; and exits when its
// standard input closes. A control server answers the host's questions
// about the plugin's memory.

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	rpprof "runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	_ "github.com/httpbridge/httpbridge/internal/golden" // accept -update
)

const (
	// envPlugin makes the test binary run as the plugin; its value names
	// the gRPC profile (see grpcProfiles), the host's.
	envPlugin = "HTTPBRIDGE_BENCH_PLUGIN"
	// envPprof, if set, is a directory where the plugin writes its CPU
	// and allocation profiles (plugin-<profile>-cpu.prof and -allocs.prof)
	// when it exits.
	envPprof = "HTTPBRIDGE_BENCH_PPROF"
)

func TestMain(m *testing.M) {
	if profile := os.Getenv(envPlugin); profile != "" {
		if err := runPlugin(profile); err != nil {
			fmt.Fprintln(os.Stderr, "bench plugin:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if _, err := useProfile(runProfile()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	flag.Parse()
	if flag.Lookup("test.bench").Value.String() != "" {
		// A configuration line: benchstat can tell runs apart by it.
		fmt.Printf("grpc: %s\n", runProfile())
		if n := chunkSize(); n > 0 {
			fmt.Printf("chunk: %d\n", n)
		}
		if args := os.Getenv(envUvicorn); args != "" {
			fmt.Printf("uvicorn: %s\n", args)
		}
	}
	code := m.Run()
	stopPlugins()
	// SIGTERM to every Python process, and wait until each has exited.
	if err := stopPython(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// pluginAddrs is what the plugin prints on startup.
type pluginAddrs struct {
	GRPCTCP  string // host:port
	GRPCUnix string // socket path
	HTTPTCP  string
	HTTPUnix string
	Control  string // host:port of the control server
}

type facadeServer struct {
	pluginapiv1.UnimplementedPluginHooksServer
	bridge *pluginapiv1.ServeHTTPPlugin
}

func (s *facadeServer) ServeHTTP(stream grpc.BidiStreamingServer[reqMsg, respMsg]) error {
	return s.bridge.Serve(stream)
}

func runPlugin(profile string) error {
	opts, err := useProfile(profile)
	if err != nil {
		return err
	}
	if dir := os.Getenv(envPprof); dir != "" {
		f, err := os.Create(filepath.Join(dir, "plugin-"+profile+"-cpu.prof"))
		if err != nil {
			return err
		}
		if err := rpprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			rpprof.StopCPUProfile()
			_ = f.Close()
			if f, err := os.Create(filepath.Join(dir, "plugin-"+profile+"-allocs.prof")); err == nil {
				_ = rpprof.Lookup("allocs").WriteTo(f, 0)
				_ = f.Close()
			}
		}()
	}

	dir, err := os.MkdirTemp("", "httpbridge-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var lerr error
	listen := func(network, addr string) net.Listener {
		l, err := net.Listen(network, addr)
		lerr = errors.Join(lerr, err)
		return l
	}
	gTCP, gUnix := listen("tcp", "127.0.0.1:0"), listen("unix", filepath.Join(dir, "grpc.sock"))
	hTCP, hUnix := listen("tcp", "127.0.0.1:0"), listen("unix", filepath.Join(dir, "http.sock"))
	ctl := listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		return lerr
	}

	handler := newHandler()
	// The bridge's codec, as docs/go.md recommends; the raw system's
	// responses, the same message type, go through it too.
	gs := grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodecV2(pluginapiv1.ServeHTTPServerCodec{})}, opts.server...)...)
	pluginapiv1.RegisterPluginHooksServer(gs, &facadeServer{bridge: &pluginapiv1.ServeHTTPPlugin{Handler: handler, ChunkSize: chunkSize()}})
	gs.RegisterService(&rawDesc, rawServer{})
	go func() { _ = gs.Serve(gTCP) }()
	go func() { _ = gs.Serve(gUnix) }()
	hs := &http.Server{Handler: handler}
	go func() { _ = hs.Serve(hTCP) }()
	go func() { _ = hs.Serve(hUnix) }()
	cs := &http.Server{Handler: controlHandler()}
	go func() { _ = cs.Serve(ctl) }()

	err = json.NewEncoder(os.Stdout).Encode(pluginAddrs{
		GRPCTCP:  gTCP.Addr().String(),
		GRPCUnix: gUnix.Addr().String(),
		HTTPTCP:  hTCP.Addr().String(),
		HTTPUnix: hUnix.Addr().String(),
		Control:  ctl.Addr().String(),
	})
	if err != nil {
		return err
	}
	// Serve until the host goes away.
	_, _ = io.Copy(io.Discard, os.Stdin)
	gs.Stop()
	_ = hs.Close()
	_ = cs.Close()
	return nil
}

// controlHandler serves the host's questions:
//
//	GET  /memstats    "TotalAlloc Mallocs" of runtime.MemStats, CPU ns used
//	                  and context switches (see usage)
//	GET  /heap        "HeapInuse StackInuse goroutines" after a collection
//	POST /peak/reset  collects garbage, returns memory to the OS and resets VmHWM
//	GET  /peak        VmHWM in KiB
//	/debug/pprof/     net/http/pprof
func controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /memstats", func(w http.ResponseWriter, r *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		cpu, switches := usage()
		fmt.Fprintf(w, "%d %d %d %d", ms.TotalAlloc, ms.Mallocs, cpu, switches)
	})
	mux.HandleFunc("GET /heap", func(w http.ResponseWriter, r *http.Request) {
		heap, stack := liveMemory()
		fmt.Fprintf(w, "%d %d %d", heap, stack, runtime.NumGoroutine())
	})
	mux.HandleFunc("POST /peak/reset", func(w http.ResponseWriter, r *http.Request) {
		if err := resetPeakRSS(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /peak", func(w http.ResponseWriter, r *http.Request) {
		kib, err := peakRSS()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, kib)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	return mux
}

// resetPeakRSS brings the process down to its live memory and starts a new
// peak (VmHWM) from there.
func resetPeakRSS() error {
	runtime.GC()
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS returns VmHWM, the peak resident set size, in KiB.
func peakRSS() (int64, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}

// plugin is a running plugin process, seen from the host.
type plugin struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addrs pluginAddrs
	ctl   *http.Client
}

var plugins struct {
	sync.Mutex
	running map[string]*plugin
}

// startPlugin returns the plugin process of profile, starting it the first
// time.
func startPlugin(profile string) (*plugin, error) {
	plugins.Lock()
	defer plugins.Unlock()
	if p := plugins.running[profile]; p != nil {
		return p, nil
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envPlugin+"="+profile)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &plugin{cmd: cmd, stdin: stdin, ctl: &http.Client{Timeout: 30 * time.Second}}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &p.addrs)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("start plugin: %w", err)
	}
	if plugins.running == nil {
		plugins.running = make(map[string]*plugin)
	}
	plugins.running[profile] = p
	return p, nil
}

// stopPlugins ends every plugin process: closing its standard input asks it
// to write its profiles and exit.
func stopPlugins() {
	plugins.Lock()
	defer plugins.Unlock()
	for profile, p := range plugins.running {
		_ = p.stdin.Close()
		done := make(chan struct{})
		go func() {
			_ = p.cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		delete(plugins.running, profile)
	}
}

func (p *plugin) call(method, path string) (string, error) {
	req, err := http.NewRequest(method, "http://"+p.addrs.Control+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := p.ctl.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("plugin control %s: %s: %s", path, resp.Status, body)
	}
	return string(body), err
}

// pluginStats are cumulative figures of the plugin process.
type pluginStats struct {
	bytes, objects uint64        // allocated
	cpu            time.Duration // user and system CPU time
	switches       int64         // context switches of its threads
}

// stats returns the plugin's cumulative allocations, CPU time and context
// switches.
func (p *plugin) stats() (pluginStats, error) {
	var st pluginStats
	s, err := p.call(http.MethodGet, "/memstats")
	if err == nil {
		_, err = fmt.Sscan(s, &st.bytes, &st.objects, &st.cpu, &st.switches)
	}
	return st, err
}

func (p *plugin) resetPeak() error {
	_, err := p.call(http.MethodPost, "/peak/reset")
	return err
}

// peak returns the plugin's VmHWM in KiB.
func (p *plugin) peak() (int64, error) {
	s, err := p.call(http.MethodGet, "/peak")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

// heap returns the plugin's live heap and stack bytes and its goroutines.
func (p *plugin) heap() (heap, stack uint64, goroutines int, err error) {
	s, err := p.call(http.MethodGet, "/heap")
	if err == nil {
		_, err = fmt.Sscan(s, &heap, &stack, &goroutines)
	}
	return heap, stack, goroutines, err
}
