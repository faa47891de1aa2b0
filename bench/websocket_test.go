package bench

// WebSockets (issue 18, upgrade.md §7): the generated host with
// UpgradeProtocols ["websocket"] and the facade against
// httputil.ReverseProxy to the plugin's own net/http server, both in front
// of the same coder/websocket handler in the plugin process.
//
// Unlike BenchmarkExchange, an upgrade needs a connection the host can
// hijack, so each system here is a net/http server on 127.0.0.1 in this
// process (the "front"), serving the generated host or the proxy, and the
// client is coder/websocket, also in this process, dialling the front over
// TCP. The host process's figures therefore include the client's and the
// front server's share, the same for every system; the plugin's are its
// own. The "direct" system (the client straight to the plugin's net/http
// server) measures the client's share of memory alone.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

const (
	// wsReadLimit is the largest message either end reads, above the
	// largest bulk message (coder/websocket's default is 32 KiB).
	wsReadLimit = 32 << 20
	// wsPushSize is the size of one message the plugin pushes.
	wsPushSize = 100
	// wsPushCount is how many messages one push exchange carries.
	wsPushCount = 100_000
	// wsIdleSessions is how many idle sessions the memory figure is
	// taken over.
	wsIdleSessions = 1000
)

// wsPattern holds the bytes of every message: the pattern, repeated up to
// the largest bulk message.
var wsPattern = sync.OnceValue(func() []byte { return bytes.Repeat(pattern, (16<<20)/len(pattern)) })

// serveWebSocket is the plugin's WebSocket handler, the same under the
// facade and under net/http. A binary message is echoed: one frame when
// it fits the handler's 32 KiB buffer, else streamed back as it is read.
// A text message "push N" asks for N binary messages of wsPushSize bytes.
// It returns when the client closes (coder/websocket answers the close
// frame) or the connection fails.
func serveWebSocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept answered the client
	}
	defer c.CloseNow()
	c.SetReadLimit(wsReadLimit)
	ctx := context.Background()
	buf := getBuf()
	defer putBuf(buf)
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			return
		}
		n, err := io.ReadFull(rd, *buf)
		whole := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !whole {
			return
		}
		if typ == websocket.MessageText {
			count, ok := strings.CutPrefix(string((*buf)[:n]), "push ")
			pushes, err := strconv.Atoi(count)
			if !whole || !ok || err != nil {
				_ = c.Close(websocket.StatusUnsupportedData, "want \"push N\"")
				return
			}
			msg := wsPattern()[:wsPushSize]
			for range pushes {
				if c.Write(ctx, websocket.MessageBinary, msg) != nil {
					return
				}
			}
			continue
		}
		if whole {
			if c.Write(ctx, typ, (*buf)[:n]) != nil {
				return
			}
			continue
		}
		wr, err := c.Writer(ctx, typ)
		if err != nil {
			return
		}
		if _, err := wr.Write((*buf)[:n]); err != nil {
			return
		}
		if _, err := io.CopyBuffer(wr, rd, *buf); err != nil {
			return
		}
		if wr.Close() != nil {
			return
		}
	}
}

// wsSystemNames are the systems of BenchmarkWebSocket, in report order.
var wsSystemNames = []string{"bridge-tcp", "proxy-tcp", "bridge-unix", "proxy-unix"}

// wsIdleSystemNames are BenchmarkWebSocketIdle's: direct first, the
// client's own share of the host process's memory.
var wsIdleSystemNames = []string{"direct", "bridge-tcp", "proxy-tcp", "bridge-unix", "proxy-unix"}

// pyWSSystemNames are BenchmarkPythonWebSocket's: the generated Python
// facade, and uvicorn --ws wsproto behind the proxy.
var pyWSSystemNames = []string{"py-bridge", "py-uvicorn"}

// wsWorkload is one kind of WebSocket exchange.
type wsWorkload struct {
	name string
	kind string // handshake, echo, push or bulk
	size int64  // bytes of one message
	conc int    // sessions (concurrent handshakes) at once; 0 or 1: one
}

