package bridgetest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// Python is the interpreter of the tests that run Python: Debian's, which
// sees Debian's python3-* modules (the python3 first on PATH may not).
const Python = "/usr/bin/python3"

// LookPath finds a command the test needs. Without it the test is skipped,
// unless the environment sets CI: CI installs every tool the tests use, so
// there a missing one is a broken setup and fails the test.
func LookPath(tb testing.TB, name string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missing(tb, name, err)
	}
	return path
}

// pythonChecks holds, per import statement, the check RequirePython ran.
var pythonChecks sync.Map // string → func() error

// RequirePython skips the test unless [Python] can import every module, or
// fails it when CI is set, as [LookPath] does. Each list of modules is
// checked once per test binary.
func RequirePython(tb testing.TB, modules ...string) {
	tb.Helper()
	script := "import " + strings.Join(modules, ", ")
	check, _ := pythonChecks.LoadOrStore(script, sync.OnceValue(func() error {
		cmd := exec.Command(Python, "-c", script)
		// Outside the tree: importing hypothesis writes .hypothesis/ in the
		// working directory.
		cmd.Dir = os.TempDir()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s -c %q: %v: %s", Python, script, err, bytes.TrimSpace(out))
		}
		return nil
	}))
	if err := check.(func() error)(); err != nil {
		missing(tb, Python+" with "+strings.Join(modules, ", ")+" (Debian's python3-* packages)", err)
	}
}

func missing(tb testing.TB, what string, err error) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("%s is needed in CI: %v", what, err)
	}
	tb.Skipf("%s not found: %v", what, err)
}
