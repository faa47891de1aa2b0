// Package toolchain tests protoc-gen-httpbridge the way its users run it: as
// a binary that protoc starts, and that buf starts in a module of their own
// (testdata/consumer), whose generated code is then compiled, tested and
// run. It also checks the documentation against the repository: that the
// programs and protos README.md and docs/ show are the tested ones, that
// their relative links resolve, and that --version reports the generator's
// version in every way the command can be built. It has no code of its own.
package toolchain
