package bench

// The host's side of each system, and the workloads.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
)

// grpcProfile is a gRPC configuration, used by both processes: a buffer
// pool for the whole process (the only way to change the one the proto
// codec uses) and options for the connection's two ends.
type grpcProfile struct {
	pool   mem.BufferPool // nil: gRPC's default pool
	dial   []grpc.DialOption
	server []grpc.ServerOption
}

// grpcProfiles are the configurations measured; envGRPC chooses the run's.
var grpcProfiles = map[string]grpcProfile{
	"default": {},
	// The recommended one: a pool size class that fits one 64 KiB chunk
	// message, instead of taking and clearing a 1 MiB buffer for each.
	"pool": {pool: chunkPool(68 << 10)},
	// Stream workers on the plugin's server: each stream runs on a
	// goroutine of a fixed pool, whose stack has grown already, instead of
	// a new goroutine that grows its stack again for every exchange.
	"workers": {server: []grpc.ServerOption{grpc.NumStreamWorkers(16)}},
	// The other levers measured in BENCHMARKS.md.
	"pool128": {pool: chunkPool(128 << 10)},
	"window":  {dial: windowDial, server: windowServer},
	"buffers": {dial: buffersDial, server: buffersServer},
	"poolwindow": {
		pool: chunkPool(68 << 10), dial: windowDial, server: windowServer,
	},
	"poolbuffers": {
		pool: chunkPool(68 << 10), dial: buffersDial, server: buffersServer,
	},
}

// chunkPool is gRPC's default pool with a class of size between 32 KiB and
// 1 MiB.
func chunkPool(size int) mem.BufferPool {
	return mem.NewTieredBufferPool(256, 4<<10, 16<<10, 32<<10, size, 1<<20)
}

var (
	// Static 1 MiB stream and 4 MiB connection windows instead of BDP
	// estimation from 64 KiB.
	windowDial   = []grpc.DialOption{grpc.WithInitialWindowSize(1 << 20), grpc.WithInitialConnWindowSize(4 << 20)}
	windowServer = []grpc.ServerOption{grpc.InitialWindowSize(1 << 20), grpc.InitialConnWindowSize(4 << 20)}
	// 256 KiB socket read and write buffers instead of 32 KiB.
	buffersDial   = []grpc.DialOption{grpc.WithReadBufferSize(256 << 10), grpc.WithWriteBufferSize(256 << 10)}
	buffersServer = []grpc.ServerOption{grpc.ReadBufferSize(256 << 10), grpc.WriteBufferSize(256 << 10)}
)

// envGRPC names the gRPC profile of a run; unset means "default".
const envGRPC = "HTTPBRIDGE_BENCH_GRPC"

// envChunk, if set, is the ChunkSize of both ends of the bridge (default
// 64 KiB), to measure how the chunk size interacts with gRPC's buffers.
const envChunk = "HTTPBRIDGE_BENCH_CHUNK"

// chunkSize returns the bridge's ChunkSize for this run, 0 for the default.
func chunkSize() int {
	n, _ := strconv.Atoi(os.Getenv(envChunk))
	return n
}

// runProfile returns the name of this run's gRPC profile.
func runProfile() string {
	if name := os.Getenv(envGRPC); name != "" {
		return name
	}
	return "default"
}

// useProfile applies the process-wide part of profile name and returns it.
// It must run before any gRPC use.
func useProfile(name string) (grpcProfile, error) {
	profile, ok := grpcProfiles[name]
	if !ok {
		return profile, fmt.Errorf("unknown gRPC profile %q", name)
	}
	if profile.pool != nil {
		experimental.SetDefaultBufferPool(profile.pool)
	}
	return profile, nil
}

// systemNames are the systems every workload runs on, in report order.
var systemNames = []string{
	"raw-tcp", "bridge-tcp", "proxy-tcp",
	"raw-unix", "bridge-unix", "proxy-unix",
	"direct",
}

// workload is one kind of exchange.
type workload struct {
	name string
	kind string // upload, download, echo, get or events (as raw names them)
	size int64  // body bytes (events: the number of events)
	conc int    // concurrent exchanges; 0 or 1 means one at a time
}

var workloads = []workload{
	{name: "upload-64MiB", kind: "upload", size: 64 << 20},
	{name: "download-64MiB", kind: "download", size: 64 << 20},
	{name: "echo-64MiB", kind: "echo", size: 64 << 20},
	{name: "upload-1MiB", kind: "upload", size: 1 << 20},
	{name: "get-c1", kind: "get", size: int64(len(small))},
	{name: "get-c32", kind: "get", size: int64(len(small)), conc: 32},
	{name: "events-1000", kind: "events", size: 1000},
}

// bodyBytes is the size of the body one exchange carries, counted once for
// echo; 0 for exchanges that are counted in requests or events.
func (wl workload) bodyBytes() int64 {
	switch wl.kind {
	case "upload", "download", "echo":
		return wl.size
	}
	return 0
}

// wantBody is how many response body bytes the host must see.
func (wl workload) wantBody() int64 {
	switch wl.kind {
	case "upload":
		return int64(len(strconv.FormatInt(wl.size, 10)))
	case "events":
		return wl.size * eventSize
	}
	return wl.size
}

// system is the host's side of one system.
type system struct {
	name    string
	plugin  *plugin          // the Go plugin; nil for direct and Python
	py      *pyProc          // the Python process of the py- systems
	conn    *grpc.ClientConn // raw and bridge, Go and Python
	handler http.Handler     // all but raw
}

