package toolchain_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/httpbridge/httpbridge/internal/bridgetest"
	"github.com/httpbridge/httpbridge/internal/golden"
)

// repoRoot is the httpbridge module's root, relative to this package.
const repoRoot = "../.."

func TestMain(m *testing.M) {
	code := m.Run()
	if tools.dir != "" {
		os.RemoveAll(tools.dir)
	}
	os.Exit(code)
}

// TestProtoc runs the built plugin under protoc on proto/ and compares its
// output with the committed gen/, which buf generates: both drivers must
// give the same files.
func TestProtoc(t *testing.T) {
	t.Parallel()
	protoc := bridgetest.LookPath(t, "protoc")
	ts := buildTools(t)
	if out, err := exec.Command(protoc, "--version").Output(); err == nil {
		t.Logf("using %s", strings.TrimSpace(string(out)))
	}

	protoDir := filepath.Join(repoRoot, "proto")
	var files []string
	for name := range golden.ReadTree(t, protoDir) {
		if strings.HasSuffix(name, ".proto") {
			files = append(files, name)
		}
	}
	out := t.TempDir()
	args := append([]string{
		"--plugin=protoc-gen-httpbridge=" + ts.httpbridge,
		"--httpbridge_out=" + out,
		"--httpbridge_opt=paths=source_relative",
		"-I", protoDir,
	}, files...)
	run(t, "", nil, protoc, args...)

	want := golden.ReadTree(t, filepath.Join(repoRoot, "gen"))
	for name := range want {
		if !strings.HasSuffix(name, "_httpbridge.pb.go") {
			delete(want, name)
		}
	}
	compareTrees(t, want, golden.ReadTree(t, out))
}

// TestBufConsumer does what a team adopting protoc-gen-httpbridge does: in a
// module of its own, it generates code with buf, then vets and tests the
// module, and runs its host and plugin programs together.
func TestBufConsumer(t *testing.T) {
	t.Parallel()
	goCmd := bridgetest.LookPath(t, "go")
	ts := buildTools(t)
	dir := filepath.Join(t.TempDir(), "consumer")
	copyTree(t, filepath.Join("testdata", "consumer"), dir)
	alignModule(t, goCmd, dir)

	env := ts.env(t)
	run(t, dir, env, ts.buf, "generate")
	gen := golden.ReadTree(t, filepath.Join(dir, "gen"))
	for _, name := range []string{
		"acme/plugin/v1/plugin.pb.go",
		"acme/plugin/v1/plugin_grpc.pb.go",
		"acme/plugin/v1/plugin_httpbridge.pb.go",
	} {
		if _, ok := gen[name]; !ok {
			t.Errorf("buf generate did not write gen/%s", name)
		}
	}
	run(t, dir, env, goCmd, "vet", "./...")
	run(t, dir, env, goCmd, "test", "-count=1", "./...")

	// The programs docs/go.md shows, as two processes.
	run(t, dir, env, goCmd, "build", "-o", filepath.Join(dir, "bin")+string(filepath.Separator), "./host", "./plugin")
	plugin := startProgram(t, filepath.Join(dir, "bin", "plugin"+exeSuffix), "-addr", "127.0.0.1:0")
	pluginAddr := afterLast(plugin.wait(t, "serving gRPC on "), " ")
	host := startProgram(t, filepath.Join(dir, "bin", "host"+exeSuffix), "-addr", "127.0.0.1:0", "-plugin", pluginAddr)
	url := afterLast(host.wait(t, "serving http://"), " ")
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second} // no proxy
	defer client.CloseIdleConnections()
	resp, err := client.Get(url + "hello")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := regexp.Match(`^hello from the plugin, request [A-Z2-7]{26}\n$`, body); resp.StatusCode != http.StatusOK || !ok {
		t.Errorf("GET %shello: %s %q; want 200 and a hello with a request id", url, resp.Status, body)
	}
}

