package generator

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"
	"unicode"

	"github.com/httpbridge/httpbridge/templates"
	"google.golang.org/protobuf/compiler/protogen"
)

// pyFileView is what the "pyfile" template prints: the Python module of one
// .proto file, <file>_httpbridge.py, beside protoc's <file>_pb2.py.
type pyFileView struct {
	Version  string
	Source   string
	Stdlib   []string // modules of the standard library imported, sorted
	Typing   []string // names imported from typing, sorted
	Imports  []string // import statements of generated modules, sorted
	Exports  []string // __all__, sorted
	Pairs    []*pyPairView
	Services []*pyServiceView
}

// pyPairView is what the "pypair" template prints.
type pyPairView struct {
	Name      string // ServeHTTP
	Const     string // SERVE_HTTP, the prefix of module constants
	ChunkSize string
	Request   string // the request message class, qualified: alias.ServeHTTPRequest
	Response  string // the response message class, qualified: alias.ServeHTTPResponse

	// Optional fields of the request init and the response.
	ProtoMajor, ProtoMinor, Host, RemoteAddr, RequestURI, ContentLength, Flush bool
}

// pyServiceView is what the "pyservice" template prints: a servicer that
// serves an app over the service's bridged rpcs, and a server that runs it.
type pyServiceView struct {
	Name     string // PluginHooks
	Servicer string // the generated servicer base class, qualified
	Register string // the function that adds a servicer to a server, qualified
	Serve    string // serve_plugin_hooks
	Run      string // run_plugin_hooks
	Methods  []*pyMethodView
}

type pyMethodView struct {
	Name string // ServeHTTP, the servicer method
	Attr string // serve_http, the servicer attribute holding its facade
	ASGI string // the facade classes, qualified
	WSGI string
	// Threaded is the facade of the synchronous servicer, for WSGI apps
	// on grpcio's synchronous server.
	Threaded string
	Doc      string // the method's docstring, indented for the method body
}

// renderPython writes <file>_httpbridge.py for fm; it writes nothing when
// fm has nothing to bridge.
func renderPython(plugin *protogen.Plugin, fm *fileModel, cfg *config) error {
	if len(fm.pairs) == 0 && len(fm.bindings) == 0 {
		return nil
	}
	f := fm.source
	source := f.Desc.Path()
	imports := map[string]bool{}
	// module imports the Python module of a .proto file (suffix "_pb2",
	// "_pb2_grpc" or "_httpbridge") as protoc's Python generators do, and
	// returns its alias.
	self := pyModuleName(source, "_httpbridge")
	module := func(file, suffix string) string {
		name, alias := pyModule(file, suffix)
		if name == self {
			return ""
		}
		imports[pyImportStatement(self, name, alias, cfg)] = true
		return alias + "."
	}

	view := &pyFileView{Version: Version, Source: source}
	for _, p := range fm.pairs {
		req, res := p.request, p.response
		view.Pairs = append(view.Pairs, &pyPairView{
			Name:          p.prefix,
			Const:         strings.ToUpper(snakeCase(p.prefix)),
			ChunkSize:     chunkSizeLiteral(cfg.chunkSize),
			Request:       module(req.message.Desc.ParentFile().Path(), "_pb2") + pyClassPath(req.message),
			Response:      module(res.message.Desc.ParentFile().Path(), "_pb2") + pyClassPath(res.message),
			ProtoMajor:    req.protoMajor != nil,
			ProtoMinor:    req.protoMinor != nil,
			Host:          req.host != nil,
			RemoteAddr:    req.remoteAddr != nil,
			RequestURI:    req.requestURI != nil,
			ContentLength: req.contentLength != nil,
			Flush:         res.flush != nil,
		})
		view.Exports = append(view.Exports, p.prefix+"ASGI", p.prefix+"WSGI", p.prefix+"ThreadedWSGI", strings.ToUpper(snakeCase(p.prefix))+"_CHUNK_SIZE", strings.ToUpper(snakeCase(p.prefix))+"_MAX_CHUNK_SIZE", strings.ToUpper(snakeCase(p.prefix))+"_UPGRADE_KEY")
	}
	var services []*pyServiceView
	byService := map[*protogen.Service]*pyServiceView{}
	for _, b := range fm.bindings {
		s := byService[b.service]
		if s == nil {
			grpcModule := module(source, "_pb2_grpc")
			s = &pyServiceView{
				Name:     string(b.service.Desc.Name()),
				Servicer: grpcModule + string(b.service.Desc.Name()) + "Servicer",
				Register: grpcModule + "add_" + string(b.service.Desc.Name()) + "Servicer_to_server",
				Serve:    "serve_" + snakeCase(string(b.service.Desc.Name())),
				Run:      "run_" + snakeCase(string(b.service.Desc.Name())),
			}
			byService[b.service] = s
			services = append(services, s)
			view.Exports = append(view.Exports, s.Name+"Bridge", s.Name+"ThreadedBridge", s.Serve, s.Run)
		}
		if err := checkPyServicerNames(source, b); err != nil {
			return err
		}
		bridge := module(b.pairFile, "_httpbridge")
		s.Methods = append(s.Methods, &pyMethodView{
			Name:     string(b.method.Desc.Name()),
			Attr:     pyIdentifier(snakeCase(string(b.method.Desc.Name()))),
			ASGI:     bridge + b.prefix + "ASGI",
			WSGI:     bridge + b.prefix + "WSGI",
			Threaded: bridge + b.prefix + "ThreadedWSGI",
			Doc:      pyDocstring(b.method.Comments.Leading, "Serves the app over one "+string(b.method.Desc.Name())+" stream.", "        "),
		})
	}
	view.Services = services
	if len(view.Pairs) > 0 {
		view.Exports = append(view.Exports, "ASGIApp", "WSGIApp")
	}
	stdlib, typing := map[string]bool{}, map[string]bool{}
	add := func(set map[string]bool, names ...string) {
		for _, name := range names {
			set[name] = true
		}
	}
	if len(view.Pairs) > 0 {
		add(stdlib, "asyncio", "concurrent.futures", "enum", "logging", "re", "sys", "threading", "urllib.parse")
		add(typing, "Any", "Awaitable", "Callable", "Coroutine", "Dict", "Iterable", "Iterator", "List", "MutableMapping", "NamedTuple", "NoReturn", "Optional", "Protocol", "Sequence", "Set", "TYPE_CHECKING", "Tuple", "Union")
	}
	if len(view.Services) > 0 {
		add(stdlib, "asyncio", "concurrent.futures", "ctypes", "functools", "importlib", "inspect", "os", "signal", "sys", "threading")
		add(typing, "Any", "Awaitable", "Callable", "Coroutine", "Dict", "Iterator", "List", "Optional", "Sequence", "Tuple")
	}
	view.Stdlib, view.Typing = slices.Sorted(maps.Keys(stdlib)), slices.Sorted(maps.Keys(typing))
	view.Imports = slices.Sorted(maps.Keys(imports))
	slices.Sort(view.Exports)

	tmpl, err := template.New("").Option("missingkey=error").ParseFS(templates.FS, "*.py.tmpl")
	if err != nil {
		return err
	}
	g := plugin.NewGeneratedFile(pyModulePath(source, "_httpbridge"), "")
	if err := tmpl.ExecuteTemplate(g, "pyfile", view); err != nil {
		return fmt.Errorf("%s: rendering Python: %w", source, err)
	}
	return nil
}

