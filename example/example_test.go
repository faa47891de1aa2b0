//go:build unix

package main_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/httpbridge/httpbridge/internal/bridgetest"
	_ "github.com/httpbridge/httpbridge/internal/golden" // accept -update
)

func TestMain(m *testing.M) {
	code := m.Run()
	if built.exe != "" {
		os.RemoveAll(filepath.Dir(built.exe))
	}
	os.Exit(code)
}

// pluginLangs are the languages of the example's plugins: each test runs
// the host with each of them.
var pluginLangs = []string{"go", "python"}

// TestExample runs the example the way a newcomer does: it builds it,
// starts the host (which starts the plugin, in Go and then in Python),
// drives it with curl, and stops it with Ctrl-C. The host listens on
// 127.0.0.1 only, the plugin on a unix socket. Both plugins must answer
// alike.
func TestExample(t *testing.T) {
	curl := bridgetest.LookPath(t, "curl")
	for _, lang := range pluginLangs {
		t.Run(lang, func(t *testing.T) {
			ex := startExample(t, buildExample(t), lang)
			ex.curlPath = curl

			t.Run("socket", ex.testSocket)
			t.Run("endpoints", func(t *testing.T) {
				// These two first, one request at a time; the others then
				// run in parallel.
				t.Run("answers", ex.testAnswers)
				t.Run("events", ex.testEvents)
				t.Run("hello", ex.testHello)
				t.Run("upload", ex.testUpload)
				t.Run("echo", ex.testEcho)
				t.Run("download", ex.testDownload)
				t.Run("panic", ex.testPanic)
				t.Run("disconnect", ex.testDisconnect)
				t.Run("websocket", ex.testWebSocket)
			})
			t.Run("ctrl-c", ex.testCtrlC)
		})
	}
}

// TestExampleHostKilled checks that the plugin does not outlive a host that
// is killed without a chance to stop it.
func TestExampleHostKilled(t *testing.T) {
	for _, lang := range pluginLangs {
		t.Run(lang, func(t *testing.T) {
			ex := startExample(t, buildExample(t), lang)
			if err := ex.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			ex.log.wait(t, "plugin: the host closed our standard input: stopping", 10*time.Second)
			// The plugin shares the host's standard error, so the log ends
			// only when the plugin has exited too.
			select {
			case <-ex.exited:
			case <-time.After(10 * time.Second):
				t.Fatal("the plugin still runs 10s after the host was killed")
			}
			ex.log.inOrder(t, "plugin: stopped")
			// Stopping its server removed the plugin's socket. The host had
			// no chance to remove the directory, which is left empty.
			if _, err := os.Lstat(ex.socket); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the plugin's socket is still there after the plugin stopped (lstat: %v)", err)
			}
		})
	}
}

// built is the example's executable, built once for all tests.
var built struct {
	once sync.Once
	exe  string
	err  error
}

func buildExample(t *testing.T) string {
	t.Helper()
	goCmd := bridgetest.LookPath(t, "go")
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "httpbridge-example-test-")
		if err != nil {
			built.err = err
			return
		}
		built.exe = filepath.Join(dir, "example")
		if out, err := exec.Command(goCmd, "build", "-o", built.exe, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.exe
}

// example is the running host process, and through it the plugin.
type example struct {
	cmd       *exec.Cmd
	lang      string // of the plugin
	curlPath  string
	base      string // http://127.0.0.1:port/plugins/demo
	pluginPID int
	tmpDir    string   // the host's TMPDIR, where it creates the socket's directory
	socket    string   // path of the plugin's unix socket
	log       logLines // the host's standard error, where the plugin logs too

	exited chan struct{} // closed once the host has exited
	err    error         // how it exited; set before exited is closed
}