// pluginStats returns how to read the cumulative figures of the system's
// plugin process, or nil if it has none.
func (s *system) pluginStats() func() (pluginStats, error) {
	switch {
	case s.plugin != nil:
		return s.plugin.stats
	case s.py != nil:
		return s.py.stats
	}
	return nil
}

var systems struct {
	sync.Mutex
	byName map[string]*system
}

// getSystem returns the system called name, setting it up the first time.
// Systems stay up (connections warm) for the whole run.
func getSystem(name string) (*system, error) {
	systems.Lock()
	defer systems.Unlock()
	if s := systems.byName[name]; s != nil {
		return s, nil
	}
	s, err := newSystem(name)
	if err != nil {
		return nil, fmt.Errorf("system %s: %w", name, err)
	}
	if systems.byName == nil {
		systems.byName = make(map[string]*system)
	}
	systems.byName[name] = s
	return s, nil
}

func newSystem(name string) (*system, error) {
	if strings.HasPrefix(name, "py-") {
		return newPySystem(name)
	}
	s := &system{name: name}
	kind, transport, _ := strings.Cut(name, "-")
	if kind == "direct" {
		s.handler = newHandler()
		return s, nil
	}
	profileName := runProfile()
	profile := grpcProfiles[profileName]
	p, err := startPlugin(profileName)
	if err != nil {
		return nil, err
	}
	s.plugin = p

	var grpcTarget, httpAddr, network string
	switch transport {
	case "tcp":
		grpcTarget, httpAddr, network = p.addrs.GRPCTCP, p.addrs.HTTPTCP, "tcp"
	case "unix":
		grpcTarget, httpAddr, network = "unix://"+p.addrs.GRPCUnix, p.addrs.HTTPUnix, "unix"
	default:
		return nil, fmt.Errorf("unknown transport %q", transport)
	}

	switch kind {
	case "raw", "bridge":
		opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, profile.dial...)
		conn, err := grpc.NewClient(grpcTarget, opts...)
		if err != nil {
			return nil, err
		}
		s.conn = conn
		if kind == "bridge" {
			host := pluginapiv1.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(conn))
			host.ChunkSize = chunkSize()
			s.handler = host
		}
	case "proxy":
		s.handler = newReverseProxy(network, httpAddr)
	default:
		return nil, fmt.Errorf("unknown system kind %q", kind)
	}
	return s, nil
}

// newReverseProxy returns the proxy a host would put in front of a plugin's
// HTTP server at addr.
func newReverseProxy(network, addr string) *httputil.ReverseProxy {
	dialer := &net.Dialer{}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		// Sized for the concurrency, so that no exchange opens a
		// connection once the pool is warm.
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		DisableCompression:  true,
	}
	target := &url.URL{Scheme: "http", Host: "plugin"}
	return &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: transport,
	}
}

// exchanger runs exchanges of one workload on one system, one at a time.
// Each goroutine of a parallel benchmark has its own.
type exchanger struct {
	sys *system
	wl  workload
	req *http.Request
	w   *sink
}

func newExchanger(sys *system, wl workload) *exchanger {
	e := &exchanger{sys: sys, wl: wl, w: newSink()}
	target := "/small"
	method := http.MethodGet
	switch wl.kind {
	case "upload":
		method, target = http.MethodPost, "/upload"
	case "echo":
		method, target = http.MethodPost, "/echo"
	case "download":
		target = "/download?n=" + strconv.FormatInt(wl.size, 10)
	case "events":
		target = "/events?n=" + strconv.FormatInt(wl.size, 10)
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		panic(err)
	}
	// What a net/http server would hand the host's handler.
	e.req = &http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Accept":     {"*/*"},
			"User-Agent": {"httpbridge-bench/1"},
		},
		Host:       "plugin.example",
		RemoteAddr: "192.0.2.1:40000",
		RequestURI: target,
		Body:       http.NoBody,
	}
	return e
}

// do runs one exchange and checks what the host's client would get.
func (e *exchanger) do(ctx context.Context) error {
	want := e.wl.wantBody()
	if e.sys.conn != nil && e.sys.handler == nil {
		n, _, err := rawExchange(ctx, e.sys.conn, e.wl.kind, e.wl.size)
		if err == nil && e.wl.kind != "upload" && n != want {
			err = fmt.Errorf("raw %s: got %d body bytes, want %d", e.wl.kind, n, want)
		}
		if err == nil && e.wl.kind == "upload" && n != e.wl.size {
			err = fmt.Errorf("raw upload: plugin got %d bytes, want %d", n, e.wl.size)
		}
		return err
	}
	e.w.reset()
	r := e.req
	if ctx != context.Background() {
		r = r.WithContext(ctx)
	}
	if e.wl.kind == "upload" || e.wl.kind == "echo" {
		r.Body, r.ContentLength = newBody(e.wl.size), e.wl.size
	}
	e.sys.handler.ServeHTTP(e.w, r)
	switch {
	case e.w.code != http.StatusOK:
		return fmt.Errorf("%s %s: status %d, body %q", e.sys.name, e.wl.name, e.w.code, e.w.head)
	case e.w.n != want:
		return fmt.Errorf("%s %s: got %d body bytes, want %d", e.sys.name, e.wl.name, e.w.n, want)
	case e.wl.kind == "upload" && string(e.w.head) != strconv.FormatInt(e.wl.size, 10):
		return fmt.Errorf("%s %s: plugin got %s bytes, want %d", e.sys.name, e.wl.name, e.w.head, e.wl.size)
	}
	return nil
}
