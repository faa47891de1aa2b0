package conformance

// The pytest suite of the generated Python module, in conformance/python:
// the ASGI and WSGI facades of gen/python/.../hooks_http_httpbridge.py on a
// scripted stream (no network), and a few exchanges over real gRPC on
// 127.0.0.1. It needs /usr/bin/python3 with grpcio, protobuf and pytest
// (Debian's python3-grpcio, python3-protobuf and python3-pytest): the test
// skips without them, except where CI is set, where it fails.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/httpbridge/httpbridge/internal/bridgetest"
	"github.com/httpbridge/httpbridge/internal/golden"
)

// pytestTimeout bounds the whole pytest run; it takes a few seconds.
const pytestTimeout = 5 * time.Minute

func TestPytest(t *testing.T) {
	bridgetest.RequirePython(t, "grpc", "google.protobuf", "pytest", "hypothesis")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(wd) // the tests run in conformance/
	// Under both event loops that run_plugin_hooks picks from: asyncio's,
	// and uvloop's where it is installed (conftest.py's HTTPBRIDGE_LOOP).
	for _, loop := range []string{"asyncio", "uvloop"} {
		t.Run("loop="+loop, func(t *testing.T) {
			if loop == "uvloop" {
				bridgetest.RequirePython(t, "uvloop")
			}
			ctx, cancel := context.WithTimeout(t.Context(), pytestTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, bridgetest.Python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "conformance/python")
			cmd.Dir = root
			// Hypothesis keeps its files out of the tree.
			cmd.Env = append(pyEnviron(filepath.Join(root, "gen", "python")), "HYPOTHESIS_STORAGE_DIRECTORY="+t.TempDir(), "HTTPBRIDGE_LOOP="+loop)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("pytest did not finish within %v:\n%s", pytestTimeout, out)
			}
			if err != nil {
				t.Fatalf("pytest conformance/python failed (%v):\n%s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			t.Logf("pytest: %s", lines[len(lines)-1])
		})
	}
}

// TestMypy checks gen/python with mypy --strict against typed stubs of the
// messages and servicers, written beside a copy of it (bridgetest.Mypy).
func TestMypy(t *testing.T) {
	protoc := bridgetest.LookPath(t, "protoc")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(wd)
	work := t.TempDir()
	if err := os.CopyFS(work, os.DirFS(filepath.Join(root, "gen", "python"))); err != nil {
		t.Fatal(err)
	}
	var protos, modules []string
	for name := range golden.ReadTree(t, filepath.Join(root, "proto")) {
		if strings.HasSuffix(name, ".proto") {
			protos = append(protos, name)
		}
	}
	args := append([]string{"-I" + filepath.Join(root, "proto")}, bridgetest.PythonStubArgs(t, work)...)
	if out, err := exec.Command(protoc, append(args, protos...)...).CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, out)
	}
	for name := range golden.ReadTree(t, work) {
		if strings.HasSuffix(name, "_httpbridge.py") {
			modules = append(modules, bridgetest.PythonModule(name))
		}
	}
	if len(modules) == 0 {
		t.Fatal("gen/python has no _httpbridge module")
	}
	slices.Sort(modules)
	bridgetest.Mypy(t, work, modules...)
	t.Logf("mypy --strict: %s", strings.Join(modules, ", "))
}
