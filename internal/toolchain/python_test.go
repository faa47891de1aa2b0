//go:build unix

package toolchain_test

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
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

	socket := filepath.Join(dir, "plugin.sock")
	cmd := exec.Command(bridgetest.Python, "plugin.py", "unix:"+socket)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(dir, "gen", "python"), "PYTHONDONTWRITEBYTECODE=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	firstLine := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		firstLine <- line
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	select {
	case line := <-firstLine:
		if want := "serving gRPC on unix:" + socket + "\n"; line != want {
			t.Fatalf("the plugin's first line is %q, want %q", line, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the plugin did not say it was serving within 30s")
	}

	conn, err := grpc.NewClient("unix:"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	host := pluginapiv1.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(conn))
	host.Init = func(r *http.Request, init *pluginapiv1.ServeHTTPRequestInit) {
		init.PluginContext = &pluginapiv1.PluginContext{RequestId: "R1"}
	}
	srv := httptest.NewServer(host)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if want := "hello from the plugin, request R1\n"; resp.StatusCode != http.StatusOK || string(body) != want {
		t.Errorf("GET /hello: %s %q, want 200 %q", resp.Status, body, want)
	}

	// SIGTERM stops the plugin cleanly.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the plugin exited with %v after SIGTERM, want 0", err)
		}
		exited <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Error("the plugin did not exit within 30s of SIGTERM")
	}
}
