package generator_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/httpbridge/httpbridge/internal/generator"
	"github.com/httpbridge/httpbridge/internal/golden"
)

const (
	casesDir      = "../../testdata"
	defaultParam  = "paths=source_relative"
	updateCommand = "go test ./... -update"
)

// TestGolden runs the generator on every case folder under testdata/ and
// compares what it answers with the case's golden/ files or error.txt.
// testdata/README.md describes the layout.
func TestGolden(t *testing.T) {
	entries, err := os.ReadDir(casesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			t.Parallel()
			testCase(t, filepath.Join(casesDir, e.Name()))
		})
	}
}

// caseParam returns the plugin parameter of the case in dir.
func caseParam(t *testing.T, dir string) string {
	t.Helper()
	switch b, err := os.ReadFile(filepath.Join(dir, "param.txt")); {
	case err == nil:
		return strings.TrimSpace(string(b))
	case !errors.Is(err, fs.ErrNotExist):
		t.Fatal(err)
	}
	return defaultParam
}

// isPython reports whether the case in dir generates Python.
func isPython(t *testing.T, dir string) bool {
	return slices.Contains(strings.Split(caseParam(t, dir), ","), "lang=python")
}

func testCase(t *testing.T, dir string) {
	param := caseParam(t, dir)
	resp := generator.Generate(request(t, dir, protoFiles(t, dir), param))
	got := outputFiles(t, resp)

	goldenDir := filepath.Join(dir, "golden")
	errorFile := filepath.Join(dir, "error.txt")
	if *golden.Update {
		writeExpected(t, goldenDir, errorFile, resp.Error, got)
		return
	}

	wantErr, err := os.ReadFile(errorFile)
	switch {
	case err == nil:
		want := strings.TrimSuffix(string(wantErr), "\n")
		if resp.Error == nil {
			t.Errorf("no error, want %q", want)
		} else if got := resp.GetError(); got != want {
			t.Errorf("error text differs (-want +got):\n%s", lineDiff(want+"\n", got+"\n"))
		}
		if len(got) > 0 {
			t.Errorf("generated %d files along with the error", len(got))
		}
		return
	case !errors.Is(err, fs.ErrNotExist):
		t.Fatal(err)
	}
	if _, err := os.Stat(goldenDir); errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the case has neither golden/ nor error.txt; create them with\n\t%s", updateCommand)
	}
	if resp.Error != nil {
		t.Fatalf("unexpected error: %s", resp.GetError())
	}
	compareFiles(t, golden.ReadTree(t, goldenDir), got, updateCommand)
}

// TestGenIsCurrent checks that the committed gen/ holds what the generator
// makes of proto/, as buf generate runs it. gen/ is rewritten by
//
//	go tool -modfile=go.tool.mod buf generate
//
// not by -update.
//
// The same holds for the Python modules in gen/python, which
//
//	go tool -modfile=go.tool.mod buf generate --template buf.gen.python.yaml
//
// rewrites.
func TestGenIsCurrent(t *testing.T) {
	const protoDir = "../../proto"
	tests := []struct {
		dir, param, suffix, fix string
	}{
		{"../../gen", defaultParam, "_httpbridge.pb.go", "go tool -modfile=go.tool.mod buf generate"},
		{"../../gen/python", "lang=python", "_httpbridge.py", "go tool -modfile=go.tool.mod buf generate --template buf.gen.python.yaml"},
	}
	for _, tt := range tests {
		resp := generator.Generate(request(t, protoDir, protoFiles(t, protoDir), tt.param))
		if resp.Error != nil {
			t.Fatalf("generating from proto/ with %s: %s", tt.param, resp.GetError())
		}
		want := golden.ReadTree(t, tt.dir)
		for name := range want {
			if !strings.HasSuffix(name, tt.suffix) || strings.HasPrefix(name, "python/") {
				delete(want, name)
			}
		}
		compareFiles(t, want, outputFiles(t, resp), tt.fix)
	}
}