// pyModulePath is the file protoc's Python generators write for a .proto
// file, with suffix: a/b/c.proto gives a/b/c_pb2.py for "_pb2", and
// a/b-c.proto a/b_c_pb2.py.
func pyModulePath(file, suffix string) string {
	return strings.ReplaceAll(pyModuleName(file, suffix), ".", "/") + ".py"
}

// pyModuleName is the dotted module name of pyModulePath; protoc turns "-"
// into "_" there.
func pyModuleName(file, suffix string) string {
	stem := strings.ReplaceAll(strings.TrimSuffix(file, ".proto"), "-", "_")
	return strings.ReplaceAll(stem, "/", ".") + suffix
}

// pyModule returns the module of file with suffix and the alias protoc's
// generators import it under ("_" doubled, "." spelled "_dot_"). The alias
// is the same whatever the import statement, so that only the statement
// depends on python_imports and python_package.
func pyModule(file, suffix string) (name, alias string) {
	name = pyModuleName(file, suffix)
	return name, strings.ReplaceAll(strings.ReplaceAll(name, "_", "__"), ".", "_dot_")
}

// pyImportStatement is the statement with which module importer imports
// module name under alias; both names are relative to the output root.
//
// With python_imports=absolute, the default, it is protoc's: import c_pb2
// for a module at the root, from a.b import c_pb2 in a package. A
// python_package prefixes the package (from p.a.b import c_pb2), for an
// output root that is package p. With python_imports=relative, the root is
// a package of any name, and the statement climbs from the importer's
// package to name's: from . import c_pb2 beside it, from ..x import c_pb2
// from a/b/ to a/x/.
func pyImportStatement(importer, name, alias string, cfg *config) string {
	pkg, base := pySplit(name)
	switch {
	case cfg.pyImports == pyRelative:
		from, _ := pySplit(importer)
		have, want := pyParts(from), pyParts(pkg)
		common := 0
		for common < len(have) && common < len(want) && have[common] == want[common] {
			common++
		}
		pkg = strings.Repeat(".", 1+len(have)-common) + strings.Join(want[common:], ".")
	case cfg.pyPackage != "":
		pkg = strings.Join(append(pyParts(cfg.pyPackage), pyParts(pkg)...), ".")
	}
	if pkg == "" {
		return "import " + base + " as " + alias
	}
	return "from " + pkg + " import " + base + " as " + alias
}

