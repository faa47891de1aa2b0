package conformance

// The pytest suite of the generated Python module, in conformance/python:
// the ASGI and WSGI facades of gen/python/.../hooks_http_httpbridge.py on a
// scripted stream (no network), and a few exchanges over real gRPC on
// 127.0.0.1. It needs /usr/bin/python3 with grpcio, protobuf and pytest
// (Debian's python3-grpcio, python3-protobuf and python3-pytest): the test
// skips without them, except under CI=true, where it fails.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	// pytestInterpreter is Debian's Python, which sees Debian's modules;
	// the python3 first on PATH may not.
	pytestInterpreter = "/usr/bin/python3"
	// pytestTimeout bounds the whole pytest run; it takes a few seconds.
	pytestTimeout = 5 * time.Minute
)

// pytestModules are the modules the suite cannot run without.
var pytestModules = []string{"grpc", "google.protobuf", "pytest"}

// pytestRequire skips the test without Python and its modules, unless the
// environment says CI=true: CI installs them, so there a missing module is a
// broken setup.
func pytestRequire(t *testing.T) {
	t.Helper()
	err := func() error {
		if _, err := os.Stat(pytestInterpreter); err != nil {
			return err
		}
		script := "import " + strings.Join(pytestModules, ", ")
		out, err := exec.Command(pytestInterpreter, "-c", script).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s -c %q: %v: %s", pytestInterpreter, script, err, bytes.TrimSpace(out))
		}
		return nil
	}()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s with %s is required under CI=true: %v", pytestInterpreter, strings.Join(pytestModules, ", "), err)
	}
	t.Skipf("%s with %s not found (%v); CI runs this test", pytestInterpreter, strings.Join(pytestModules, ", "), err)
}

// pytestEnviron is the environment of the pytest run: the generated package
// comes from gen/python only, and no bytecode is written into the tree.
func pytestEnviron(gen string) []string {
	set := []string{"PYTHONPATH=" + gen, "PYTHONDONTWRITEBYTECODE=1"}
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

func TestPytest(t *testing.T) {
	pytestRequire(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(wd) // the tests run in conformance/
	ctx, cancel := context.WithTimeout(t.Context(), pytestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, pytestInterpreter, "-m", "pytest", "-q", "-p", "no:cacheprovider", "conformance/python")
	cmd.Dir = root
	cmd.Env = pytestEnviron(filepath.Join(root, "gen", "python"))
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("pytest did not finish within %v:\n%s", pytestTimeout, out)
	}
	if err != nil {
		t.Fatalf("pytest conformance/python failed (%v):\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Logf("pytest: %s", lines[len(lines)-1])
}
