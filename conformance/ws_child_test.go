package conformance

// Cases with the far end in a child process: U06's SIGKILL of the plugin
// (and of the reference backend) and U18's extended CONNECT, which needs
// GODEBUG=http2xconnect=1 from the process start. The test binary re-execs
// itself, as bench/ does: with envWSChild set it runs as the child.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// envWSChild makes the test binary run as a child: "plugin" or "host".
const envWSChild = "HTTPBRIDGE_WS_CHILD"

// childAddrs is what a child prints on startup.
type childAddrs struct {
	GRPCUnix string // plugin: the facade's gRPC socket
	HTTP     string // plugin: the same handlers under net/http; host: the host's HTTP/2 server
	CertPEM  string // host: the server's certificate
}

// runWSChild runs the child named by mode until its standard input closes.
func runWSChild(mode string) error {
	mux := http.NewServeMux()
	for _, lib := range wsLibs {
		h := &wsHandler{Lib: lib}
		mux.Handle("/ws/"+string(lib), h)
	}
	var calls atomic.Int32
	mux.HandleFunc("/calls", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, calls.Load())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fmt.Fprint(w, "plugin")
	})
	bridge := &pluginapiv1.ServeHTTPPlugin{Handler: mux}
	var addrs childAddrs
	switch mode {
	case "plugin":
		dir, err := os.MkdirTemp("", "httpbridge-ws-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		gl, err := net.Listen("unix", filepath.Join(dir, "grpc.sock"))
		if err != nil {
			return err
		}
		hl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		gs := grpc.NewServer()
		pluginapiv1.RegisterPluginHooksServer(gs, &bridgetest.FacadeServer{Bridge: bridge})
		go func() { _ = gs.Serve(gl) }()
		go func() { _ = (&http.Server{Handler: mux}).Serve(hl) }()
		addrs = childAddrs{GRPCUnix: gl.Addr().String(), HTTP: hl.Addr().String()}
	case "host":
		// The host, over HTTP/2 with TLS, in front of the facade in this
		// process.
		p := startChildPlugin(bridge)
		host := pluginapiv1.NewPluginHooksServeHTTPHost(p)
		host.Logger = slog.New(slog.DiscardHandler) // its one Warn is expected
		host.UpgradeProtocols = []string{"websocket", wsEchoTCP}
		srv := httptest.NewUnstartedServer(host)
		srv.EnableHTTP2 = true
		srv.StartTLS()
		cert := srv.TLS.Certificates[0].Certificate[0]
		addrs = childAddrs{HTTP: srv.Listener.Addr().String(), CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}))}
	default:
		return fmt.Errorf("unknown child mode %q", mode)
	}
	if err := json.NewEncoder(os.Stdout).Encode(addrs); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// startChildPlugin serves bridge over an in-process pipe and returns a
// client of it (the host child's plugin).
func startChildPlugin(bridge *pluginapiv1.ServeHTTPPlugin) pluginapiv1.PluginHooksClient {
	l := &oneConnListener{conns: make(chan net.Conn, 1)}
	gs := grpc.NewServer()
	pluginapiv1.RegisterPluginHooksServer(gs, &bridgetest.FacadeServer{Bridge: bridge})
	go func() { _ = gs.Serve(l) }()
	conn, _ := grpc.NewClient("passthrough:///child", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			c, s := net.Pipe()
			l.conns <- s
			return c, nil
		}))
	return pluginapiv1.NewPluginHooksClient(conn)
}

// oneConnListener hands the server the pipes the client dials.
type oneConnListener struct{ conns chan net.Conn }

func (l *oneConnListener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "pipe"} }

// child is a running child process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addrs childAddrs
	done  chan struct{}
}

// startChild starts the test binary as a child in mode, with extra
// environment; it is stopped at cleanup.
func startChild(t testing.TB, mode string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envWSChild+"="+mode), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-c.done
		}
	})
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &c.addrs)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("start child: %v", err)
	}
	return c
}

