// Package golden holds the -update flag of the module's tests. Every test
// package imports it, so that `go test ./... -update` is accepted everywhere
// and rewrites the golden files of the packages that have some.
package golden

import "flag"

// Update asks tests to rewrite their golden files with what the code produces
// now, instead of comparing.
var Update = flag.Bool("update", false, "rewrite golden files under testdata/ with the current output")