// TestStandalone does what a host author does who bridges a contract whose
// messages a vendor already generated, as Mattermost's server does with its
// pluginapiv1: the vendor's module (a stand-in, with the contract's protos
// laid out and declared as Mattermost's are) ships the message and gRPC
// packages, and the host's module generates only the bridge, with
// package_suffix, into packages of its own that import the vendor's. The
// host module's tests run a request end to end and check that the vendor's
// messages are the only ones registered. Last, a program that links this
// repository's gen/ beside the vendor's package must stop with a name
// conflict: that is why the bridge must not bring messages of its own.
func TestStandalone(t *testing.T) {
	t.Parallel()
	goCmd := bridgetest.LookPath(t, "go")
	ts := buildTools(t)
	dir := filepath.Join(t.TempDir(), "standalone")
	copyTree(t, filepath.Join("testdata", "standalone"), dir)
	vendor, host := filepath.Join(dir, "thirdparty"), filepath.Join(dir, "host")

	// Mattermost keeps its protos in one folder and imports them by file
	// name; its go_package is its own.
	const contract = "mattermost/pluginapi/v1/"
	protos := golden.ReadTree(t, filepath.Join(repoRoot, "proto", filepath.FromSlash(contract)))
	goPackage := regexp.MustCompile(`(?m)^option go_package = ".*";$`)
	for name, content := range protos {
		if !goPackage.MatchString(content) {
			t.Fatalf("proto/%s%s declares no go_package", contract, name)
		}
		content = goPackage.ReplaceAllLiteralString(content, `option go_package = "example.com/thirdparty/pluginapiv1";`)
		content = strings.ReplaceAll(content, `import "`+contract, `import "`)
		protos[name] = content
	}
	writeTree(t, filepath.Join(vendor, "proto"), protos)

	alignModule(t, goCmd, vendor)
	alignModule(t, goCmd, host)
	env := ts.env(t)
	run(t, vendor, env, ts.buf, "generate")
	run(t, host, env, ts.buf, "generate")

	var generated []string
	for name := range golden.ReadTree(t, filepath.Join(host, "bridge")) {
		generated = append(generated, name)
	}
	slices.Sort(generated)
	want := []string{
		"pluginapiv1host/hooks_http_httpbridge.pb.go",
		"pluginapiv1host/hooks_httpbridge.pb.go",
		"pluginapiv1plugin/hooks_http_httpbridge.pb.go",
	}
	if !slices.Equal(generated, want) {
		t.Fatalf("buf generate wrote bridge/%q, want bridge/%q", generated, want)
	}
	run(t, host, env, goCmd, "vet", "./...")
	run(t, host, env, goCmd, "test", "-count=1", "./...")

	// What the README warns of: this repository's gen/ registers the same
	// names as the vendor's package, so a program that links both stops.
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, filepath.Join(host, "both"), map[string]string{"main.go": `package main

import (
	_ "example.com/thirdparty/pluginapiv1"
	_ "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
)

func main() {}
`})
	run(t, host, env, goCmd, "mod", "edit", "-require=github.com/httpbridge/httpbridge@v0.0.0", "-replace=github.com/httpbridge/httpbridge="+root)
	cmd := exec.CommandContext(t.Context(), goCmd, "run", "./both")
	cmd.Dir = host
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if conflict := "has a name conflict over mattermost.pluginapi.v1."; err == nil || !strings.Contains(string(out), conflict) {
		t.Errorf("a program linking gen/ and the vendor's package: %v, %s; want it to stop with %q", err, out, conflict)
	}
}

