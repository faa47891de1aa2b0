package generator

import (
	"fmt"
	"go/token"
	"strconv"
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

// config holds the plugin parameters that are ours; protogen handles the rest
// (paths=, module=, M...).
type config struct {
	chunkSize int
	emit      emitKind
	lang      langKind
	// packageSuffix, when set, puts the bridge in a package of its own
	// beside the messages' package; see layout.
	packageSuffix string

	// given holds the parameters set so far: a second value for one of
	// them is more likely a mistake in a long option list than an intent.
	given map[string]bool
}

func defaultConfig() *config {
	return &config{chunkSize: defaultChunkSize, emit: emitBoth, lang: langGo}
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
	default:
		return fmt.Errorf("unknown parameter %q (known: chunk_size, emit, lang, package_suffix, and protogen's paths, module, M, annotate_code, default_api_level, apilevelM)", name)
	}
	return nil
}

// check reports parameters that do not go together; set sees them one at a
// time.
func (c *config) check() error {
	if c.lang != langPython {
		return nil
	}
	// Python gets the plugin side only: hosts are Go servers.
	if c.emit == emitHost {
		return fmt.Errorf("parameter emit=host: lang=python generates the plugin side only; leave emit out or give emit=plugin")
	}
	if c.packageSuffix != "" {
		return fmt.Errorf("parameter package_suffix=%q: it places Go packages, and lang=python writes Python modules beside the _pb2.py files; leave it out", c.packageSuffix)
	}
	return nil
}