// pySplit splits a dotted module name into its package, empty at the root,
// and its last name.
func pySplit(name string) (pkg, base string) {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "", name
}

// pyParts returns the names of a dotted package name, none for "".
func pyParts(pkg string) []string {
	if pkg == "" {
		return nil
	}
	return strings.Split(pkg, ".")
}

// pyClassPath is the attribute path of m's class in its _pb2 module: nested
// messages are attributes of their parent's class.
func pyClassPath(m *protogen.Message) string {
	full := string(m.Desc.FullName())
	if pkg := string(m.Desc.ParentFile().Package()); pkg != "" {
		full = strings.TrimPrefix(full, pkg+".")
	}
	return full
}

// snakeCase spells a CamelCase name in snake_case, keeping runs of capitals
// together: ServeHTTP gives serve_http, HTTPTunnel http_tunnel.
func snakeCase(name string) string {
	r := []rune(name)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 {
			prev := r[i-1]
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return strings.ReplaceAll(b.String(), "__", "_")
}

// pyDocstring turns leading proto comments into the text of a docstring,
// each line indented; fallback is used when there are none. Backslashes
// and quotes are escaped so that no comment ends the string early.
func pyDocstring(c protogen.Comments, fallback, indent string) string {
	text := strings.TrimSpace(c.String())
	var lines []string
	if text == "" {
		lines = []string{fallback}
	} else {
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimPrefix(strings.TrimPrefix(line, "//"), " ")
			line = strings.ReplaceAll(line, `\`, `\\`)
			line = strings.ReplaceAll(line, `"""`, `\"\"\"`)
			lines = append(lines, strings.TrimRight(line, " \t"))
		}
	}
	var b strings.Builder
	b.WriteString(`"""` + lines[0])
	if len(lines) == 1 {
		if strings.HasSuffix(lines[0], `"`) {
			b.WriteString("\n" + indent)
		}
		b.WriteString(`"""`)
		return b.String()
	}
	for _, line := range lines[1:] {
		b.WriteString("\n")
		if line != "" {
			b.WriteString(indent + line)
		}
	}
	b.WriteString("\n" + indent + `"""`)
	return b.String()
}

// pyKeywords are Python's reserved words, which no attribute may be named.
var pyKeywords = map[string]bool{
	"and": true, "as": true, "assert": true, "async": true,
	"await": true, "break": true, "class": true, "continue": true, "def": true, "del": true, "elif": true,
	"else": true, "except": true, "finally": true, "for": true, "from": true, "global": true, "if": true,
	"import": true, "in": true, "is": true, "lambda": true, "nonlocal": true, "not": true, "or": true,
	"pass": true, "raise": true, "return": true, "try": true, "while": true, "with": true, "yield": true,
	"False": true, "None": true, "True": true,
}

// pyIdentifier makes a snake_case name safe as an attribute: a reserved
// word gets a trailing underscore, as PEP 8 suggests (pass_).
func pyIdentifier(name string) string {
	if pyKeywords[name] {
		return name + "_"
	}
	return name
}

// pyServicerNames are the names the generated servicer defines besides its
// rpc methods.
var pyServicerNames = []string{"startup", "shutdown", "_bridges"}

// checkPyServicerNames reports a bridged rpc whose servicer attribute
// (its snake_case name) or whose own name would take the place of another
// name of the generated servicer, which Python would do silently.
func checkPyServicerNames(file string, b *rpcBinding) error {
	attr := pyIdentifier(snakeCase(string(b.method.Desc.Name())))
	taken := slices.Clone(pyServicerNames)
	for _, m := range b.service.Methods {
		if m != b.method {
			taken = append(taken, string(m.Desc.Name()))
		}
	}
	switch {
	case slices.Contains(pyServicerNames, string(b.method.Desc.Name())):
		return fmt.Errorf("%s: rpc %s: with lang=python, the servicer %sBridge has a method %s of its own: rename the rpc",
			file, b.method.Desc.FullName(), b.service.Desc.Name(), b.method.Desc.Name())
	case slices.Contains(taken, attr):
		return fmt.Errorf("%s: rpc %s: with lang=python, the servicer %sBridge keeps its facade in the attribute %s, which is also the name of a method: rename the rpc",
			file, b.method.Desc.FullName(), b.service.Desc.Name(), attr)
	}
	return nil
}