// TestReadme checks that each block of README.md and docs/*.md marked
// <!-- from PATH --> is the content of PATH, so that the programs,
// configuration and protos they show are the ones the tests compile and
// run, and that the usage README.md shows is what protoc-gen-httpbridge
// --help prints. Its subtests check the snippets that are no copy of a
// file: the Python ones (see checkPythonSnippets) and the Go ones (see
// checkGoSnippets).
func TestReadme(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	help := regexp.MustCompile("(?s)<!-- output of protoc-gen-httpbridge --help -->\n```text\n(.*?)```\n").FindSubmatch(readme)
	if help == nil {
		t.Error("README.md does not show the output of protoc-gen-httpbridge --help in a block marked <!-- output of protoc-gen-httpbridge --help -->")
	} else if want := run(t, "", nil, buildTools(t).httpbridge, "--help"); string(help[1]) != string(want) {
		t.Errorf("README.md's output of protoc-gen-httpbridge --help differs: %s", firstDifference(string(want), string(help[1])))
	}

	blockRE := regexp.MustCompile("(?s)<!-- from ([^ ]+) -->\n```[a-z]*\n(.*?)```\n")
	shown := make(map[string]string) // path shown → the document showing it
	for _, doc := range markdownFiles(t) {
		text, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(doc)))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blockRE.FindAllSubmatch(text, -1) {
			path, block := string(b[1]), string(b[2])
			shown[path] = doc
			want, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(path)))
			if err != nil {
				t.Errorf("%s shows %s: %v", doc, path, err)
				continue
			}
			if block != string(want) {
				t.Errorf("%s's copy of %s differs from the file: %s", doc, path, firstDifference(string(want), block))
			}
		}
	}
	for path, doc := range map[string]string{
		"internal/toolchain/testdata/consumer/host/main.go":   "docs/go.md",
		"internal/toolchain/testdata/consumer/plugin/main.go": "docs/go.md",
		"internal/toolchain/testdata/consumer/buf.gen.yaml":   "README.md",
		"testdata/minimal/example/minimal/v1/http.proto":      "docs/contract.md",
		"testdata/contract/example/contract/v1/http.proto":    "docs/contract.md",
		"internal/toolchain/testdata/pyconsumer/buf.gen.yaml": "docs/python.md",
		"internal/toolchain/testdata/pyconsumer/plugin.py":    "docs/python.md",
	} {
		if shown[path] != doc {
			t.Errorf("%s does not show %s in a block marked <!-- from %s -->", doc, path, path)
		}
	}

	t.Run("python", checkPythonSnippets)
	t.Run("go", checkGoSnippets)
}

// The blocks of the Markdown files that are no copy of a file are checked
// by what they are:
//
//   - a Python block marked <!-- python NAME.py --> is a module: with the
//     other such blocks of its document beside it and gen/python on its
//     path, it is imported (not run as __main__), and the Python lines of
//     a comment <!-- check ... --> right after it run in its namespace, so
//     that they can call its app and assert what it answers. Marked
//     <!-- python NAME.py: needs M --> it is imported only where the module
//     M is installed, and marked <!-- python NAME.py: compile only, WHY -->
//     it is only compiled;
//   - every keyword argument that a Python block passes to the generated
//     run_plugin_hooks, serve_plugin_hooks, PluginHooksBridge, ServeHTTPASGI
//     or ServeHTTPWSGI must be one they take;
//   - the Go blocks marked <!-- go build --> of a document are compiled
//     together against gen/, in a package that imports what they use;
//   - in the documents of snippetDocs every Python and Go block carries
//     one of these marks or <!-- from PATH -->.
var (
	pyBlockRE   = regexp.MustCompile("(?s)<!-- python ([A-Za-z_][A-Za-z0-9_]*\\.py)(?:: ([^\n]*?))? -->\n```python\n(.*?)```\n(?:<!-- check\n(.*?)-->\n)?")
	goBlockRE   = regexp.MustCompile("(?s)<!-- go build -->\n```go\n(.*?)```\n")
	fenceOpenRE = regexp.MustCompile("(?m)^```(python|go)\n")
)

// snippetDocs are the documents whose Python and Go blocks must all be
// checked: the others may show fragments with placeholders.
var snippetDocs = []string{"docs/python.md", "docs/websocket.md"}

// pendingPythonOptions are options that docs/python.md shows before the
// generated code in gen/python takes them. Once gen/python takes one, the
// test fails until it is removed from here, so that the list never hides
// a misspelt option.
var pendingPythonOptions = map[string]bool{}