// TestGoldenCompiles vets the expected output of every case that has some,
// beside what protoc-gen-go and protoc-gen-go-grpc generate from the same
// protos, in a scratch module: golden files are only worth pinning if they
// build. It runs the go command, so -short skips it.
func TestGoldenCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	// The scratch module requires what this one does, at the same versions.
	modFile, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	sumFile, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, work, map[string]string{
		"go.mod": strings.Replace(string(modFile), "module github.com/httpbridge/httpbridge\n", "module golden\n", 1),
		"go.sum": string(sumFile),
	})

	entries, err := os.ReadDir(casesDir)
	if err != nil {
		t.Fatal(err)
	}
	built := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(casesDir, e.Name())
		goldenFiles := golden.ReadTree(t, filepath.Join(dir, "golden"))
		if len(goldenFiles) == 0 || isPython(t, dir) {
			continue // TestGoldenPython runs the Python cases
		}
		// Each case is a folder of its own: cases may share Go package paths.
		req := request(t, dir, protoFiles(t, dir), defaultParam)
		for _, plugin := range []string{"protoc-gen-go", "protoc-gen-go-grpc"} {
			writeFiles(t, filepath.Join(work, e.Name()), runTool(t, goCmd, root, plugin, req))
		}
		writeFiles(t, filepath.Join(work, e.Name()), goldenFiles)
		built++
	}
	if built == 0 {
		t.Fatal("no case has golden files")
	}
	cmd := exec.Command(goCmd, "vet", "./...")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("go vet of the golden files failed: %v\n%s", err, out)
	}
}

// runTool runs a plugin listed as a tool in go.mod on req.
func runTool(t *testing.T, goCmd, root, plugin string, req *pluginpb.CodeGeneratorRequest) map[string]string {
	t.Helper()
	in, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(goCmd, "tool", plugin)
	cmd.Dir = root
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go tool %s: %v\n%s", plugin, err, stderr.Bytes())
	}
	resp := &pluginpb.CodeGeneratorResponse{}
	if err := proto.Unmarshal(stdout.Bytes(), resp); err != nil {
		t.Fatalf("go tool %s: %v", plugin, err)
	}
	if resp.Error != nil {
		t.Fatalf("go tool %s: %s", plugin, resp.GetError())
	}
	return outputFiles(t, resp)
}

// protoFiles lists the .proto files under dir, relative to it and sorted,
// leaving out golden/.
func protoFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if d.IsDir() && rel == "golden" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(rel, ".proto") {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no .proto files in %s", dir)
	}
	return files
}

