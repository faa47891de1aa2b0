package generator_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/httpbridge/httpbridge/internal/bridgetest"
	"github.com/httpbridge/httpbridge/internal/golden"
)

// pythonCheck imports every generated module named on its command line,
// beside protoc's Python output, and builds a message of each direction
// through every facade's wire: a field name the message lacks fails here,
// not on a user's first request. Byte-compiling alone would not catch it.
const pythonCheck = `
import ast, importlib, sys
from google.protobuf import symbol_database

db = symbol_database.Default()
wires = 0
# The rpcs of every file: a pair's rpc may be declared beside another file.
files = [importlib.import_module(name[: -len("_httpbridge")] + "_pb2").DESCRIPTOR for name in sys.argv[1:]]
for name in sys.argv[1:]:
    # Python 3.9's grammar, the oldest the generated code promises.
    with open(name.replace(".", "/") + ".py", encoding="utf-8") as source:
        ast.parse(source.read(), feature_version=(3, 9))
    module = importlib.import_module(name)
    for export in module.__all__:
        getattr(module, export)
    for export in module.__all__:
        facade = getattr(module, export)
        wire = getattr(facade, "_wire", None)
        if wire is None or not export.endswith("ASGI"):
            continue
        head = module._ResponseHead(201, [("x-a", ["1", "2"])])
        res = wire.response(head, b"body", True, True)
        assert res.init.status_code == 201 and res.body_chunk == b"body", res
        assert res.init.headers[0].key == "x-a" and list(res.init.headers[0].values) == ["1", "2"], res
        # The request of the pair: the input of an rpc returning this
        # response, or the message named as its partner.
        response = res.DESCRIPTOR
        requests = [m.input_type for f in files for s in f.services_by_name.values() for m in s.methods if m.output_type.full_name == response.full_name]
        partner = response.full_name[: -len("Response")] + "Request"
        if not requests and response.full_name.endswith("Response"):
            requests = [db.pool.FindMessageTypeByName(partner)]
        for request in requests:
            cls = db.GetSymbol(request.full_name)
            msg = cls()
            msg.init.method = "POST"
            msg.init.url = "/a?b=c"
            header = msg.init.headers.add()
            header.key, header.values[:] = "X-Y", ["z"]
            msg.body_chunk, msg.body_complete = b"hi", True
            got = wire.request_head(msg)
            assert (got.method, got.url, got.headers) == ("POST", "/a?b=c", [("X-Y", ["z"])]), got
            assert wire.request_body(msg) == (b"hi", True)
            assert wire.request_head(cls()) is None
            wires += 1
print(wires)
`

// TestGoldenPython runs the Python golden files: each case's files are
// byte-compiled and imported beside what protoc's Python generator and
// grpc_python_plugin make of the same protos, and every pair's messages go
// through its facade's wire. A case with python_package or
// python_imports=relative is laid out inside a package, whose _pb2 modules
// import each other through it as Mattermost's Python SDK has them do
// (bridgetest.PythonPackage), so that only imports that work there pass.
// Then mypy --strict checks the modules against typed stubs of the
// messages and servicers (bridgetest.Mypy). It needs protoc,
// grpc_python_plugin, mypy, mypy-protobuf and /usr/bin/python3 with grpcio
// and protobuf; CI installs them, and there a missing one fails the test
// (bridgetest.LookPath).
func TestGoldenPython(t *testing.T) {
	if testing.Short() {
		t.Skip("runs protoc and python")
	}
	protoc := bridgetest.LookPath(t, "protoc")
	grpcPlugin := bridgetest.LookPath(t, "grpc_python_plugin")
	bridgetest.RequirePython(t, "grpc", "google.protobuf")
	python := bridgetest.Python

	entries, err := os.ReadDir(casesDir)
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, e := range entries {
		dir := filepath.Join(casesDir, e.Name())
		if !e.IsDir() || !isPython(t, dir) {
			continue
		}
		goldenFiles := golden.ReadTree(t, filepath.Join(dir, "golden"))
		if len(goldenFiles) == 0 {
			continue
		}
		ran++
		t.Run(e.Name(), func(t *testing.T) {
			work := t.TempDir()
			// The output root: work itself, or the folder of the package
			// the case's modules live in.
			pkg := casePythonPackage(t, dir)
			root := filepath.Join(work, filepath.FromSlash(strings.ReplaceAll(pkg, ".", "/")))
			if err := os.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			args := []string{"-I" + dir, "--python_out=" + root, "--grpc_out=" + root, "--plugin=protoc-gen-grpc=" + grpcPlugin}
			args = append(args, bridgetest.PythonStubArgs(t, root)...)
			if out, err := exec.Command(protoc, append(args, protoFiles(t, dir)...)...).CombinedOutput(); err != nil {
				t.Fatalf("protoc: %v\n%s", err, out)
			}
			if pkg != "" {
				bridgetest.PythonPackage(t, work, pkg)
			}
			writeFiles(t, root, goldenFiles)
			var modules []string
			for name := range goldenFiles {
				module := bridgetest.PythonModule(name)
				if pkg != "" {
					module = pkg + "." + module
				}
				modules = append(modules, module)
			}
			slices.Sort(modules)
			compile := exec.Command(python, "-m", "compileall", "-q", work)
			if out, err := compile.CombinedOutput(); err != nil {
				t.Fatalf("byte-compiling: %v\n%s", err, out)
			}
			check := exec.Command(python, append([]string{"-c", pythonCheck}, modules...)...)
			check.Dir = work
			check.Env = append(os.Environ(), "PYTHONPATH="+work, "PYTHONDONTWRITEBYTECODE=1")
			out, err := check.CombinedOutput()
			if err != nil {
				t.Fatalf("importing %s: %v\n%s", strings.Join(modules, ", "), err, out)
			}
			if strings.TrimSpace(string(out)) == "0" {
				t.Errorf("no request went through a facade's wire")
			}
			bridgetest.Mypy(t, work, modules...)
		})
	}
	if ran == 0 {
		t.Fatal("no Python case has golden files")
	}
}

// relativeRoot is the package a python_imports=relative case is laid out
// in: any name does.
const relativeRoot = "relative_root.gen"

// casePythonPackage returns the package the output of the case in dir must
// be in for its imports to work: its python_package, relativeRoot for
// python_imports=relative, or "" for the top level.
func casePythonPackage(t *testing.T, dir string) string {
	for _, p := range strings.Split(caseParam(t, dir), ",") {
		if pkg, ok := strings.CutPrefix(p, "python_package="); ok {
			return pkg
		}
		if p == "python_imports=relative" {
			return relativeRoot
		}
	}
	return ""
}
