// Package conformance checks the generated bridge in gen/ against the
// behavioural specification, through the generated package's public API
// only.
package conformance

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	_ "github.com/httpbridge/httpbridge/internal/golden" // accept -update
)

// TestMain fails the run if a goroutine outlives every test; each test also
// checks its own goroutines with bridgetest.LeakCheck. With envWSChild set,
// the binary runs as a child of the WebSocket tests instead.
func TestMain(m *testing.M) {
	if mode := os.Getenv(envWSChild); mode != "" {
		if err := runWSChild(mode); err != nil {
			fmt.Fprintln(os.Stderr, "ws child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
