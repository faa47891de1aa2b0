package toolchain_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/httpbridge/httpbridge/internal/bridgetest"
	"github.com/httpbridge/httpbridge/internal/generator"
)

// TestVersionInEveryBuildMode builds protoc-gen-httpbridge each way README.md
// tells users to, and checks that --version names generator.Version, the
// version every generated file names, in all of them. (go install of a
// published tag cannot run here; protoc-gen-httpbridge's TestVersionLine
// covers the module version it stamps.)
func TestVersionInEveryBuildMode(t *testing.T) {
	t.Parallel()
	goCmd := bridgetest.LookPath(t, "go")
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	const pkg = "github.com/httpbridge/httpbridge/protoc-gen-httpbridge"
	want := regexp.MustCompile(`^protoc-gen-httpbridge ` + regexp.QuoteMeta(generator.Version) + `( \(commit [0-9a-f]{12}(, modified)?\))?\n$`)
	check := func(mode string, out []byte) {
		t.Helper()
		if !want.Match(out) {
			t.Errorf("%s: --version printed %q, want a match for %s", mode, out, want)
		}
	}
	// The module cache already holds every dependency: the go command must
	// not look anything up.
	offline := []string{"GOPROXY=off", "GOFLAGS=-mod=mod"}

	bin := t.TempDir()
	run(t, root, offline, goCmd, "build", "-o", bin+string(filepath.Separator), "./protoc-gen-httpbridge")
	check("go build", run(t, "", nil, filepath.Join(bin, "protoc-gen-httpbridge"+exeSuffix), "--version"))

	check("go run", run(t, root, offline, goCmd, "run", "./protoc-gen-httpbridge", "--version"))

	// A consumer module that points at the clone with a replace directive.
	consumer := filepath.Join(t.TempDir(), "consumer")
	if err := os.MkdirAll(consumer, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append([]string{"GOWORK=off"}, offline...)
	run(t, consumer, env, goCmd, "mod", "init", "example.com/consumer")
	alignModule(t, goCmd, consumer)
	// README.md's commands, with go get in place of go mod tidy, which
	// would look up the test dependencies of dependencies.
	run(t, consumer, env, goCmd, "mod", "edit",
		"-require=github.com/httpbridge/httpbridge@v0.0.0",
		"-replace=github.com/httpbridge/httpbridge="+root,
		"-tool="+pkg)
	run(t, consumer, env, goCmd, "get", pkg)
	check("go tool with a replace directive", run(t, consumer, env, goCmd, "tool", "protoc-gen-httpbridge", "--version"))

	// A workspace that uses the clone and a consumer module.
	dir := t.TempDir()
	consumer = filepath.Join(dir, "consumer")
	if err := os.MkdirAll(consumer, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, consumer, env, goCmd, "mod", "init", "example.com/consumer")
	run(t, dir, env, goCmd, "work", "init", "./consumer", root)
	env = append([]string{"GOWORK=" + filepath.Join(dir, "go.work")}, offline...)
	run(t, consumer, env, goCmd, "mod", "edit", "-tool", pkg)
	check("go tool in a workspace", run(t, consumer, env, goCmd, "tool", "protoc-gen-httpbridge", "--version"))
}
