// Package templates holds the text/template files that protoc-gen-httpbridge
// executes into each generated file: *.go.tmpl for Go, *.py.tmpl for
// Python. They are plain code with names substituted; the logic that
// chooses what to print lives in internal/generator.
package templates

import "embed"

// FS holds every template of this folder.
//
//go:embed *.go.tmpl *.py.tmpl
var FS embed.FS