// checkPythonSnippets checks the Python blocks of every document as the
// comment above pyBlockRE says.
func checkPythonSnippets(t *testing.T) {
	t.Parallel()
	bridgetest.RequirePython(t, "grpc", "google.protobuf")
	gen, err := filepath.Abs(filepath.Join(repoRoot, "gen", "python"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range markdownFiles(t) {
		text := readDoc(t, doc)
		requireMarked(t, doc, text)
		type block struct {
			Module string `json:"module"`
			Mode   string `json:"mode"`  // import, compile, or needs:M
			Where  string `json:"where"` // the document, for tracebacks
			Line   int    `json:"line"`  // of the block's first line of code
			Check  string `json:"check"`
			Checks int    `json:"check_line"`
		}
		var blocks []block
		dir := t.TempDir()
		for _, m := range pyBlockRE.FindAllStringSubmatchIndex(text, -1) {
			name, how, code := text[m[2]:m[3]], "", text[m[6]:m[7]]
			if m[4] >= 0 {
				how = text[m[4]:m[5]]
			}
			b := block{Module: strings.TrimSuffix(name, ".py"), Mode: "import", Where: doc, Line: lineOf(text, m[6])}
			switch {
			case how == "":
			case strings.HasPrefix(how, "compile only"):
				b.Mode = "compile"
			case strings.HasPrefix(how, "needs "):
				b.Mode = "needs:" + strings.TrimPrefix(how, "needs ")
			default:
				t.Errorf("%s:%d: <!-- python %s: %s -->: want nothing, \"needs MODULE\" or \"compile only, WHY\" after the name", doc, lineOf(text, m[0]), name, how)
				continue
			}
			if m[8] >= 0 {
				b.Check, b.Checks = text[m[8]:m[9]], lineOf(text, m[8])
			}
			// Blank lines first, so that the module's line numbers are the
			// document's.
			if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Repeat("\n", b.Line-1)+code), 0o644); err != nil {
				t.Fatal(err)
			}
			blocks = append(blocks, b)
		}
		if len(blocks) == 0 {
			continue
		}
		manifest, err := json.Marshal(blocks)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "snippets.json"), manifest, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "check_snippets.py"), []byte(pythonSnippetChecker), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(t.Context(), bridgetest.Python, "check_snippets.py", "snippets.json")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PYTHONPATH="+gen+string(os.PathListSeparator)+dir, "PYTHONDONTWRITEBYTECODE=1")
		cmd.WaitDelay = time.Second
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("checking the Python blocks of %s: %v\n%s%s", doc, err, out, stderr.String())
			continue
		}
		for line := range strings.Lines(string(out)) {
			var r struct {
				Kind, Where, Text, Call, Option string
				Options                         []string
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("the snippet checker printed %q: %v", line, err)
			}
			switch r.Kind {
			case "error":
				t.Errorf("%s: %s", r.Where, r.Text)
			case "skip":
				t.Logf("%s: %s", r.Where, r.Text)
			case "option":
				if !pendingPythonOptions[r.Option] {
					t.Errorf("%s: %s(..., %s=...): the generated %s takes no option %s", r.Where, r.Call, r.Option, r.Call, r.Option)
				}
			case "options":
				for _, o := range r.Options {
					if pendingPythonOptions[o] {
						t.Errorf("gen/python takes %s now: remove it from pendingPythonOptions in internal/toolchain/toolchain_test.go", o)
					}
				}
			default:
				t.Fatalf("the snippet checker printed %q", line)
			}
		}
	}
}

// pythonSnippetChecker checks the modules that snippets.json lists, in
// its order, and prints one JSON object a line: an error, a skipped
// import, a keyword argument that the generated code does not take, and
// the options it takes.
const pythonSnippetChecker = `import ast
import importlib
import importlib.util
import inspect
import json
import sys
import traceback

from mattermost.pluginapi.v1 import hooks_http_httpbridge as pair
from mattermost.pluginapi.v1 import hooks_httpbridge as service


def say(**fields):
    print(json.dumps(fields), flush=True)


def options(f):
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in inspect.signature(f).parameters.values() if p.kind in kinds}


asgi, wsgi = options(pair.ServeHTTPASGI), options(pair.ServeHTTPWSGI)
takes = {
    "ServeHTTPASGI": asgi,
    "ServeHTTPWSGI": wsgi,
    "PluginHooksBridge": options(service.PluginHooksBridge) | asgi | wsgi,
    "serve_plugin_hooks": options(service.serve_plugin_hooks) | asgi | wsgi,
    "run_plugin_hooks": options(service.run_plugin_hooks) | options(service.serve_plugin_hooks) | asgi | wsgi,
}
say(kind="options", options=sorted(set().union(*takes.values())))

for block in json.load(open(sys.argv[1])):
    where = "%s:%d" % (block["where"], block["line"])
    source = open(block["module"] + ".py").read()
    try:
        tree = compile(source, block["where"], "exec", ast.PyCF_ONLY_AST)
    except SyntaxError:
        say(kind="error", where=where, text=traceback.format_exc())
        continue
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            for keyword in node.keywords if name in takes else ():
                if keyword.arg is not None and keyword.arg not in takes[name]:
                    say(kind="option", where="%s:%d" % (block["where"], node.lineno), call=name, option=keyword.arg)
    mode = block["mode"]
    if mode == "compile":
        continue
    if mode.startswith("needs:"):
        missing = [m.strip() for m in mode[6:].split(",") if importlib.util.find_spec(m.strip()) is None]
        if missing:
            say(kind="skip", where=where, text="compiled only: %s is not installed" % ", ".join(missing))
            continue
    try:
        module = importlib.import_module(block["module"])
        if block["check"]:
            check = "\n" * (block["check_line"] - 1) + block["check"]
            exec(compile(check, block["where"], "exec"), vars(module))
    except BaseException:
        say(kind="error", where=where, text=traceback.format_exc())
`

