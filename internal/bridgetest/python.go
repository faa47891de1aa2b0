package bridgetest

import (
	"embed"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// protocImport matches the statements with which the modules of protoc's
// Python generator and grpc_python_plugin import each other's: import
// x_pb2 as x__pb2 for a file at the root of the import path, from a.b
// import x_pb2 as a_dot_b_dot_x__pb2 for one in a folder.
var protocImport = regexp.MustCompile(`(?m)^(?:from ([\w.]+) )?import (\w+_pb2(?:_grpc)?) as (\w+)$`)

// PythonPackage turns what protoc's Python generator and grpc_python_plugin
// wrote in the folder of package pkg (a/b for a.b) below root into that
// package, as Mattermost's Python SDK does with the flat output it keeps in
// mattermost_plugin.grpc: every folder from root down to pkg's and below it
// gets an empty __init__.py, and in every _pb2.py and _pb2_grpc.py file there
// the imports of the others go through pkg: import x_pb2 as x__pb2 becomes
// from pkg import x_pb2 as x__pb2. (The SDK's own fixer writes from . import
// x_pb2, the same module in its flat layout.) The well-known types' modules
// stay google.protobuf's, and other files are left alone, so that what
// protoc-gen-httpbridge writes there is tested as it is. It returns pkg's
// folder.
func PythonPackage(tb testing.TB, root, pkg string) string {
	tb.Helper()
	dir := root
	for _, name := range strings.Split(pkg, ".") {
		dir = filepath.Join(dir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		writeInit(tb, dir)
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			writeInit(tb, path)
			return nil
		case !strings.HasSuffix(path, "_pb2.py") && !strings.HasSuffix(path, "_pb2_grpc.py"):
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fixed := protocImport.ReplaceAllStringFunc(string(src), func(statement string) string {
			m := protocImport.FindStringSubmatch(statement)
			from, module, alias := m[1], m[2], m[3]
			if from == "google.protobuf" || strings.HasPrefix(from, "google.protobuf.") {
				return statement
			}
			if from != "" {
				from = "." + from
			}
			return "from " + pkg + from + " import " + module + " as " + alias
		})
		return os.WriteFile(path, []byte(fixed), 0o644)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}

// writeInit makes dir a regular package, unless it is one already.
func writeInit(tb testing.TB, dir string) {
	tb.Helper()
	init := filepath.Join(dir, "__init__.py")
	if _, err := os.Stat(init); err == nil {
		return
	}
	if err := os.WriteFile(init, nil, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// PythonModule is the dotted name of the Python module or stub at the
// slash-separated path rel below an import root: a/b/x_pb2.py and
// a/b/x_pb2.pyi are a.b.x_pb2.
func PythonModule(rel string) string {
	return strings.ReplaceAll(strings.TrimSuffix(strings.TrimSuffix(rel, ".pyi"), ".py"), "/", ".")
}

// PythonStubArgs are the protoc arguments that write typed stubs beside the
// Python modules in out: protoc's own .pyi files for the _pb2 modules, and
// mypy-protobuf's (Debian's mypy-protobuf) for the _pb2_grpc ones, which
// grpc_python_plugin writes untyped. [Mypy] checks against them.
func PythonStubArgs(tb testing.TB, out string) []string {
	tb.Helper()
	plugin := LookPath(tb, "protoc-gen-mypy_grpc")
	return []string{"--pyi_out=" + out, "--plugin=protoc-gen-mypy_grpc=" + plugin, "--mypy_grpc_out=" + out}
}

// protobufStubs types the part of protobuf's Python API that generated
// modules and protoc's stubs use: Debian has no stubs for python3-protobuf,
// and without them every message class would derive from Any, so that a
// misspelt field would pass.
//
//go:embed pystubs
var protobufStubs embed.FS

// Mypy runs mypy --strict on modules (dotted names) below root, where
// protoc's modules and their stubs ([PythonStubArgs]) are too. Only the
// modules named are held to --strict: the stubs of protoc and mypy-protobuf
// are taken as they are, protobuf is typed by protobufStubs, and grpcio,
// which has no stubs in Debian, is untyped.
func Mypy(tb testing.TB, root string, modules ...string) {
	tb.Helper()
	mypy := LookPath(tb, "mypy")
	var generated []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		module := PythonModule(filepath.ToSlash(rel))
		if !strings.HasSuffix(module, "_pb2") && !strings.HasSuffix(module, "_pb2_grpc") {
			return nil
		}
		if !slices.Contains(generated, module) {
			generated = append(generated, module)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	config := "[mypy]\nstrict = True\nexplicit_package_bases = True\nnamespace_packages = True\ncache_dir = /dev/null\n" +
		"[mypy-grpc,grpc.*]\nignore_missing_imports = True\n"
	if len(generated) > 0 {
		slices.Sort(generated)
		config += "[mypy-" + strings.Join(generated, ",") + "]\nignore_errors = True\n"
	}
	stubs, err := fs.Sub(protobufStubs, "pystubs")
	if err != nil {
		tb.Fatal(err)
	}
	stubDir := tb.TempDir()
	if err := os.CopyFS(stubDir, stubs); err != nil {
		tb.Fatal(err)
	}
	configFile := filepath.Join(tb.TempDir(), "mypy.ini")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		tb.Fatal(err)
	}
	args := []string{"--config-file", configFile}
	for _, m := range modules {
		args = append(args, "-m", m)
	}
	cmd := exec.Command(mypy, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "MYPYPATH="+stubDir, "PYTHONPATH=")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("mypy --strict %s: %v\n%s", strings.Join(modules, " "), err, out)
	}
}
