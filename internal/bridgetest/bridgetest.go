// Package bridgetest is the harness of the tests of the generated
// HTTP-over-gRPC bridge in gen/mattermost/pluginapi/v1. It is used only by
// tests and exercises the generated code through its public API.
//
// It provides:
//
//   - a plugin gRPC server, serving either the generated facade around an
//     [http.Handler] or a scripted fake, reachable over bufconn or loopback
//     TCP ([StartPlugin], [StartFacade], [ScriptedPlugin]);
//   - the generated host mounted in an [httptest.Server] over HTTP/1.1 or
//     HTTP/2 with TLS ([NewEnv]);
//   - a scripted host that drives the plugin's stream directly
//     ([ScriptedHost], [OpenStream]);
//   - message builders and framing checks for both directions;
//   - a goroutine leak check, a log buffer and bounded waits;
//   - the tools tests need, found or skipped alike across packages
//     ([LookPath], [RequirePython]), and protoc's Python output laid out
//     in a package as Mattermost's Python SDK has it ([PythonPackage]).
//
// Every helper that starts something registers its shutdown with t.Cleanup,
// so a test only has to call [LeakCheck] first.
package bridgetest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"log"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const (
	// ExchangeTimeout bounds one whole HTTP exchange in a test: a broken
	// bridge makes the test fail after this long instead of hanging.
	ExchangeTimeout = 10 * time.Second

	// Promptly is the bound for what the spec wants "within bounds" (1 s),
	// with slack for -race on a loaded machine.
	Promptly = 2 * time.Second

	// ChunkMax is the largest body chunk either side may send by default
	// (64 KiB).
	ChunkMax = 64 << 10

	// leakGrace is how long LeakCheck waits for goroutines to end.
	leakGrace = 3 * time.Second
)

// LeakCheck must be the first call of a test (or subtest) that starts
// servers: t.Cleanup runs the last registered function first, so the check
// runs after the servers and clients started later have been closed.
//
// Goroutines alive when LeakCheck is called are ignored, so a leak is
// reported by the test that caused it and not by every later one. Extra
// options (such as [goleak.IgnoreTopFunction]) are passed to goleak.
func LeakCheck(t testing.TB, opts ...goleak.Option) {
	t.Helper()
	opts = append([]goleak.Option{goleak.IgnoreCurrent()}, opts...)
	t.Cleanup(func() {
		deadline := time.Now().Add(leakGrace)
		for {
			err := goleak.Find(opts...)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines did not return to baseline within %v: %v", leakGrace, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// LogBuffer collects log output safely across goroutines, also after a test
// ended (unlike t.Log). The zero value is ready to use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Slog returns a text logger at debug level that writes to l, for the
// Logger of the generated host and facade.
func (l *LogBuffer) Slog() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Log returns a standard logger that writes to l, for the ErrorLog of an
// [net/http.Server].
func (l *LogBuffer) Log() *log.Logger {
	return log.New(l, "", 0)
}

// CloseBounded runs f (a Close or Stop) and fails the test instead of
// hanging when f does not return within 5 s, which happens when a handler is
// stuck.
func CloseBounded(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("%s did not close within 5s (a handler is stuck)", what)
	}
}

// WaitFor receives from ch within d. On timeout it reports an error naming
// what and returns false; the caller decides whether to stop the test.
func WaitFor[T any](t testing.TB, ch <-chan T, d time.Duration, what string) (T, bool) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v, true
	case <-timer.C:
		var zero T
		t.Errorf("timed out after %v waiting for %s", d, what)
		return zero, false
	}
}

// Eventually polls cond every few milliseconds until it is true or d has
// passed, and reports whether it became true.
func Eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// RandomBytes returns n random bytes.
func RandomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// FirstDiff describes where two byte slices differ, for readable failures
// with large bodies.
func FirstDiff(got, want []byte) string {
	n := min(len(got), len(want))
	for i := range n {
		if got[i] != want[i] {
			return fmt.Sprintf("got %d bytes, want %d; first difference at offset %d", len(got), len(want), i)
		}
	}
	if len(got) == len(want) {
		return fmt.Sprintf("equal (%d bytes)", len(got))
	}
	return fmt.Sprintf("got %d bytes, want %d; one is a prefix of the other", len(got), len(want))
}