// checkGoSnippets compiles the blocks marked <!-- go build --> of each
// document against gen/, in one package per document whose file starts
// with goSnippetHeader: //line comments make the compiler's errors name
// the document's lines. The package is an overlay in a folder that does
// not exist, so nothing is written into the repository.
func checkGoSnippets(t *testing.T) {
	t.Parallel()
	goCmd := bridgetest.LookPath(t, "go")
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for i, doc := range markdownFiles(t) {
		text := readDoc(t, doc)
		var src strings.Builder
		src.WriteString(goSnippetHeader)
		for _, m := range goBlockRE.FindAllStringSubmatchIndex(text, -1) {
			fmt.Fprintf(&src, "\n//line %s:%d\n%s", doc, lineOf(text, m[2]), text[m[2]:m[3]])
		}
		if src.Len() == len(goSnippetHeader) {
			continue
		}
		dir := t.TempDir()
		file := filepath.Join(dir, "snippets.go")
		if err := os.WriteFile(file, []byte(src.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		pkg := fmt.Sprintf("internal/toolchain/docsnippets%d", i)
		overlay, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(root, filepath.FromSlash(pkg), "snippets.go"): file}})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "overlay.json"), overlay, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(t.Context(), goCmd, "build", "-overlay", filepath.Join(dir, "overlay.json"), "./"+pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("the Go blocks of %s do not compile: %v\n%s", doc, err, out)
		}
	}
}

// goSnippetHeader starts the package of a document's Go blocks: they are
// declarations that may use these packages.
const goSnippetHeader = `package docsnippets

import (
	"context"
	"crypto/rand"
	"log"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
)

var (
	_ = context.Background
	_ = rand.Text
	_ = log.Printf
	_ = slog.Default
	_ = net.SplitHostPort
	_ = http.NotFound
	_ = time.Second
	_ = websocket.Upgrader{}
	_ = grpc.NewClient
	_ = insecure.NewCredentials
	_ = pluginapiv1.NewPluginHooksClient
)
`

// requireMarked reports the Python and Go blocks of a document of
// snippetDocs that no test checks.
func requireMarked(t *testing.T, doc, text string) {
	t.Helper()
	if !slices.Contains(snippetDocs, doc) {
		return
	}
	for _, m := range fenceOpenRE.FindAllStringSubmatchIndex(text, -1) {
		before := text[:m[0]]
		mark := before[strings.LastIndex(strings.TrimSuffix(before, "\n"), "\n")+1:]
		lang := text[m[2]:m[3]]
		ok := strings.HasPrefix(mark, "<!-- from ") ||
			lang == "python" && strings.HasPrefix(mark, "<!-- python ") ||
			lang == "go" && mark == "<!-- go build -->\n"
		if !ok {
			t.Errorf("%s:%d: a %s block that no test checks: mark it <!-- from PATH -->, %s", doc, lineOf(text, m[0]), lang,
				map[string]string{"python": "<!-- python NAME.py -->", "go": "<!-- go build -->"}[lang])
		}
	}
}

// readDoc returns a Markdown file of the repository.
func readDoc(t *testing.T, doc string) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(doc)))
	if err != nil {
		t.Fatal(err)
	}
	return string(text)
}

// lineOf returns the line number of the byte at offset in text.
func lineOf(text string, offset int) int {
	return strings.Count(text[:offset], "\n") + 1
}

