//go:build race

package conformance

// raceEnabled reports whether the race detector is on: load tests shrink.
const raceEnabled = true