var wsWorkloads = []wsWorkload{
	{name: "ws-handshake-c1", kind: "handshake"},
	{name: "ws-handshake-c32", kind: "handshake", conc: 32},
	{name: "ws-echo-125B-s1", kind: "echo", size: 125},
	{name: "ws-echo-125B-s32", kind: "echo", size: 125, conc: 32},
	{name: "ws-push-100B", kind: "push", size: wsPushSize},
	{name: "ws-bulk-1MiB", kind: "bulk", size: 1 << 20},
	{name: "ws-bulk-16MiB", kind: "bulk", size: 16 << 20},
}

// pyWSWorkloads are the Python systems' workloads.
var pyWSWorkloads = []wsWorkload{wsWorkloads[2], wsWorkloads[5]}

// wsReference are BenchmarkExchange's workloads that the WebSocket targets
// compare with, run on the same systems in the same run: the bridge's GET
// latency and its HTTP echo throughput.
var wsReference = func() []workload {
	picked := pickWorkloads("get-c1", "echo-64MiB")
	for i := range picked {
		picked[i].name = "http-" + picked[i].name
	}
	return picked
}()

// BenchmarkWebSocket runs every WebSocket workload on the bridge and the
// proxy over TCP and unix sockets, then the HTTP workloads the targets
// compare with. Besides ns/op it reports upgrades/s, msgs/s (echoed or
// pushed messages) or MB/s (message bytes, counted once), the echo's
// round-trip p50 and p99 with one session, and each process's CPU time and
// context switches per exchange.
func BenchmarkWebSocket(b *testing.B) {
	for _, wl := range wsWorkloads {
		b.Run("work="+wl.name, func(b *testing.B) {
			for _, name := range wsSystemNames {
				b.Run("sys="+name, func(b *testing.B) {
					ws, err := getWSSystem(name)
					if err != nil {
						b.Fatal(err)
					}
					runWS(b, ws, wl)
				})
			}
		})
	}
	for _, wl := range wsReference {
		b.Run("work="+wl.name, func(b *testing.B) {
			for _, name := range wsSystemNames {
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

// BenchmarkPythonWebSocket runs the 125-byte echo and the 1 MiB bulk echo
// through the bridge to the generated Python facade and through the proxy
// to uvicorn --ws wsproto, both serving python/app.py's /ws.
func BenchmarkPythonWebSocket(b *testing.B) {
	requirePython(b)
	bridgetest.RequirePython(b, "wsproto")
	for _, wl := range pyWSWorkloads {
		b.Run("work="+wl.name, func(b *testing.B) {
			for _, name := range pyWSSystemNames {
				b.Run("sys="+name, func(b *testing.B) {
					ws, err := getWSSystem(name)
					if err != nil {
						b.Fatal(err)
					}
					runWS(b, ws, wl)
				})
			}
		})
	}
}

// BenchmarkWebSocketIdle opens wsIdleSessions sessions, each with one
// echo done, and reports the live heap (HeapInuse after a collection) and
// goroutine stacks they add to each process, per session. Run it with
// -benchtime 1x: each iteration is a measurement. The host process's
// figure includes the client's share, which the direct system measures
// alone.
func BenchmarkWebSocketIdle(b *testing.B) {
	b.Run("work=ws-idle-"+strconv.Itoa(wsIdleSessions), func(b *testing.B) {
		for _, name := range wsIdleSystemNames {
			b.Run("sys="+name, func(b *testing.B) {
				ws, err := getWSSystem(name)
				if err != nil {
					b.Fatal(err)
				}
				for range b.N {
					if err := measureIdle(b, ws, wsIdleSessions); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}

// wsSystem is the host's side of one WebSocket system: where the client
// dials, and the plugin process's figures.
type wsSystem struct {
	name   string
	url    string
	client *http.Client
	plugin *plugin // the Go plugin; nil for Python
	stats  func() (pluginStats, error)
}

var wsSystems struct {
	sync.Mutex
	byName map[string]*wsSystem
}

// getWSSystem returns the WebSocket system called name, setting it up the
// first time on top of BenchmarkExchange's system of the same name (its
// plugin process and gRPC connection). Systems stay up for the whole run.
func getWSSystem(name string) (*wsSystem, error) {
	wsSystems.Lock()
	defer wsSystems.Unlock()
	if ws := wsSystems.byName[name]; ws != nil {
		return ws, nil
	}
	ws, err := newWSSystem(name)
	if err != nil {
		return nil, fmt.Errorf("WebSocket system %s: %w", name, err)
	}
	if wsSystems.byName == nil {
		wsSystems.byName = make(map[string]*wsSystem)
	}
	wsSystems.byName[name] = ws
	return ws, nil
}

func newWSSystem(name string) (*wsSystem, error) {
	baseName := name
	switch name {
	case "direct":
		baseName = "proxy-tcp"
	case "py-uvicorn":
		baseName = "py-uvicorn-ws"
	}
	base, err := getSystem(baseName)
	if err != nil {
		return nil, err
	}
	// Each handshake opens a connection: no pool to keep.
	ws := &wsSystem{
		name:   name,
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}},
		plugin: base.plugin,
		stats:  base.pluginStats(),
	}
	if name == "direct" {
		ws.url = "ws://" + base.plugin.addrs.HTTPTCP + "/ws"
		return ws, nil
	}
	handler := base.handler
	if strings.HasPrefix(name, "bridge-") || name == "py-bridge" {
		host := pluginapiv1.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(base.conn))
		host.ChunkSize = chunkSize()
		host.UpgradeProtocols = []string{"websocket"}
		handler = host
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	front := &http.Server{Handler: handler}
	go func() { _ = front.Serve(l) }()
	ws.url = "ws://" + l.Addr().String() + "/ws"
	return ws, nil
}

// wsSession is one client session.
type wsSession struct {
	c   *websocket.Conn
	buf []byte
}

func (ws *wsSystem) dial(ctx context.Context) (*wsSession, error) {
	c, _, err := websocket.Dial(ctx, ws.url, &websocket.DialOptions{HTTPClient: ws.client})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(wsReadLimit)
	// A small buffer: the client's share of an idle session's memory
	// is subtracted, but the smaller it is the less it blurs the rest.
	return &wsSession{c: c, buf: make([]byte, 4<<10)}, nil
}

// handshake opens a session and closes it with the close handshake.
func (ws *wsSystem) handshake(ctx context.Context) error {
	s, err := ws.dial(ctx)
	if err != nil {
		return err
	}
	return s.close()
}

// close closes the session with the close handshake.
func (s *wsSession) close() error {
	return s.c.Close(websocket.StatusNormalClosure, "")
}

// read reads one binary message of want bytes; with sum not nil it also
// returns the message's CRC-32 there.
func (s *wsSession) read(ctx context.Context, want int64, sum *uint32) error {
	typ, r, err := s.c.Reader(ctx)
	if err != nil {
		return err
	}
	if typ != websocket.MessageBinary {
		return fmt.Errorf("got a %v message, want binary", typ)
	}
	var n int64
	for {
		m, err := r.Read(s.buf)
		n += int64(m)
		if sum != nil {
			*sum = crc32.Update(*sum, crc32.IEEETable, s.buf[:m])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if n != want {
		return fmt.Errorf("got a message of %d bytes, want %d", n, want)
	}
	return nil
}

// echo sends one message of size bytes and reads it back, writing and
// reading at once (a large message does not fit the buffers on the way);
// with check set it compares the bytes.
func (s *wsSession) echo(ctx context.Context, size int64, check bool) error {
	msg := wsPattern()[:size]
	if size <= 32<<10 {
		if err := s.c.Write(ctx, websocket.MessageBinary, msg); err != nil {
			return err
		}
		return s.check(ctx, msg, check)
	}
	written := make(chan error, 1)
	go func() { written <- s.c.Write(ctx, websocket.MessageBinary, msg) }()
	err := s.check(ctx, msg, check)
	return errors.Join(err, <-written)
}

func (s *wsSession) check(ctx context.Context, msg []byte, check bool) error {
	var sum *uint32
	if check {
		sum = new(uint32)
	}
	if err := s.read(ctx, int64(len(msg)), sum); err != nil {
		return err
	}
	if check && *sum != crc32.ChecksumIEEE(msg) {
		return errors.New("the echo differs from the message")
	}
	return nil
}

// push asks the plugin for n messages and reads them.
func (s *wsSession) push(ctx context.Context, n int) error {
	if err := s.c.Write(ctx, websocket.MessageText, []byte("push "+strconv.Itoa(n))); err != nil {
		return err
	}
	for range n {
		if err := s.read(ctx, wsPushSize, nil); err != nil {
			return err
		}
	}
	return nil
}

// do runs one exchange of wl on session s (nil for handshakes).
func (ws *wsSystem) do(ctx context.Context, s *wsSession, wl wsWorkload) error {
	switch wl.kind {
	case "handshake":
		return ws.handshake(ctx)
	case "echo", "bulk":
		return s.echo(ctx, wl.size, false)
	case "push":
		return s.push(ctx, wsPushCount)
	}
	return fmt.Errorf("unknown WebSocket workload kind %q", wl.kind)
}

func runWS(b *testing.B, ws *wsSystem, wl wsWorkload) {
	ctx := context.Background()
	// The sessions are open before the clock starts, one per goroutine
	// of a parallel run; each has done one exchange.
	goroutines := 1
	if wl.conc > 1 {
		procs := runtime.GOMAXPROCS(0)
		b.SetParallelism((wl.conc + procs - 1) / procs)
		goroutines = (wl.conc + procs - 1) / procs * procs
	}
	var sessions []*wsSession
	if wl.kind != "handshake" {
		for range goroutines {
			s, err := ws.dial(ctx)
			if err != nil {
				b.Fatal(err)
			}
			sessions = append(sessions, s)
		}
		defer func() {
			for _, s := range sessions {
				_ = s.close()
			}
		}()
	}
	warm := wl
	if wl.kind == "push" {
		warm.kind, warm.size = "echo", wsPushSize
	}
	for i := range goroutines {
		var s *wsSession
		if sessions != nil {
			s = sessions[i]
		}
		if err := ws.do(ctx, s, warm); err != nil {
			b.Fatal(err)
		}
	}

	var pluginBefore pluginStats
	if ws.stats != nil {
		var err error
		if pluginBefore, err = ws.stats(); err != nil {
			b.Fatal(err)
		}
	}
	hostCPU, hostSwitches := usage()
	if wl.kind == "bulk" {
		b.SetBytes(wl.size)
	}
	var rtts []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if wl.conc > 1 {
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			var s *wsSession
			if sessions != nil {
				s = sessions[next.Add(1)-1]
			}
			for pb.Next() {
				if err := ws.do(ctx, s, wl); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		var s *wsSession
		if sessions != nil {
			s = sessions[0]
		}
		if wl.kind == "echo" {
			rtts = make([]time.Duration, 0, b.N)
		}
		for range b.N {
			t := time.Now()
			if err := ws.do(ctx, s, wl); err != nil {
				b.Fatal(err)
			}
			if rtts != nil {
				rtts = append(rtts, time.Since(t))
			}
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu, switches := usage()
	hostCPU, hostSwitches = cpu-hostCPU, switches-hostSwitches

	switch wl.kind {
	case "handshake":
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "upgrades/s")
	case "echo":
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	case "push":
		b.ReportMetric(float64(b.N)*wsPushCount/elapsed.Seconds(), "msgs/s")
	}
	if len(rtts) > 0 {
		slices.Sort(rtts)
		b.ReportMetric(float64(rtts[len(rtts)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(rtts[len(rtts)*99/100].Nanoseconds()), "p99-ns")
	}
	b.ReportMetric(float64(hostCPU.Nanoseconds())/float64(b.N), "host-cpu-ns/op")
	b.ReportMetric(float64(hostSwitches)/float64(b.N), "host-switches/op")
	if ws.stats != nil {
		after, err := ws.stats()
		if err != nil {
			b.Fatal(err)
		}
		if ws.plugin != nil {
			b.ReportMetric(float64(after.bytes-pluginBefore.bytes)/float64(b.N), "plugin-B/op")
			b.ReportMetric(float64(after.objects-pluginBefore.objects)/float64(b.N), "plugin-allocs/op")
		}
		b.ReportMetric(float64((after.cpu-pluginBefore.cpu).Nanoseconds())/float64(b.N), "plugin-cpu-ns/op")
		b.ReportMetric(float64(after.switches-pluginBefore.switches)/float64(b.N), "plugin-switches/op")
	}
}

// liveMemory collects garbage and returns the bytes of heap spans and of
// goroutine stacks in use.
func liveMemory() (heap, stack uint64) {
	runtime.GC()
	runtime.GC() // what cleanups of the first freed
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse
}

// measureIdle opens n sessions on ws, each with one 125-byte echo done,
// reports what they add to each process's live heap and stacks per
// session, then closes them and waits until the plugin's goroutines are
// back to what they were, so that the next measurement starts clean.
func measureIdle(b *testing.B, ws *wsSystem, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hostHeap, hostStack := liveMemory()
	pluginHeap, pluginStack, goroutines, err := ws.plugin.heap()
	if err != nil {
		return err
	}
	sessions := make([]*wsSession, 0, n)
	defer func() { closeAll(sessions) }()
	for range n {
		s, err := ws.dial(ctx)
		if err != nil {
			return err
		}
		sessions = append(sessions, s)
		if err := s.echo(ctx, 125, false); err != nil {
			return err
		}
	}
	hostHeap2, hostStack2 := liveMemory()
	pluginHeap2, pluginStack2, _, err := ws.plugin.heap()
	if err != nil {
		return err
	}
	perSession := func(after, before uint64) float64 { return (float64(after) - float64(before)) / float64(n) }
	b.ReportMetric(perSession(hostHeap2, hostHeap), "host-heap-B/session")
	b.ReportMetric(perSession(hostStack2, hostStack), "host-stack-B/session")
	b.ReportMetric(perSession(pluginHeap2, pluginHeap), "plugin-heap-B/session")
	b.ReportMetric(perSession(pluginStack2, pluginStack), "plugin-stack-B/session")

	closeAll(sessions)
	sessions = nil
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, _, now, err := ws.plugin.heap()
		if err != nil {
			return err
		}
		if now <= goroutines+8 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the plugin has %d goroutines 30s after the sessions closed, %d before", now, goroutines)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// closeAll closes sessions with the close handshake, 32 at a time.
func closeAll(sessions []*wsSession) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, s := range sessions {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = s.close()
		})
	}
	wg.Wait()
}

// TestWebSocketSystems checks, quickly, that every WebSocket system
// upgrades, echoes small and large messages (crossing the 64 KiB chunk
// line, checked byte for byte), pushes, and closes, so that the benchmarks
// measure working sessions.
func TestWebSocketSystems(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the plugin's memory figures need Linux")
	}
	for _, name := range wsIdleSystemNames {
		t.Run(name, func(t *testing.T) {
			checkWSSystem(t, name, true)
		})
	}
	ws, err := getWSSystem("bridge-tcp")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ws.plugin.heap(); err != nil {
		t.Errorf("plugin heap: %v", err)
	}
}

// TestPythonWebSocketSystems does TestWebSocketSystems's check for the
// Python systems, echoes only.
func TestPythonWebSocketSystems(t *testing.T) {
	requirePython(t)
	bridgetest.RequirePython(t, "wsproto")
	for _, name := range pyWSSystemNames {
		t.Run(name, func(t *testing.T) {
			checkWSSystem(t, name, false)
		})
	}
}

func checkWSSystem(t *testing.T, name string, push bool) {
	ws, err := getWSSystem(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := ws.handshake(ctx); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	s, err := ws.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	for _, size := range []int64{0, 125, 126, 32<<10 + 1, 300<<10 + 7} {
		if err := s.echo(ctx, size, true); err != nil {
			t.Errorf("echo of %d bytes: %v", size, err)
		}
	}
	if push {
		if err := s.push(ctx, 10); err != nil {
			t.Errorf("push: %v", err)
		}
	}
}
