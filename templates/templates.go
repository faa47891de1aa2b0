// Package templates holds the text/template files that protoc-gen-httpbridge
// executes into each generated file. They are plain Go with names
// substituted; the logic that chooses what to print lives in
// internal/generator.
package templates

import "embed"

// FS holds every *.go.tmpl file of this folder.
//
//go:embed *.go.tmpl
var FS embed.FS
