//go:build !unix

package bench

import "time"

// usage is not measured here.
func usage() (cpu time.Duration, switches int64) { return 0, 0 }