// TestDocLinks checks that every relative link in README.md, CHANGELOG.md
// and docs/*.md names a file or folder of the repository and, with a
// #fragment into a Markdown file, one of its headings.
func TestDocLinks(t *testing.T) {
	t.Parallel()
	fence := regexp.MustCompile("(?ms)^```.*?^```$")
	code := regexp.MustCompile("`[^`\n]*`")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	anchors := make(map[string]map[string]bool) // Markdown file → its heading anchors
	anchorsOf := func(doc string) map[string]bool {
		if a, ok := anchors[doc]; ok {
			return a
		}
		text, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(doc)))
		if err != nil {
			t.Fatal(err)
		}
		a := headingAnchors(fence.ReplaceAllString(string(text), ""))
		anchors[doc] = a
		return a
	}
	for _, doc := range markdownFiles(t) {
		text, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(doc)))
		if err != nil {
			t.Fatal(err)
		}
		prose := code.ReplaceAllString(fence.ReplaceAllString(string(text), ""), "")
		for _, m := range link.FindAllStringSubmatch(prose, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, fragment, _ := strings.Cut(target, "#")
			dest := doc
			if file != "" {
				dest = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(doc), file)))
				if _, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(dest))); err != nil {
					t.Errorf("%s links to %s, which does not exist", doc, target)
					continue
				}
			}
			if fragment != "" && strings.HasSuffix(dest, ".md") && !anchorsOf(dest)[fragment] {
				t.Errorf("%s links to %s, but %s has no heading with the anchor #%s", doc, target, dest, fragment)
			}
		}
	}
}

// markdownFiles lists the documents TestReadme and TestDocLinks read,
// relative to the repository root, with forward slashes.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"README.md", "CHANGELOG.md"}
	for _, d := range docs {
		files = append(files, "docs/"+filepath.Base(d))
	}
	return files
}

// headingAnchors returns the anchors GitHub gives the headings of a Markdown
// text: lower case, punctuation dropped, spaces as hyphens, and -1, -2, ...
// after repeats.
func headingAnchors(text string) map[string]bool {
	heading := regexp.MustCompile(`(?m)^#{1,6} +(.+?) *#* *$`)
	drop := regexp.MustCompile(`[^\p{L}\p{N}\p{M}\- _]`)
	anchors := make(map[string]bool)
	seen := make(map[string]int)
	for _, m := range heading.FindAllStringSubmatch(text, -1) {
		a := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-")
		if n := seen[a]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors
}

var exeSuffix = map[bool]string{true: ".exe"}[runtime.GOOS == "windows"]

// toolset is the programs the tests run.
type toolset struct {
	httpbridge string // protoc-gen-httpbridge, built from this module
	buf        string
	path       string // a PATH list that finds the three protoc plugins
}

// tools is built once for all tests.
var tools struct {
	once sync.Once
	dir  string // holds protoc-gen-httpbridge
	set  toolset
	err  error
}

// buildTools builds protoc-gen-httpbridge from this module, and finds
// protoc-gen-go and protoc-gen-go-grpc at the versions go.mod pins, and buf
// at the version go.tool.mod pins. "go tool -n" builds a tool into the build
// cache, or finds it there (CI's buf generate put it there), and prints its
// path: much faster than linking buf anew.
func buildTools(t *testing.T) toolset {
	t.Helper()
	tools.once.Do(func() {
		if tools.dir, tools.err = os.MkdirTemp("", "httpbridge-tools-"); tools.err != nil {
			return
		}
		commands := [][]string{
			{"build", "-o", tools.dir + string(filepath.Separator), "./protoc-gen-httpbridge"},
			{"tool", "-n", "protoc-gen-go"},
			{"tool", "-n", "protoc-gen-go-grpc"},
			{"tool", "-n", "-modfile=go.tool.mod", "buf"},
		}
		outs := make([]string, len(commands))
		errs := make([]error, len(commands))
		var wg sync.WaitGroup
		for i, args := range commands {
			wg.Go(func() {
				cmd := exec.Command("go", args...)
				cmd.Dir = repoRoot
				var stderr strings.Builder
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					errs[i] = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
				}
				outs[i] = strings.TrimSpace(string(out))
			})
		}
		wg.Wait()
		if tools.err = errors.Join(errs...); tools.err != nil {
			return
		}
		tools.set = toolset{
			httpbridge: filepath.Join(tools.dir, "protoc-gen-httpbridge"+exeSuffix),
			buf:        outs[3],
			path:       strings.Join([]string{tools.dir, filepath.Dir(outs[1]), filepath.Dir(outs[2])}, string(os.PathListSeparator)),
		}
	})
	if tools.err != nil {
		t.Fatal(tools.err)
	}
	return tools.set
}

