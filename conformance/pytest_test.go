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
	"strings"
	"testing"
	"time"

	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// pytestTimeout bounds the whole pytest run; it takes a few seconds.
const pytestTimeout = 5 * time.Minute

func TestPytest(t *testing.T) {
	bridgetest.RequirePython(t, "grpc", "google.protobuf", "pytest")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(wd) // the tests run in conformance/
	ctx, cancel := context.WithTimeout(t.Context(), pytestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bridgetest.Python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "conformance/python")
	cmd.Dir = root
	cmd.Env = pyEnviron(filepath.Join(root, "gen", "python"))
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
