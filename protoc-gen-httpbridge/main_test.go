package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/httpbridge/httpbridge/internal/generator"
	_ "github.com/httpbridge/httpbridge/internal/golden" // accept -update
)

// runForTest runs the program with the given arguments and standard input.
func runForTest(t *testing.T, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, bytes.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestVersion checks that --version names the version every generated file
// names, generator.Version, followed at most by the commit of the build.
func TestVersion(t *testing.T) {
	code, stdout, stderr := runForTest(t, nil, "--version")
	if code != 0 || stderr != "" {
		t.Errorf("--version: exit code %d, stderr %q; want 0 and nothing", code, stderr)
	}
	want := regexp.MustCompile(`^protoc-gen-httpbridge ` + regexp.QuoteMeta(generator.Version) + `( \(commit [0-9a-f]{12}(, modified)?\))?\n$`)
	if !want.MatchString(stdout) {
		t.Errorf("--version printed %q, want a match for %s", stdout, want)
	}
}

// TestVersionLine checks the version in each way the binary can be built:
// the module version the go command stamps (v0.0.0 under a replace
// directive, a pseudo-version, a tag) never takes the generator's place.
func TestVersionLine(t *testing.T) {
	vcs := func(revision, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: revision}, {Key: "vcs.modified", Value: modified}}
	}
	const v = "protoc-gen-httpbridge " + generator.Version
	for _, c := range []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"no build info", nil, v},
		{"go run or go build without VCS", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, v},
		{"go tool with a replace directive", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-00010101000000-000000000000"}}, v},
		{"go install of a tag", &debug.BuildInfo{Main: debug.Module{Version: "v0.1.0"}}, v},
		{"go install of a later tag", &debug.BuildInfo{Main: debug.Module{Version: "v9.9.9"}}, v},
		{"go build in a clean clone", &debug.BuildInfo{Settings: vcs("c97f5eedeb9039feb77c13824e53485ed701b17e", "false")}, v + " (commit c97f5eedeb90)"},
		{"go build in a modified clone", &debug.BuildInfo{Settings: vcs("c97f5eedeb9039feb77c13824e53485ed701b17e", "true")}, v + " (commit c97f5eedeb90, modified)"},
		{"short revision", &debug.BuildInfo{Settings: vcs("abc123", "false")}, v + " (commit abc123)"},
	} {
		if got := versionLine(c.info); got != c.want {
			t.Errorf("%s: versionLine = %q, want %q", c.name, got, c.want)
		}
	}
}

// TestDocVersion checks that the package documentation, which cannot refer
// to generator.Version, names the same version to install.
func TestDocVersion(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if want := "protoc-gen-httpbridge@" + generator.Version + "\n"; !strings.Contains(string(src), want) {
		t.Errorf("the package documentation does not show go install …%s", strings.TrimSpace(want))
	}
	if strings.Contains(string(src), "@latest") {
		t.Error("the package documentation or usage says @latest, which fails while the module is unpublished")
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		code, stdout, stderr := runForTest(t, nil, arg)
		if code != 0 || stderr != "" {
			t.Errorf("%s: exit code %d, stderr %q; want 0 and nothing", arg, code, stderr)
		}
		if stdout != usage {
			t.Errorf("%s printed %q, want the usage", arg, stdout)
		}
	}
	for _, param := range []string{"chunk_size=", "default 65536", "emit=", "host, plugin or both", "paths="} {
		if !strings.Contains(usage, param) {
			t.Errorf("usage does not mention %q", param)
		}
	}
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"--bogus"},
		{"-version"},
		{"help"},
		{"--version", "--help"},
		{"--help", "extra"},
	} {
		code, stdout, stderr := runForTest(t, nil, args...)
		want := fmt.Sprintf("protoc-gen-httpbridge: unknown arguments %q\n\n%s", args, usage)
		if code != 1 || stdout != "" || stderr != want {
			t.Errorf("%q: exit code %d, stdout %q, stderr %q; want 1, nothing and %q", args, code, stdout, stderr, want)
		}
	}
}

// TestGenerate checks that the program answers a request exactly as
// generator.Generate does; what Generate answers is pinned by its golden
// tests.
func TestGenerate(t *testing.T) {
	for _, param := range []string{"", "emit=host", "emit=server"} {
		req := &pluginpb.CodeGeneratorRequest{Parameter: proto.String(param)}
		in, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runForTest(t, in)
		if code != 0 || stderr != "" {
			t.Errorf("parameter %q: exit code %d, stderr %q; want 0 and nothing", param, code, stderr)
		}
		got := &pluginpb.CodeGeneratorResponse{}
		if err := proto.Unmarshal([]byte(stdout), got); err != nil {
			t.Fatalf("parameter %q: the output is not a CodeGeneratorResponse: %v", param, err)
		}
		if want := generator.Generate(req); !proto.Equal(got, want) {
			t.Errorf("parameter %q: response\n%v\nwant\n%v", param, got, want)
		}
	}
}

func TestBadRequest(t *testing.T) {
	code, stdout, stderr := runForTest(t, []byte("\xff not a request"))
	if code != 1 || stdout != "" {
		t.Errorf("exit code %d, stdout %q; want 1 and nothing", code, stdout)
	}
	if want := "protoc-gen-httpbridge: decoding the request: "; !strings.HasPrefix(stderr, want) {
		t.Errorf("stderr %q, want it to start with %q", stderr, want)
	}
}

type failingIO struct{}

func (failingIO) Read([]byte) (int, error)  { return 0, errors.New("disk on fire") }
func (failingIO) Write([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestIOErrors(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(nil, failingIO{}, &stdout, &stderr); code != 1 {
		t.Errorf("failing stdin: exit code %d, want 1", code)
	}
	if want := "protoc-gen-httpbridge: reading the request: disk on fire\n"; stderr.String() != want {
		t.Errorf("failing stdin: stderr %q, want %q", stderr.String(), want)
	}

	stderr.Reset()
	if code := run(nil, strings.NewReader(""), failingIO{}, &stderr); code != 1 {
		t.Errorf("failing stdout: exit code %d, want 1", code)
	}
	if want := "protoc-gen-httpbridge: writing the response: disk on fire\n"; stderr.String() != want {
		t.Errorf("failing stdout: stderr %q, want %q", stderr.String(), want)
	}
}
