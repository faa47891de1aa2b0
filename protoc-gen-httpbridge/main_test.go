package main

import (
	"bytes"
	"errors"
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

func TestVersion(t *testing.T) {
	code, stdout, stderr := runForTest(t, nil, "--version")
	if code != 0 || stderr != "" {
		t.Errorf("--version: exit code %d, stderr %q; want 0 and nothing", code, stderr)
	}
	if want := "protoc-gen-httpbridge " + currentVersion() + "\n"; stdout != want {
		t.Errorf("--version printed %q, want %q", stdout, want)
	}
	// Depending on -buildvcs, the test binary carries a pseudo-version of
	// the module or none, and then generator.Version shows.
	if v := currentVersion(); !strings.HasPrefix(v, "v") {
		t.Errorf("currentVersion() = %q, want a version starting with v", v)
	}
}

func TestVersionFromLinker(t *testing.T) {
	defer func(saved string) { version = saved }(version)
	version = "v9.8.7"
	code, stdout, _ := runForTest(t, nil, "--version")
	if want := "protoc-gen-httpbridge v9.8.7\n"; code != 0 || stdout != want {
		t.Errorf("--version with -X main.version: exit code %d, printed %q; want 0 and %q", code, stdout, want)
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
		if code != 1 || stdout != "" || stderr != usage {
			t.Errorf("%q: exit code %d, stdout %q, stderr %q; want 1, nothing and the usage", args, code, stdout, stderr)
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
