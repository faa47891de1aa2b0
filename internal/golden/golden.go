// Package golden holds the -update flag of the module's tests. Every test
// package imports it, so that `go test ./... -update` is accepted everywhere
// and rewrites the golden files of the packages that have some.
package golden

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// Update asks tests to rewrite their golden files with what the code produces
// now, instead of comparing.
var Update = flag.Bool("update", false, "rewrite golden files under testdata/ with the current output")

// KeepFile holds an otherwise empty golden folder in git; ReadTree skips it.
const KeepFile = ".keep"

// ReadTree returns the files under dir by slash-separated relative name,
// leaving out KeepFile markers. A missing dir holds no files.
func ReadTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	files := make(map[string]string)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == dir {
			return filepath.SkipAll
		}
		if err != nil || d.IsDir() || d.Name() == KeepFile {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