// startExample starts the host, which starts the plugin written in lang.
func startExample(t *testing.T, exe, lang string) *example {
	t.Helper()
	if lang == "python" {
		// The host runs the plugin with Debian's Python by default.
		bridgetest.RequirePython(t, "grpc", "google.protobuf", "starlette", "wsproto")
	}
	ex := &example{lang: lang, exited: make(chan struct{}), tmpDir: t.TempDir()}
	ex.cmd = exec.Command(exe, "-addr", "127.0.0.1:0", "-plugin-lang", lang)
	// A TMPDIR of its own, so that the test sees what the example leaves
	// there.
	ex.cmd.Env = append(os.Environ(), "TMPDIR="+ex.tmpDir)
	// A process group of its own, as a shell gives a job, so that the test
	// can send Ctrl-C's SIGINT to host and plugin at once.
	ex.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := ex.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		lines := bufio.NewScanner(stderr)
		lines.Buffer(nil, 1<<20) // a logged panic is one long line
		for lines.Scan() {
			ex.log.add(lines.Text())
		}
		ex.err = ex.cmd.Wait()
		close(ex.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-ex.exited:
		default:
			_ = syscall.Kill(-ex.cmd.Process.Pid, syscall.SIGKILL)
			<-ex.exited
		}
		if t.Failed() {
			t.Logf("the example's log:\n%s", ex.log.String())
		}
	})

	serving := ex.log.wait(t, "host: serving http://", 30*time.Second)
	ex.base = strings.TrimSuffix(strings.Fields(serving[strings.Index(serving, "http://"):])[0], "/")
	if !strings.HasPrefix(ex.base, "http://127.0.0.1:") || !strings.HasSuffix(ex.base, "/plugins/demo") {
		t.Fatalf("unexpected serving line %q", serving)
	}
	started := ex.log.wait(t, "host: started the plugin: pid ", time.Second)
	if _, err := fmt.Sscanf(started[strings.Index(started, "pid "):], "pid %d,", &ex.pluginPID); err != nil {
		t.Fatalf("no plugin pid in %q: %v", started, err)
	}
	_, target, _ := strings.Cut(started, ", gRPC on ")
	ex.socket, _ = strings.CutPrefix(target, "unix://")
	if ex.socket == target || !filepath.IsAbs(ex.socket) {
		t.Fatalf("no gRPC target unix:///path in %q", started)
	}
	if ex.pluginPID == ex.cmd.Process.Pid {
		t.Fatalf("plugin and host are the same process, pid %d", ex.pluginPID)
	}
	return ex
}

