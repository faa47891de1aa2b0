// Package conformance checks the generated bridge in gen/ against the
// behavioural specification, through the generated package's public API
// only.
package conformance

import (
	"testing"

	"go.uber.org/goleak"

	_ "github.com/httpbridge/httpbridge/internal/golden" // accept -update
)

// TestMain fails the run if a goroutine outlives every test; each test also
// checks its own goroutines with bridgetest.LeakCheck.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
