package generator

import (
	"fmt"
	"go/token"
	"strconv"
	"strings"
)

// defaultChunkSize is the largest body chunk the generated code sends: 64 KiB,
// the size the Mattermost contract documents.
const defaultChunkSize = 64 << 10

// maxChunkSize keeps a configured chunk comfortably below grpc-go's default
// 4 MiB receive limit, so a peer with default options can read every message.
const maxChunkSize = 4<<20 - 64<<10

// emitKind selects which halves of the bridge are generated.
type emitKind string

const (
	emitHost   emitKind = "host"
	emitPlugin emitKind = "plugin"
	emitBoth   emitKind = "both"
)

// langKind selects the language of the generated code.
type langKind string

const (
	langGo     langKind = "go"
	langPython langKind = "python"
)

// pyImportStyle selects how a lang=python module imports the modules of
// .proto files (_pb2, _pb2_grpc and _httpbridge): see pyImportStatement.
type pyImportStyle string

const (
	pyAbsolute pyImportStyle = "absolute"
	pyRelative pyImportStyle = "relative"
)

// config holds the plugin parameters that are ours; protogen handles the rest
// (paths=, module=, M...).
type config struct {
	chunkSize int
	emit      emitKind
	lang      langKind
	// packageSuffix, when set, puts the bridge in a package of its own
	// beside the messages' package; see layout.
	packageSuffix string
	// pyImports and pyPackage say how lang=python modules import the
	// modules of .proto files: absolutely, under the package pyPackage
	// when set, or relatively.
	pyImports pyImportStyle
	pyPackage string

	// given holds the parameters set so far: a second value for one of
	// them is more likely a mistake in a long option list than an intent.
	given map[string]bool
}

func defaultConfig() *config {
	return &config{chunkSize: defaultChunkSize, emit: emitBoth, lang: langGo, pyImports: pyAbsolute}
}

func (c *config) host() bool   { return c.emit != emitPlugin }
func (c *config) plugin() bool { return c.emit != emitHost }

// set is protogen's ParamFunc: it is called once for each name=value pair that
// protogen does not handle itself.
func (c *config) set(name, value string) error {
	if c.given[name] {
		return fmt.Errorf("parameter %s is given twice; give it once", name)
	}
	if c.given == nil {
		c.given = map[string]bool{}
	}
	c.given[name] = true
	switch name {
	case "chunk_size":
		n, err := strconv.Atoi(value)
		if err != nil || n <= 0 || n > maxChunkSize {
			return fmt.Errorf("parameter chunk_size=%q: want a whole number of bytes from 1 to %d", value, maxChunkSize)
		}
		c.chunkSize = n
	case "emit":
		switch k := emitKind(value); k {
		case emitHost, emitPlugin, emitBoth:
			c.emit = k
		default:
			return fmt.Errorf("parameter emit=%q: want host, plugin or both", value)
		}
	case "lang":
		switch k := langKind(value); k {
		case langGo, langPython:
			c.lang = k
		default:
			return fmt.Errorf("parameter lang=%q: want go or python", value)
		}
	case "package_suffix":
		// The suffix ends a package name, so it may hold what an identifier
		// holds after its first letter.
		if value != "" && !token.IsIdentifier("p"+value) {
			return fmt.Errorf("parameter package_suffix=%q: want letters, digits and underscores, as in package_suffix=httpbridge", value)
		}
		c.packageSuffix = value
	case "python_imports":
		switch k := pyImportStyle(value); k {
		case pyAbsolute, pyRelative:
			c.pyImports = k
		default:
			return fmt.Errorf("parameter python_imports=%q: want absolute or relative", value)
		}
	case "python_package":
		if err := checkPyPackage(value); err != nil {
			return err
		}
		c.pyPackage = value
	default:
		return fmt.Errorf("unknown parameter %q (known: chunk_size, emit, lang, package_suffix, python_imports, python_package, and protogen's paths, module, M, annotate_code, default_api_level, apilevelM)", name)
	}
	return nil
}

// check reports parameters that do not go together; set sees them one at a
// time.
func (c *config) check() error {
	if c.lang != langPython {
		// The Python parameters would be ignored, which hides a mistake
		// such as a lang=python left out of a second buf template.
		for _, p := range []struct{ name, value string }{{"python_imports", string(c.pyImports)}, {"python_package", c.pyPackage}} {
			if c.given[p.name] {
				return fmt.Errorf("parameter %s=%q: it sets how lang=python modules import each other, and this run generates Go; give lang=python or leave it out", p.name, p.value)
			}
		}
		return nil
	}
	// Python gets the plugin side only: hosts are Go servers.
	if c.emit == emitHost {
		return fmt.Errorf("parameter emit=host: lang=python generates the plugin side only; leave emit out or give emit=plugin")
	}
	if c.packageSuffix != "" {
		return fmt.Errorf("parameter package_suffix=%q: it places Go packages, and lang=python writes Python modules beside the _pb2.py files; leave it out", c.packageSuffix)
	}
	if c.pyImports == pyRelative && c.pyPackage != "" {
		return fmt.Errorf("parameter python_package=%q: it names the package of absolute imports, and python_imports=relative imports without naming it; give one of them", c.pyPackage)
	}
	return nil
}

// checkPyPackage reports a python_package that is not a dotted name of
// Python identifiers, which no import statement could name. Empty is none.
func checkPyPackage(value string) error {
	if value == "" {
		return nil
	}
	if strings.HasPrefix(value, ".") {
		return fmt.Errorf("parameter python_package=%q: want an absolute package name, as in python_package=mattermost_plugin.grpc; for relative imports give python_imports=relative instead", value)
	}
	for _, part := range strings.Split(value, ".") {
		if !isPyName(part) {
			return fmt.Errorf("parameter python_package=%q: want names of letters, digits and underscores, each not starting with a digit, joined by dots, as in python_package=mattermost_plugin.grpc", value)
		}
		if pyKeywords[part] {
			return fmt.Errorf("parameter python_package=%q: %s is a Python keyword, which cannot name a package", value, part)
		}
	}
	return nil
}

// isPyName reports whether s is an ASCII Python identifier, as protoc's
// module names are.
func isPyName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}