// request compiles files, with dir as the only import root, and builds the
// CodeGeneratorRequest protoc would send for them: every file they need, in
// dependency order, with source info so that comments reach the generator.
func request(t *testing.T, dir string, files []string, param string) *pluginpb.CodeGeneratorRequest {
	t.Helper()
	compiler := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{dir}}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := compiler.Compile(t.Context(), files...)
	if err != nil {
		t.Fatalf("compiling %s: %v", dir, err)
	}
	req := &pluginpb.CodeGeneratorRequest{
		FileToGenerate: files,
		Parameter:      proto.String(param),
	}
	added := make(map[string]bool)
	var add func(protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if added[fd.Path()] {
			return
		}
		added[fd.Path()] = true
		imports := fd.Imports()
		for i := range imports.Len() {
			add(imports.Get(i).FileDescriptor)
		}
		req.ProtoFile = append(req.ProtoFile, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range compiled {
		add(fd)
	}
	return req
}

// outputFiles returns the generated files by name.
func outputFiles(t *testing.T, resp *pluginpb.CodeGeneratorResponse) map[string]string {
	t.Helper()
	files := make(map[string]string)
	for _, f := range resp.File {
		name := f.GetName()
		if !filepath.IsLocal(name) || filepath.ToSlash(filepath.Clean(name)) != name {
			t.Fatalf("generated file name %q is not a clean relative path", name)
		}
		if f.GetInsertionPoint() != "" {
			t.Errorf("generated file %s uses insertion point %q", name, f.GetInsertionPoint())
		}
		if _, dup := files[name]; dup {
			t.Errorf("file %s generated twice", name)
		}
		files[name] = f.GetContent()
	}
	return files
}

// compareFiles reports every file that is missing, unexpected or different.
func compareFiles(t *testing.T, want, got map[string]string, fix string) {
	t.Helper()
	names := make([]string, 0, len(want)+len(got))
	for name := range want {
		names = append(names, name)
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	failed := false
	for _, name := range names {
		w, inWant := want[name]
		g, inGot := got[name]
		switch {
		case !inGot:
			t.Errorf("%s: expected but not generated", name)
		case !inWant:
			t.Errorf("%s: generated but not expected:\n%s", name, head(g, 40))
		case w != g:
			t.Errorf("%s differs (-want +got):\n%s", name, lineDiff(w, g))
		default:
			continue
		}
		failed = true
	}
	if failed {
		t.Logf("if the new output is right, update the expected files with\n\t%s", fix)
	}
}

// head returns the first n lines of s.
func head(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) <= n {
		return s
	}
	return fmt.Sprintf("%s... and %d more lines\n", strings.Join(lines[:n], ""), len(lines)-n)
}

// writeExpected makes the case expect what the generator answered now.
func writeExpected(t *testing.T, goldenDir, errorFile string, genErr *string, files map[string]string) {
	t.Helper()
	if err := os.RemoveAll(goldenDir); err != nil {
		t.Fatal(err)
	}
	if genErr != nil {
		if err := os.WriteFile(errorFile, []byte(*genErr+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.Remove(errorFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if len(files) == 0 {
		files = map[string]string{golden.KeepFile: ""}
	}
	writeFiles(t, goldenDir, files)
}

// writeFiles writes files, by slash-separated name, under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// diffContext is the number of unchanged lines shown around a change.
const diffContext = 3

// lineDiff returns a unified-style line diff from want to got.
func lineDiff(want, got string) string {
	a, b := splitLines(want), splitLines(got)

	// Lines shared at the start and the end need no search.
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	var script []edit
	for _, s := range a[:pre] {
		script = append(script, edit{op: ' ', text: s})
	}
	script = append(script, editScript(a[pre:len(a)-suf], b[pre:len(b)-suf])...)
	for _, s := range a[len(a)-suf:] {
		script = append(script, edit{op: ' ', text: s})
	}

	// Number the lines, then print each run of changes with diffContext
	// unchanged lines around it. Runs closer than twice that share a hunk.
	wantLine, gotLine := 1, 1
	for i := range script {
		script[i].wantLine, script[i].gotLine = wantLine, gotLine
		if script[i].op != '+' {
			wantLine++
		}
		if script[i].op != '-' {
			gotLine++
		}
	}
	var out strings.Builder
	for i := 0; i < len(script); i++ {
		if script[i].op == ' ' {
			continue
		}
		last := i
		for j := i + 1; j < len(script) && j <= last+2*diffContext; j++ {
			if script[j].op != ' ' {
				last = j
			}
		}
		start, stop := max(0, i-diffContext), min(len(script), last+1+diffContext)
		fmt.Fprintf(&out, "@@ want line %d, got line %d @@\n", script[start].wantLine, script[start].gotLine)
		for _, e := range script[start:stop] {
			fmt.Fprintf(&out, "%c%s\n", e.op, e.text)
		}
		i = stop - 1
	}
	return out.String()
}

// splitLines splits s into lines without their newlines, marking a last line
// that has none.
func splitLines(s string) []string {
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		if text, ok := strings.CutSuffix(l, "\n"); ok {
			lines[i] = text
		} else {
			lines[i] = l + " ⟨no newline at end⟩"
		}
	}
	return lines
}

// edit is one line of a diff.
type edit struct {
	op                byte // ' ' kept, '-' only in want, '+' only in got
	text              string
	wantLine, gotLine int // where the line is, or would be, in want and got
}

// editScript turns a into b with the fewest deletions and insertions, from a
// longest-common-subsequence table. Inputs too large for the table get the
// plain answer: delete all of a, insert all of b.
func editScript(a, b []string) []edit {
	var script []edit
	if len(a)*len(b) > 1<<24 {
		for _, s := range a {
			script = append(script, edit{op: '-', text: s})
		}
		for _, s := range b {
			script = append(script, edit{op: '+', text: s})
		}
		return script
	}
	// lcs[i][j] is the length of the longest common subsequence of a[i:] and b[j:].
	lcs := make([][]int32, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int32, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			script = append(script, edit{op: ' ', text: a[i]})
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			script = append(script, edit{op: '-', text: a[i]})
			i++
		default:
			script = append(script, edit{op: '+', text: b[j]})
			j++
		}
	}
	return script
}
