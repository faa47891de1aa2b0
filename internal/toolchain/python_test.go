//go:build unix

package toolchain_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
	"github.com/httpbridge/httpbridge/internal/golden"
)

// TestBufPython does what README.md tells a Python plugin author to do: it
// generates the Python side of the contract in proto/ with buf and the
// README's buf.gen.yaml, then runs the README's plugin, which the Go host of
// gen/ calls over a unix socket. The generated modules must be the ones
// committed in gen/python.
func TestBufPython(t *testing.T) {
	t.Parallel()
	bridgetest.LookPath(t, "protoc")
	bridgetest.LookPath(t, "grpc_python_plugin")
	bridgetest.RequirePython(t, "grpc", "google.protobuf", "starlette")
	ts := buildTools(t)
	dir := filepath.Join(t.TempDir(), "pyconsumer")
	copyTree(t, filepath.Join("testdata", "pyconsumer"), dir)
	copyTree(t, filepath.Join(repoRoot, "proto"), filepath.Join(dir, "proto"))
	run(t, dir, ts.env(t), ts.buf, "generate")

	committed := golden.ReadTree(t, filepath.Join(repoRoot, "gen", "python"))
	generated := golden.ReadTree(t, filepath.Join(dir, "gen", "python"))
	for name, content := range committed {
		if strings.HasSuffix(name, "_httpbridge.py") && generated[name] != content {
			t.Errorf("gen/python/%s differs from what the README's buf.gen.yaml generates", name)
		}
	}

	plugin := startPythonPlugin(t, dir, filepath.Join(dir, "gen", "python"), "plugin.py")
	srv := pythonPluginHost(t, plugin.socket)
	checkResponse(t, srv, http.MethodGet, "/hello", nil, "hello from the plugin, request R1\n")
	plugin.terminate(t)
}

// TestPythonSDKLayout generates the Python side of the contract in proto/
// the way Mattermost's Python SDK keeps it: the .proto files side by side,
// importing each other by bare name, compiled with -I at their folder into
// the package mattermost_plugin.grpc, whose _pb2 modules the SDK makes
// import each other through the package (bridgetest.PythonPackage). The
// generated modules must import them, and each other, in the package too,
// with python_package or python_imports=relative: a plugin that imports
// them all serves a Starlette app, from a servicer of its own and from
// serve_plugin_hooks, to the Go host of gen/.
func TestPythonSDKLayout(t *testing.T) {
	t.Parallel()
	protoc := bridgetest.LookPath(t, "protoc")
	grpcPlugin := bridgetest.LookPath(t, "grpc_python_plugin")
	bridgetest.RequirePython(t, "grpc", "google.protobuf", "starlette")
	ts := buildTools(t)

	// The contract's files as Mattermost has them, importing each other by
	// bare name.
	protos := golden.ReadTree(t, filepath.Join(repoRoot, "proto", "mattermost", "pluginapi", "v1"))
	var files []string
	for name, content := range protos {
		protos[name] = strings.ReplaceAll(content, `import "mattermost/pluginapi/v1/`, `import "`)
		files = append(files, name)
	}
	slices.Sort(files)

	tests := []struct {
		name, opt, how string
	}{
		{"package", "python_package=mattermost_plugin.grpc", "servicer"},
		{"relative", "python_imports=relative", "serve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pkg := filepath.Join(dir, "mattermost_plugin", "grpc")
			writeTree(t, pkg, protos)
			run(t, pkg, nil, protoc, append([]string{"-I.", "--python_out=.", "--grpc_out=.", "--plugin=protoc-gen-grpc=" + grpcPlugin}, files...)...)
			bridgetest.PythonPackage(t, dir, "mattermost_plugin.grpc")
			run(t, pkg, nil, protoc, append([]string{"-I.", "--plugin=protoc-gen-httpbridge=" + ts.httpbridge, "--httpbridge_out=.", "--httpbridge_opt=lang=python," + tt.opt}, files...)...)
			copyTree(t, filepath.Join("testdata", "pysdk"), dir)

			plugin := startPythonPlugin(t, dir, dir, "plugin.py", tt.how)
			srv := pythonPluginHost(t, plugin.socket)
			checkResponse(t, srv, http.MethodGet, "/hello", nil, "hello from "+tt.how+", request R1\n")
			// More than a chunk each way.
			body := string(bridgetest.RandomBytes(t, 200<<10))
			checkResponse(t, srv, http.MethodPost, "/echo", strings.NewReader(body), body)
			plugin.terminate(t)
		})
	}
}

// pythonPlugin is a Python plugin process serving gRPC on a unix socket.
type pythonPlugin struct {
	socket string
	cmd    *exec.Cmd
	exited chan error // receives the result of Wait, and is refilled
}

// startPythonPlugin runs script in dir with the modules under pythonPath,
// as python3 script unix:<socket> args..., and waits until the plugin
// prints that it serves there. The plugin is killed when the test ends.
func startPythonPlugin(t *testing.T, dir, pythonPath, script string, args ...string) *pythonPlugin {
	t.Helper()
	p := &pythonPlugin{socket: filepath.Join(dir, "plugin.sock"), exited: make(chan error, 1)}
	p.cmd = exec.Command(bridgetest.Python, append([]string{script, "unix:" + p.socket}, args...)...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "PYTHONPATH="+pythonPath, "PYTHONDONTWRITEBYTECODE=1")
	p.cmd.Stderr = os.Stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	firstLine := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		firstLine <- line
		_, _ = io.Copy(io.Discard, stdout)
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	select {
	case line := <-firstLine:
		if want := "serving gRPC on unix:" + p.socket + "\n"; line != want {
			t.Fatalf("the plugin's first line is %q, want %q", line, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the plugin did not say it was serving within 30s")
	}
	return p
}

// terminate checks that SIGTERM stops the plugin cleanly.
func (p *pythonPlugin) terminate(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("the plugin exited with %v after SIGTERM, want 0", err)
		}
		p.exited <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Error("the plugin did not exit within 30s of SIGTERM")
	}
}

// pythonPluginHost serves the Go host of gen/, calling the plugin at
// socket, over HTTP until the test ends. Its requests carry request id R1.
func pythonPluginHost(t *testing.T, socket string) *httptest.Server {
	t.Helper()
	conn, err := grpc.NewClient("unix:"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	host := pluginapiv1.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(conn))
	host.Init = func(r *http.Request, init *pluginapiv1.ServeHTTPRequestInit) {
		init.PluginContext = &pluginapiv1.PluginContext{RequestId: "R1"}
	}
	srv := httptest.NewServer(host)
	t.Cleanup(srv.Close)
	return srv
}

// checkResponse sends a request to srv and checks that it gets 200 with
// body want.
func checkResponse(t *testing.T, srv *httptest.Server, method, path string, body io.Reader, want string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, []byte(want)) {
		t.Errorf("%s %s: %s %q, want 200 %q", method, path, resp.Status, bridgetest.Abbreviate(got, 80), bridgetest.Abbreviate([]byte(want), 80))
	}
}