// testSocket checks where the plugin serves: on a unix socket, alone in a
// fresh directory under TMPDIR that only this user can enter.
func (ex *example) testSocket(t *testing.T) {
	dir := filepath.Dir(ex.socket)
	if filepath.Dir(dir) != ex.tmpDir {
		t.Errorf("the socket %s is not in a directory of its own in TMPDIR %s", ex.socket, ex.tmpDir)
	}
	if info, err := os.Lstat(dir); err != nil {
		t.Error(err)
	} else if info.Mode() != fs.ModeDir|0o700 {
		t.Errorf("the socket's directory %s has mode %v, want drwx------", dir, info.Mode())
	}
	if info, err := os.Lstat(ex.socket); err != nil {
		t.Error(err)
	} else if info.Mode().Type() != fs.ModeSocket {
		t.Errorf("%s has mode %v, want a unix socket", ex.socket, info.Mode())
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 {
		t.Errorf("the socket's directory holds %v (%v), want the socket alone", entries, err)
	}
}

// curl runs curl with args and returns what it wrote to standard output.
func (ex *example) curl(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// -q ignores ~/.curlrc and --noproxy a proxy from the environment: the
	// test talks to 127.0.0.1 only.
	cmd := exec.CommandContext(ctx, ex.curlPath, append([]string{"-q", "--noproxy", "*", "-sS"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("curl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

func (ex *example) mustCurl(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := ex.curl(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// index is what /plugins/demo/ answers.
const index = `httpbridge demo plugin. Endpoints, relative to this page:
  GET  hello               the plugin context the host filled in
  POST echo                streams the request body back while reading it
  POST upload              byte count and SHA-256 of the request body
  GET  download?size=N     N bytes (byte i is i%251), streamed
  GET  events?count=N      N server-sent events, one per 100 ms (default 10)
  GET  ws?ticks=N          a WebSocket that echoes each message, and sends
                           N clock ticks, one per 100 ms (default 0)
  GET  panic               a handler that panics
`

// testAnswers checks the status, headers and body of small answers, down to
// the errors: the Go and the Python plugin give the same. It runs before the
// parallel subtests, one request at a time.
func (ex *example) testAnswers(t *testing.T) {
	const text = "text/plain; charset=utf-8"
	// The headers checked; those that a case does not list must be absent.
	checked := []string{"Content-Type", "Content-Length", "X-Content-Type-Options", "Allow", "Cache-Control", "Sec-Websocket-Version"}
	errorHeader := func(body string, more ...string) map[string]string {
		h := map[string]string{"Content-Type": text, "Content-Length": strconv.Itoa(len(body)), "X-Content-Type-Options": "nosniff"}
		for i := 0; i < len(more); i += 2 {
			h[more[i]] = more[i+1]
		}
		return h
	}
	for _, c := range []struct {
		name   string
		args   []string // curl's, before the URL, and the path after base
		status int
		header map[string]string
		body   string // a regular expression that matches the whole body
	}{
		{"index", []string{"/"}, 200, map[string]string{"Content-Type": text, "Content-Length": strconv.Itoa(len(index))}, regexp.QuoteMeta(index)},
		{"upload", []string{"--data-binary", "abc", "/upload"}, 200, map[string]string{"Content-Type": text, "Content-Length": "89"},
			"received 3 bytes\nsha256 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"},
		{"echo", []string{"--data-binary", "abc", "/echo"}, 200, map[string]string{"Content-Type": "application/octet-stream"}, "abc"},
		{"download", []string{"/download?size=5"}, 200, map[string]string{"Content-Type": "application/octet-stream", "Content-Length": "5"}, "\x00\x01\x02\x03\x04"},
		{"events", []string{"/events?count=1"}, 200, map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
			`id: 1\ndata: event 1 of 1 at \d\d:\d\d:\d\d\.\d\d\d\n\n`},
		{"not-found", []string{"/nope"}, 404, errorHeader("404 page not found\n"), "404 page not found\n"},
		{"trailing-slash", []string{"/hello/"}, 404, errorHeader("404 page not found\n"), "404 page not found\n"},
		{"get-only", []string{"--data-binary", "abc", "/hello"}, 405, errorHeader("Method Not Allowed\n", "Allow", "GET, HEAD"), "Method Not Allowed\n"},
		{"post-only", []string{"/echo"}, 405, errorHeader("Method Not Allowed\n", "Allow", "POST"), "Method Not Allowed\n"},
		{"bad-size", []string{"/download?size=-1"}, 400, errorHeader("size: want a number of bytes\n"), "size: want a number of bytes\n"},
		{"bad-count", []string{"/events?count=x"}, 400, errorHeader("count: want a positive number\n"), "count: want a positive number\n"},
		{"panic", []string{"/panic"}, 500, errorHeader("Internal Server Error\n"), "Internal Server Error\n"},
		// /ws without a WebSocket handshake: what gorilla/websocket answers.
		{"ws-no-upgrade", []string{"/ws"}, 400, errorHeader("Bad Request\n", "Sec-Websocket-Version", "13"), "Bad Request\n"},
		{"ws-bad-ticks", []string{"/ws?ticks=x"}, 400, errorHeader("ticks: want a number, 0 or more\n"), "ticks: want a number, 0 or more\n"},
		{"ws-post", []string{"--data-binary", "abc", "/ws"}, 405, errorHeader("Method Not Allowed\n", "Allow", "GET, HEAD"), "Method Not Allowed\n"},
		// An upgrade to a protocol the host does not allow reaches the
		// plugin as a plain request, and the host closes the connection
		// after the answer.
		{"ws-other-protocol", []string{"-H", "Connection: Upgrade", "-H", "Upgrade: h2c", "/ws"}, 400,
			errorHeader("Bad Request\n", "Sec-Websocket-Version", "13", "Connection", "close"), "Bad Request\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// --raw keeps a chunked body chunked, as ReadResponse expects it.
			args := append([]string{"-i", "--raw"}, c.args[:len(c.args)-1]...)
			out := ex.mustCurl(t, append(args, ex.base+c.args[len(c.args)-1])...)
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
			if err != nil {
				t.Fatalf("curl -i %s: %v in\n%s", strings.Join(c.args, " "), err, out)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d", resp.StatusCode, c.status)
			}
			for _, key := range checked {
				if got, want := resp.Header.Get(key), c.header[key]; got != want {
					t.Errorf("%s: %q, want %q", key, got, want)
				}
			}
			// ReadResponse takes "Connection: close" out of the header.
			// (The host may also close after an answer that came before
			// the request's body was read: see docs/guarantees.md.)
			if c.header["Connection"] == "close" && !resp.Close {
				t.Error("no Connection: close")
			}
			if !regexp.MustCompile(`\A` + c.body + `\z`).Match(body) {
				t.Errorf("body %q, want one that matches %q", body, c.body)
			}
		})
	}
}

func (ex *example) testHello(t *testing.T) {
	t.Parallel()
	var ids []string
	for range 2 {
		out := string(ex.mustCurl(t, "-A", "example-test/1.0", ex.base+"/hello"))
		for _, want := range []string{
			fmt.Sprintf("hello from the plugin, pid %d\n", ex.pluginPID),
			"user agent: example-test/1.0\n",
			"remote ip:  127.0.0.1\n",
			"path:       /hello (the host received /plugins/demo/hello)\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("/hello answered\n%s\nwithout the line %q", out, want)
			}
		}
		m := regexp.MustCompile(`(?m)^request id: ([A-Z2-7]{26})$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("/hello answered\n%s\nwithout a request id", out)
		}
		ids = append(ids, m[1])
	}
	if ids[0] == ids[1] {
		t.Errorf("two requests have the same id %s", ids[0])
	}
}

func (ex *example) testUpload(t *testing.T) {
	t.Parallel()
	file, data := randomFile(t, 8<<20+3)
	want := fmt.Sprintf("received %d bytes\nsha256 %x\n", len(data), sha256.Sum256(data))
	for name, args := range map[string][]string{
		"content-length": nil,
		"chunked":        {"-H", "Transfer-Encoding: chunked"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := ex.mustCurl(t, append(args, "--data-binary", "@"+file, ex.base+"/upload")...)
			if string(out) != want {
				t.Errorf("/upload answered %q, want %q", out, want)
			}
		})
	}
}

func (ex *example) testEcho(t *testing.T) {
	t.Parallel()
	file, data := randomFile(t, 4<<20+5)
	for name, args := range map[string][]string{
		"content-length": nil,
		"chunked":        {"-H", "Transfer-Encoding: chunked"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := ex.mustCurl(t, append(args, "--data-binary", "@"+file, ex.base+"/echo")...)
			if !bytes.Equal(out, data) {
				t.Errorf("/echo sent back %d bytes, sha256 %x; want %d bytes, sha256 %x",
					len(out), sha256.Sum256(out), len(data), sha256.Sum256(data))
			}
		})
	}
}

func (ex *example) testDownload(t *testing.T) {
	t.Parallel()
	const size = 10<<20 + 7
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i % 251)
	}
	file := filepath.Join(t.TempDir(), "download")
	ex.mustCurl(t, "-o", file, ex.base+"/download?size="+strconv.Itoa(size))
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("/download gave %d bytes, sha256 %x; want %d bytes, sha256 %x",
			len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

// testEvents checks that each event reaches curl when the plugin flushes
// it, not all together when the handler returns. It runs before the
// parallel subtests, whose transfers could hold up host or plugin for long
// enough that two events arrive together.
func (ex *example) testEvents(t *testing.T) {
	const count = 5
	arrivals := ex.streamEvents(t, ex.base+"/events?count="+strconv.Itoa(count), nil)
	if len(arrivals) != count {
		t.Fatalf("got %d events, want %d", len(arrivals), count)
	}
	// The plugin sends one every 100 ms. Held back until the handler
	// returned, they would arrive microseconds apart; the bounds leave room
	// for a loaded machine.
	for i := 1; i < len(arrivals); i++ {
		if gap := arrivals[i] - arrivals[i-1]; gap < 25*time.Millisecond {
			t.Errorf("event %d arrived %v after event %d, want about 100ms (all arrivals: %v)", i+1, gap, i, arrivals)
		}
	}
	if spread := arrivals[count-1] - arrivals[0]; spread < 300*time.Millisecond {
		t.Errorf("the events arrived within %v, want about 400ms (all arrivals: %v)", spread, arrivals)
	}
}

// streamEvents runs curl -N on url and returns when each event arrived,
// from the start of curl. It calls first, if not nil, once the first event
// is in. curl must succeed.
func (ex *example) streamEvents(t *testing.T, url string, first func()) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ex.curlPath, "-q", "--noproxy", "*", "-sS", "-N", url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var arrivals []time.Duration
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "data: ") {
			arrivals = append(arrivals, time.Since(start))
			if len(arrivals) == 1 && first != nil {
				first()
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("curl -N %s: %v: %s", url, err, stderr.Bytes())
	}
	return arrivals
}

func (ex *example) testPanic(t *testing.T) {
	t.Parallel()
	out := ex.mustCurl(t, "-o", os.DevNull, "-w", "%{http_code}", ex.base+"/panic")
	if string(out) != "500" {
		t.Errorf("/panic gave status %s, want 500", out)
	}
	// The plugin logs the panic (with its stack).
	ex.log.wait(t, "the /panic endpoint was called", 5*time.Second)
	// The plugin survives its handler's panic.
	if out := ex.mustCurl(t, ex.base+"/hello"); !bytes.Contains(out, []byte(fmt.Sprintf("pid %d\n", ex.pluginPID))) {
		t.Errorf("/hello after /panic answered %q", out)
	}
}

// testDisconnect has curl give up midway, and checks that the plugin's
// handler learns of it rather than running on or taking a cut-off upload
// for a whole one.
func (ex *example) testDisconnect(t *testing.T) {
	t.Parallel()
	file, _ := randomFile(t, 8<<20)
	for _, c := range []struct {
		name string
		args []string
		log  string
	}{
		{"events", []string{"-N", ex.base + "/events?count=100"}, "plugin: events: the client went away after "},
		{"upload", []string{"--limit-rate", "200k", "--data-binary", "@" + file, ex.base + "/upload"}, "plugin: upload: stopped after "},
		{"download", []string{"--limit-rate", "500k", "-o", os.DevNull, ex.base + "/download?size=1073741824"}, "plugin: download: stopped after "},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ex.curl(t, append([]string{"--max-time", "1"}, c.args...)...)
			// 28 is curl's "operation timed out".
			if exit := (*exec.ExitError)(nil); !errors.As(err, &exit) || exit.ExitCode() != 28 {
				t.Fatalf("curl --max-time 1: %v; want exit status 28", err)
			}
			ex.log.wait(t, c.log, 5*time.Second)
		})
	}
}

// testCtrlC sends SIGINT to the host's process group, as Ctrl-C in a
// terminal does, while an event stream is running: the stream must finish,
// then the host's HTTP server stops, then the plugin, and both exit 0.
func (ex *example) testCtrlC(t *testing.T) {
	// A WebSocket session is open too. net/http's Shutdown leaves such
	// connections alone: the host ends them itself.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ex.base, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, data, err := conn.Read(ctx); err != nil || string(data) != "still here" {
		t.Fatalf("echo: %q, %v", data, err)
	}
	sessionEnd := make(chan error, 1)
	go func() {
		_, _, err := conn.Read(ctx)
		sessionEnd <- err
	}()

	const count = 8
	arrivals := ex.streamEvents(t, ex.base+"/events?count="+strconv.Itoa(count), func() {
		if err := syscall.Kill(-ex.cmd.Process.Pid, syscall.SIGINT); err != nil {
			t.Error(err)
		}
	})
	if len(arrivals) != count {
		t.Errorf("the stream running at Ctrl-C got %d events, want all %d", len(arrivals), count)
	}

	select {
	case <-ex.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the host did not exit within 20s of SIGINT")
	}
	if ex.err != nil {
		t.Errorf("the host exited with %v, want status 0", ex.err)
	}
	// The host half-closed the session toward the plugin, whose handler
	// then ended it: the Go plugin sends a close frame (1001, going away)
	// first; the Python plugin cannot, since ASGI gives its app only
	// websocket.disconnect (1006), so its client sees the connection end
	// without one.
	select {
	case err := <-sessionEnd:
		status := websocket.CloseStatus(err)
		if want := map[string]websocket.StatusCode{"go": websocket.StatusGoingAway, "python": -1}[ex.lang]; status != want {
			t.Errorf("the WebSocket session open at Ctrl-C ended with %v (close status %d), want close status %d", err, status, want)
		}
	case <-time.After(10 * time.Second):
		t.Error("the WebSocket session open at Ctrl-C did not end with the host")
	}
	ex.log.inOrder(t,
		"host: shutting down: stopping the HTTP server",
		"plugin: ws: stopped after 1 messages",
		"host: HTTP server stopped",
		"plugin: the host closed our standard input: stopping",
		"plugin: stopped",
		"host: stopped",
	)
	// The host waited for the plugin, so it is gone, not orphaned.
	if err := syscall.Kill(ex.pluginPID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the plugin, pid %d, still exists after the host exited (kill 0: %v)", ex.pluginPID, err)
	}
	// The socket and its directory are gone, and nothing else is left.
	for _, path := range []string{ex.socket, filepath.Dir(ex.socket)} {
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists after the host exited (lstat: %v)", path, err)
		}
	}
	if entries, err := os.ReadDir(ex.tmpDir); err != nil || len(entries) != 0 {
		t.Errorf("the host left %v in its TMPDIR (%v)", entries, err)
	}
}

// randomFile writes n random bytes to a temporary file.
func randomFile(t *testing.T, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(n)}).Read(data)
	file := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return file, data
}

// logLines collects lines of a log as they are written.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

func (l *logLines) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines[:len(l.lines):len(l.lines)]
}

func (l *logLines) String() string {
	return strings.Join(l.snapshot(), "\n")
}

// wait returns the first line that contains substr, waiting for it up to
// timeout.
func (l *logLines) wait(t *testing.T, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range l.snapshot() {
			if strings.Contains(line, substr) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line with %q logged within %v", substr, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inOrder checks that lines containing each of substrs were logged, in that
// order.
func (l *logLines) inOrder(t *testing.T, substrs ...string) {
	t.Helper()
	lines := l.snapshot()
	next := 0
	for _, line := range lines {
		if next < len(substrs) && strings.Contains(line, substrs[next]) {
			next++
		}
	}
	if next < len(substrs) {
		t.Errorf("the log does not have, in order, %q (found the first %d)", substrs, next)
	}
}

// testWebSocket opens WebSocket sessions through the host with a Go client
// (coder/websocket; the Go plugin is written with gorilla/websocket) and
// with Python's websockets, as a user's programs would.
func (ex *example) testWebSocket(t *testing.T) {
	t.Parallel()
	url := "ws" + strings.TrimPrefix(ex.base, "http") + "/ws"
	t.Run("echo", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		conn, resp, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		defer conn.CloseNow()
		if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
			t.Errorf("handshake answered %d, Upgrade %q; want 101, websocket", resp.StatusCode, resp.Header.Get("Upgrade"))
		}
		conn.SetReadLimit(32 << 20)
		// Sizes on both sides of the frame length encodings (125, 126,
		// 65535, 65536) and of the bridge's 64 KiB chunks.
		_, big := randomFile(t, 4<<20+1)
		messages := []struct {
			kind websocket.MessageType
			data []byte
		}{
			{websocket.MessageText, []byte("hello")},
			{websocket.MessageText, nil},
			{websocket.MessageBinary, nil},
			{websocket.MessageBinary, big[:125]},
			{websocket.MessageBinary, big[:126]},
			{websocket.MessageText, bytes.Repeat([]byte("é"), 65535/2)},
			{websocket.MessageBinary, big[:65536]},
			{websocket.MessageBinary, big[:65536*3+1]},
			{websocket.MessageBinary, big},
		}
		for i, m := range messages {
			if err := conn.Write(ctx, m.kind, m.data); err != nil {
				t.Fatalf("message %d: write: %v", i, err)
			}
			kind, data, err := conn.Read(ctx)
			if err != nil {
				t.Fatalf("message %d: read: %v", i, err)
			}
			if kind != m.kind || !bytes.Equal(data, m.data) {
				t.Errorf("message %d: sent %v of %d bytes, sha256 %x; got %v of %d bytes, sha256 %x",
					i, m.kind, len(m.data), sha256.Sum256(m.data), kind, len(data), sha256.Sum256(data))
			}
		}
		// Close returns nil once the plugin answered the close frame.
		if err := conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
			t.Errorf("close: %v", err)
		}
		ex.log.wait(t, fmt.Sprintf("plugin: ws: the client closed the session after %d messages", len(messages)), 5*time.Second)
	})

	t.Run("ticks", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, url+"?ticks=5", nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.CloseNow()
		// The ticks come on their own, and an echo goes between them.
		tick := regexp.MustCompile(`\Atick (\d) of 5 at \d\d:\d\d:\d\d\.\d\d\d\z`)
		var ticks []string
		echoed := false
		for len(ticks) < 5 || !echoed {
			kind, data, err := conn.Read(ctx)
			if err != nil {
				t.Fatalf("read after %q (echo seen: %v): %v", ticks, echoed, err)
			}
			switch m := tick.FindSubmatch(data); {
			case kind == websocket.MessageText && string(data) == "between the ticks":
				echoed = true
			case kind == websocket.MessageText && m != nil && string(m[1]) == strconv.Itoa(len(ticks)+1):
				ticks = append(ticks, string(data))
				if len(ticks) == 1 {
					if err := conn.Write(ctx, websocket.MessageText, []byte("between the ticks")); err != nil {
						t.Fatal(err)
					}
				}
			default:
				t.Fatalf("got %v %q after the ticks %q", kind, data, ticks)
			}
		}
		if err := conn.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Errorf("close: %v", err)
		}
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			name   string
			query  string
			origin string
			status int
			body   string
			header map[string]string
		}{
			// The plugin's origin check: a page of another site may not
			// open a session with the user's cookies.
			{"other-origin", "", "http://evil.example", 403, "Forbidden\n", map[string]string{"Sec-Websocket-Version": "13"}},
			{"same-origin", "?ticks=x", "http://" + strings.TrimPrefix(strings.TrimSuffix(ex.base, "/plugins/demo"), "http://"), 400, "ticks: want a number, 0 or more\n", nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				defer cancel()
				conn, resp, err := websocket.Dial(ctx, url+c.query, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {c.origin}}})
				if err == nil {
					conn.CloseNow()
					t.Fatal("the handshake succeeded")
				}
				if resp == nil {
					t.Fatalf("no response: %v", err)
				}
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != c.status || string(body) != c.body {
					t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, c.status, c.body)
				}
				// A declined upgrade closes the connection: bytes the
				// client sent after the request, expecting the switch, are
				// never read as HTTP.
				// (net/http takes "Connection: close" out of the header.)
				if !resp.Close {
					t.Error("the answer has no Connection: close")
				}
				for key, want := range c.header {
					if got := resp.Header.Get(key); got != want {
						t.Errorf("%s: %q, want %q", key, got, want)
					}
				}
			})
		}
	})

	t.Run("client-gone", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, url+"?ticks=1000", nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if _, _, err := conn.Read(ctx); err != nil {
			t.Fatal(err)
		}
		// Gone without a close frame: the plugin's handler learns of it.
		conn.CloseNow()
		ex.log.wait(t, "plugin: ws: stopped after 0 messages", 5*time.Second)
	})

	t.Run("python-client", func(t *testing.T) {
		t.Parallel()
		bridgetest.RequirePython(t, "websockets")
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		// The websockets library, as a Python program would use it.
		script := `
import asyncio, hashlib, sys, websockets

async def main(url):
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send("hello")
        print(await ws.recv())
        data = bytes(i % 251 for i in range(1 << 20))
        await ws.send(data)
        echo = await ws.recv()
        print(len(echo), hashlib.sha256(echo).hexdigest() == hashlib.sha256(data).hexdigest())
    print("closed", ws.close_code)

asyncio.run(main(sys.argv[1]))
`
		out, err := exec.CommandContext(ctx, bridgetest.Python, "-c", script, url).CombinedOutput()
		if want := "hello\n1048576 True\nclosed 1000\n"; err != nil || string(out) != want {
			t.Errorf("the websockets client: %v, printed %q; want %q", err, out, want)
		}

		// Debian's interactive client, python3 -m websockets: what it
		// reads on standard input it sends, what it gets it prints after
		// "< ", and it closes at the end of its input.
		cmd := exec.CommandContext(ctx, bridgetest.Python, "-m", "websockets", url)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var output lockedBuffer
		cmd.Stdout, cmd.Stderr = &output, &output
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(stdin, "hello from python -m websockets")
		for !strings.Contains(output.String(), "< hello from python -m websockets") {
			if ctx.Err() != nil {
				t.Fatalf("no echo within 30s: %q", output.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("python3 -m websockets: %v: %q", err, output.String())
		}
		if !strings.Contains(output.String(), "Connection closed: 1000 (OK).") {
			t.Errorf("python3 -m websockets printed %q, without a clean close", output.String())
		}
	})
}

// lockedBuffer is a bytes.Buffer that a command writes while a test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