// env is the environment in which buf finds on PATH the protoc plugins that
// buf.gen.yaml names and uses a cache of its own, and in which the go
// command works in a consumer module alone.
func (ts toolset) env(t *testing.T) []string {
	return []string{
		"PATH=" + ts.path + string(os.PathListSeparator) + os.Getenv("PATH"),
		"BUF_CACHE_DIR=" + t.TempDir(),
		"GOWORK=off",
		"GOFLAGS=-mod=mod",
	}
}

// run runs a command in dir (the current directory if empty) with env
// added to the environment, and returns its standard output.
func run(t *testing.T, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// alignModule makes the consumer in dir require the versions this module
// requires, and gives it this module's go.sum, so that the go command finds
// everything in the module cache that building this module has filled.
func alignModule(t *testing.T, goCmd, dir string) {
	t.Helper()
	type module struct {
		Require []struct{ Path, Version string }
	}
	var ours, theirs module
	if err := json.Unmarshal(run(t, repoRoot, nil, goCmd, "mod", "edit", "-json"), &ours); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(run(t, dir, nil, goCmd, "mod", "edit", "-json"), &theirs); err != nil {
		t.Fatal(err)
	}
	versions := make(map[string]string)
	for _, r := range ours.Require {
		versions[r.Path] = r.Version
	}
	edit := []string{"mod", "edit"}
	for _, r := range theirs.Require {
		if v, ok := versions[r.Path]; ok && v != r.Version {
			edit = append(edit, "-require="+r.Path+"@"+v)
		}
	}
	if len(edit) > 2 {
		run(t, dir, nil, goCmd, edit...)
	}
	sum, err := os.ReadFile(filepath.Join(repoRoot, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
}

// program is a running command whose standard error the test reads.
type program struct {
	name  string
	mu    sync.Mutex
	lines []string
	added chan struct{} // receives after each new line, without blocking
}

// startProgram starts a long-running command; it is killed when the test
// ends.
func startProgram(t *testing.T, path string, args ...string) *program {
	t.Helper()
	p := &program{name: filepath.Base(path), added: make(chan struct{}, 1)}
	cmd := exec.Command(path, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, lines.Text())
			p.mu.Unlock()
			select {
			case p.added <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s's log:\n%s", p.name, strings.Join(p.lines, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

// wait returns the first line the program logged that contains substr,
// waiting up to 30 seconds for it.
func (p *program) wait(t *testing.T, substr string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		p.mu.Lock()
		for _, line := range p.lines {
			if strings.Contains(line, substr) {
				p.mu.Unlock()
				return line
			}
		}
		p.mu.Unlock()
		select {
		case <-p.added:
		case <-timeout:
			t.Fatalf("%s logged no line with %q within 30s", p.name, substr)
		}
	}
}

func afterLast(s, sep string) string {
	return s[strings.LastIndex(s, sep)+len(sep):]
}

// copyTree copies the files under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	writeTree(t, dst, golden.ReadTree(t, src))
}

// writeTree writes files, named by slash-separated paths, under dst.
func writeTree(t *testing.T, dst string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dst, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// compareTrees reports every file that is missing, unexpected or
// different.
func compareTrees(t *testing.T, want, got map[string]string) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: in gen/ but not generated", name)
		case g != w:
			t.Errorf("%s differs from gen/: %s", name, firstDifference(w, g))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: generated but not in gen/", name)
		}
	}
	if t.Failed() {
		t.Log("if gen/ is stale, regenerate it with: go tool -modfile=go.tool.mod buf generate")
	}
}

// firstDifference describes the first line where got differs from want.
func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if i >= len(w) || i >= len(g) || wl != gl {
			return fmt.Sprintf("line %d is %q, want %q", i+1, gl, wl)
		}
	}
	return "no difference"
}
