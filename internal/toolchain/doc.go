// Package toolchain tests protoc-gen-httpbridge the way its users run it: as
// a binary that protoc starts, and that buf starts in a module of their own
// (testdata/consumer), whose generated code is then compiled, tested and
// run. It also checks that the programs README.md shows are that module's.
// It has no code of its own.
package toolchain
