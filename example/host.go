package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
)

const (
	startTimeout    = 10 * time.Second // for the handshake, and again for the gRPC connection
	shutdownGrace   = 5 * time.Second  // for HTTP requests in flight at shutdown
	pluginStopGrace = 10 * time.Second // for the plugin to exit once asked
	maxWebSockets   = 100              // WebSocket sessions open at once; more get 503
)

// runHost starts the plugin with pc, serves it under /plugins/demo/ on addr
// until SIGINT or SIGTERM, then stops the HTTP server and, last, the plugin,
// and removes the directory of the plugin's socket.
func runHost(addr string, pc pluginCommand) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)

	dir, err := socketDir()
	if err != nil {
		return err
	}
	removeDir := func() {
		if err := os.RemoveAll(dir); err != nil {
			log.Print(err)
		}
	}
	defer removeDir()
	go func() {
		<-signals
		cancel()
		// A second signal ends the host at once. The plugin then sees its
		// standard input close, and stops too.
		<-signals
		log.Print("second signal: exiting now")
		removeDir()
		os.Exit(1)
	}()

	socket := filepath.Join(dir, "plugin.sock")
	cmd, err := pc.command(socket)
	if err != nil {
		return err
	}
	plugin, err := startPlugin(ctx, cmd, socket)
	if err != nil {
		return err
	}
	log.Printf("started the plugin: pid %d, gRPC on %s", plugin.cmd.Process.Pid, plugin.addr)

	err = serve(ctx, addr, plugin)
	// The plugin stops last, so that the requests the HTTP server was still
	// finishing could reach it.
	if stopErr := plugin.stop(pluginStopGrace); err == nil {
		err = stopErr
	}
	if err == nil {
		log.Print("stopped")
	}
	return err
}

// socketDir creates a fresh directory for the plugin's socket that only
// this user can enter. Whoever can connect to the socket can call ServeHTTP
// with any plugin context, which the plugin trusts; a loopback TCP port is
// open to every local user, while the socket is reachable only through the
// directory. The socket itself needs no particular mode, and its path must
// stay short: an address of a unix socket holds about 100 bytes.
//
// Windows has unix sockets since Windows 10 version 1803, but a file mode
// does not say who may enter a directory there (ACLs do), so the check below
// fails. There, or without unix sockets, serve the plugin on a named pipe
// whose ACL admits only the host's user, or on loopback TCP with a random
// per-run secret that the host hands to the plugin on its standard input
// (not on the command line, which other users can read) and sends with
// every call, and that an interceptor of the plugin's gRPC server checks.
func socketDir() (string, error) {
	dir, err := os.MkdirTemp("", "httpbridge-example-")
	if err != nil {
		return "", fmt.Errorf("creating the plugin's socket directory: %w", err)
	}
	// MkdirTemp asks for 0700, less the umask: make it exactly that, and
	// check that the file system kept it.
	err = os.Chmod(dir, 0o700)
	if err == nil {
		var info os.FileInfo
		if info, err = os.Lstat(dir); err == nil && (!info.IsDir() || info.Mode().Perm() != 0o700) {
			err = fmt.Errorf("mode %v, want drwx------", info.Mode())
		}
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("the plugin's socket directory %s: %w", dir, err)
	}
	return dir, nil
}