// Kill sends SIGKILL and waits for the child to end.
func (c *child) Kill(t testing.TB) {
	t.Helper()
	_ = c.cmd.Process.Kill()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("child did not die")
	}
}

// startChildWS puts setup in front of the plugin child.
func startChildWS(t testing.TB, setup wsSetup, c *child) *wsEnv {
	t.Helper()
	e := &wsEnv{Setup: setup}
	var h http.Handler
	switch setup {
	case proxySetup:
		rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: c.addrs.HTTP})
		e.ProxyLog = &bridgetest.LogBuffer{}
		rp.ErrorLog = e.ProxyLog.Log()
		h = rp
	case bridgeSetup:
		conn, err := grpc.NewClient("unix://"+c.addrs.GRPCUnix, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		host := pluginapiv1.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(conn))
		e.HostLog = &bridgetest.LogBuffer{}
		host.Logger = e.HostLog.Slog()
		host.UpgradeProtocols = []string{"websocket", wsEchoTCP}
		h = host
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { bridgetest.CloseBounded(t, "front server", srv.Close) })
	e.URL = srv.URL
	e.Addr = strings.TrimPrefix(srv.URL, "http://")
	return e
}

// TestWSU06Kill: SIGKILL of the process behind the front: the client sees
// an abrupt end (1006 class) promptly, through the proxy (a FIN) and the
// bridge (a reset) alike; the host logs an error.
func TestWSU06Kill(t *testing.T) {
	for _, lib := range wsLibs {
		for _, setup := range wsSetups {
			t.Run(string(lib)+"/"+string(setup), func(t *testing.T) {
				bridgetest.LeakCheck(t)
				c := startChild(t, "plugin")
				e := startChildWS(t, setup, c)
				ctx := wsCtx(t)
				cl := mustDial(t, ctx, coderLib, e, "/ws/"+string(lib), wsDialOptions{})
				if _, err := echoOnce(ctx, cl, 1, []byte("alive")); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				c.Kill(t)
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				_, _, err := cl.Read(rctx)
				if end := classify(err); end.Class != "1006" {
					t.Errorf("client saw %v after the kill, want an abrupt end", end)
				}
				if d := time.Since(start); d > bridgetest.Promptly {
					t.Errorf("client noticed the kill after %v, want within %v", d, bridgetest.Promptly)
				}
				if setup == bridgeSetup {
					ok := bridgetest.Eventually(bridgetest.Promptly, func() bool { return strings.Contains(e.HostLog.String(), "level=ERROR") })
					if !ok {
						t.Errorf("host logged no error for the killed plugin:\n%s", e.HostLog)
					}
				}
			})
		}
	}
}

// TestWSU18ExtendedConnect: with GODEBUG=http2xconnect=1 a client can send
// an RFC 8441 extended CONNECT; the host answers 501 and does not call the
// plugin.
func TestWSU18ExtendedConnect(t *testing.T) {
	bridgetest.LeakCheck(t)
	c := startChild(t, "host", "GODEBUG=http2xconnect=1")
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(c.addrs.CertPEM)) {
		t.Fatal("bad certificate from the child")
	}
	// net/http's Transport refuses the :protocol pseudo-header; the x/net
	// transport sends it once the server's SETTINGS allow.
	tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}} //lint:ignore SA1019 the only client that sends an extended CONNECT
	defer tr.CloseIdleConnections()                                     //lint:ignore SA1019 as above
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	base := "https://" + c.addrs.HTTP

	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodConnect, base+"/connect", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(":protocol", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("extended CONNECT: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented || resp.ProtoMajor != 2 {
		t.Errorf("extended CONNECT: HTTP/%d %d, want HTTP/2 501", resp.ProtoMajor, resp.StatusCode)
	}
	r, err := client.Get(base + "/calls")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if string(n) != "0" {
		t.Errorf("plugin called %s times, want 0", n)
	}
}