// serve connects to the plugin and serves HTTP on addr until ctx is done,
// the plugin exits or the server fails. It returns once the HTTP server has
// stopped and the gRPC connection is closed.
func serve(ctx context.Context, addr string, plugin *pluginProcess) error {
	// No TLS: the socket's directory keeps other users out, and the bytes
	// never leave the machine.
	conn, err := grpc.NewClient(plugin.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := waitReady(ctx, conn); err != nil {
		return fmt.Errorf("connecting to the plugin at %s: %w", plugin.addr, err)
	}

	bridge := pluginapiv1.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(conn))
	bridge.Init = fillPluginContext
	// Clients may switch to WebSocket through the plugin (off by default:
	// a plugin that cannot answer upgrades would leave them waiting), and
	// at most maxWebSockets sessions are open at once: each holds a gRPC
	// stream for as long as it lasts.
	bridge.UpgradeProtocols = []string{"websocket"}
	bridge.MaxUpgraded = maxWebSockets
	mux := http.NewServeMux()
	mux.Handle("/plugins/demo/", http.StripPrefix("/plugins/demo", bridge))

	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	log.Printf("serving http://%s/plugins/demo/ (Ctrl-C to stop)", lis.Addr())

	select {
	case <-ctx.Done():
		log.Print("shutting down: stopping the HTTP server")
	case <-plugin.exited:
		err = fmt.Errorf("the plugin exited unexpectedly (%v); shutting down", plugin.err)
	case err = <-served:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	// Shutdown neither waits for nor closes the connections that WebSocket
	// sessions took over: CloseUpgraded ends them, beside the requests.
	// Each plugin handler reads the end of its client's input and may
	// still send a close frame; those left after the grace are cut off.
	upgradedClosed := make(chan error, 1)
	srv.RegisterOnShutdown(func() { upgradedClosed <- bridge.CloseUpgraded(shutdownCtx) })
	if srv.Shutdown(shutdownCtx) != nil {
		// Closing the connections cancels the requests, and with them
		// their streams, so the plugin's handlers return too.
		log.Printf("cutting off the requests still running after %v", shutdownGrace)
		srv.Close()
	}
	if <-upgradedClosed != nil {
		log.Printf("cut off the WebSocket sessions still open after %v", shutdownGrace)
	}
	log.Print("HTTP server stopped")
	return err
}

// waitReady connects conn now rather than at the first request, so that a
// plugin that cannot be reached fails the start.
func waitReady(ctx context.Context, conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	conn.Connect()
	for {
		state := conn.GetState()
		if state == connectivity.Ready {
			return nil
		}
		if !conn.WaitForStateChange(ctx, state) {
			return fmt.Errorf("%w (last state %v)", ctx.Err(), state)
		}
	}
}

// fillPluginContext is the bridge's Init: it tells the plugin what it cannot
// learn from the request itself, as Mattermost does with PluginContext.
func fillPluginContext(r *http.Request, init *pluginapiv1.ServeHTTPRequestInit) {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	init.PluginContext = &pluginapiv1.PluginContext{
		RequestId:      rand.Text(),
		IpAddress:      ip,
		UserAgent:      r.UserAgent(),
		AcceptLanguage: r.Header.Get("Accept-Language"),
	}
}

// pluginProcess is the running plugin.
type pluginProcess struct {
	cmd   *exec.Cmd
	addr  string    // gRPC target of its server: unix:// and the socket's path
	stdin io.Closer // closing it asks the plugin to stop

	exited chan struct{} // closed once the process has exited
	err    error         // how it exited; set before exited is closed
}

// pluginLangs are the languages of the plugins the host can start, for
// -plugin-lang.
var pluginLangs = []string{"go", "python"}

// The Python plugin, and the folder of the generated modules it imports,
// relative to the root of the repository.
const (
	pythonPlugin  = "example/python/plugin.py"
	pythonModules = "gen/python"
)

// pluginCommand says which plugin the host starts.
type pluginCommand struct {
	lang   string // one of pluginLangs
	python string // the Python interpreter, for lang "python"
}

// command returns the command that runs the plugin, serving on the unix
// socket at the path socket. Both plugins take the socket as an argument,
// print the same handshake, and stop when their standard input closes.
func (pc pluginCommand) command(socket string) (*exec.Cmd, error) {
	if pc.lang != "python" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the plugin's executable: %w", err)
		}
		return exec.Command(exe, "-plugin", "-socket", socket), nil
	}
	repo, err := findRepo()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(pc.python, filepath.Join(repo, pythonPlugin), "--socket", socket)
	path := filepath.Join(repo, pythonModules)
	if old := os.Getenv("PYTHONPATH"); old != "" {
		path += string(os.PathListSeparator) + old
	}
	cmd.Env = append(os.Environ(), "PYTHONPATH="+path)
	return cmd, nil
}

// findRepo returns the root of the repository that holds the Python plugin:
// the one the example was built from, as the path of this source file then
// says, or else the working directory or the nearest folder above it that
// holds the plugin (a build with -trimpath does not know where its source
// was, and a binary may be run after its source moved).
func findRepo() (string, error) {
	var dirs []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(filepath.FromSlash(file)) {
		dirs = append(dirs, filepath.Dir(filepath.Dir(filepath.FromSlash(file))))
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			dirs = append(dirs, dir)
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(pythonPlugin))); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("cannot find the Python plugin %s in the repository the example was built from, nor in the working directory or above it: run the example in a clone of the repository", pythonPlugin)
}

// startPlugin runs cmd, the plugin, serving on the unix socket at the path
// socket, and waits for its handshake.
func startPlugin(ctx context.Context, cmd *exec.Cmd, socket string) (*pluginProcess, error) {
	cmd.Stderr = os.Stderr // the plugin's log goes where the host's goes
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the plugin: %w", err)
	}
	p := &pluginProcess{cmd: cmd, stdin: stdin, exited: make(chan struct{})}

	firstLine := make(chan string, 1)
	go func() {
		out := bufio.NewReader(stdout)
		line, _ := out.ReadString('\n')
		firstLine <- line
		// Anything the plugin prints later goes to the log. Reading to EOF
		// also means the plugin is gone, which Wait requires.
		_, _ = io.Copy(os.Stderr, out)
		p.err = cmd.Wait()
		close(p.exited)
	}()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case line := <-firstLine:
		if line == "" {
			<-p.exited
			return nil, fmt.Errorf("the plugin exited before giving its address: %v", p.err)
		}
		// The host dials the socket it chose, and nothing else.
		target := "unix://" + socket
		if addr, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), handshake); !ok || addr != target {
			p.kill()
			return nil, fmt.Errorf("the plugin's first line is %q; want %q", line, handshake+target)
		}
		p.addr = target
		return p, nil
	case <-timer.C:
		p.kill()
		return nil, fmt.Errorf("the plugin gave no address within %v", startTimeout)
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
}

// stop asks the plugin to finish its streams and exit, by closing its
// standard input: unlike signals that works on every OS, and it happens too
// when the host dies. A plugin still running after grace is killed.
func (p *pluginProcess) stop(grace time.Duration) error {
	_ = p.stdin.Close()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("the plugin failed: %w", p.err)
		}
		return nil
	case <-timer.C:
		p.kill()
		return errors.New("the plugin did not stop in time and was killed")
	}
}

func (p *pluginProcess) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}
