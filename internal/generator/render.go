package generator

import (
	"fmt"
	"strings"
	"text/template"
	"unicode"

	"github.com/httpbridge/httpbridge/templates"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/descriptorpb"
)

// imports maps the package names templates call, as in {{http "Request"}},
// to import paths. Everything generated code imports is listed here: the
// standard library, grpc and protobuf (which the messages need anyway),
// nothing else.
var imports = map[string]protogen.GoImportPath{
	"atomic":    "sync/atomic",
	"bufio":     "bufio",
	"bytes":     "bytes",
	"codes":     "google.golang.org/grpc/codes",
	"context":   "context",
	"encoding":  "google.golang.org/grpc/encoding",
	"errors":    "errors",
	"fmt":       "fmt",
	"grpc":      "google.golang.org/grpc",
	"http":      "net/http",
	"io":        "io",
	"mem":       "google.golang.org/grpc/mem",
	"metadata":  "google.golang.org/grpc/metadata",
	"net":       "net",
	"netip":     "net/netip",
	"os":        "os",
	"proto":     "google.golang.org/protobuf/proto",
	"protowire": "google.golang.org/protobuf/encoding/protowire",
	"runtime":   "runtime",
	"slices":    "slices",
	"slog":      "log/slog",
	"status":    "google.golang.org/grpc/status",
	"strconv":   "strconv",
	"strings":   "strings",
	"sync":      "sync",
	"time":      "time",
	"url":       "net/url",
	"utf8":      "unicode/utf8",
}

// parseTemplates binds the templates to g, so that every package they name
// goes through g's import block.
func parseTemplates(g *protogen.GeneratedFile) (*template.Template, error) {
	funcs := template.FuncMap{}
	for name, path := range imports {
		funcs[name] = func(ident string) string {
			return g.QualifiedGoIdent(path.Ident(ident))
		}
	}
	return template.New("").Funcs(funcs).Option("missingkey=error").ParseFS(templates.FS, "*.go.tmpl")
}

// fileView is what the "file" template prints.
type fileView struct {
	Version  string
	Source   string
	Package  protogen.GoPackageName
	Pairs    []*pairView
	Bindings []*bindingView
}

// pairView is what the "pair", "host" and "plugin" templates print. Message
// names are already qualified for the generated file.
type pairView struct {
	Name      string // exported prefix: ServeHTTP
	Private   string // unexported prefix: serveHTTP
	Doc       string // the proto's comments, closing the doc of Host and Plugin
	ChunkSize string
	Host      bool
	Plugin    bool

	Request, RequestInit, RequestHeader    string
	Response, ResponseInit, ResponseHeader string

	Req       requestView
	Res       responseView
	ReqHeader headerView
	ResHeader headerView
}

type requestView struct {
	Init, BodyChunk, BodyComplete, Method, URL, Headers                        field
	Proto, ProtoMajor, ProtoMinor, Host, RemoteAddr, RequestURI, ContentLength *field
}

type responseView struct {
	Init, BodyChunk, BodyComplete, StatusCode, Headers field
	Flush                                              *field
}

type headerView struct {
	Key, Values field
}

// encoderView is what the "encodeHeader" template prints.
type encoderView struct {
	Func         string
	Message      string
	SkipTrailers bool
	headerView
}

func (p *pairView) RequestHeaderEncoder() encoderView {
	return encoderView{Func: p.Private + "EncodeRequestHeader", Message: p.RequestHeader, headerView: p.ReqHeader}
}

func (p *pairView) ResponseHeaderEncoder() encoderView {
	return encoderView{Func: p.Private + "EncodeResponseHeader", Message: p.ResponseHeader, SkipTrailers: true, headerView: p.ResHeader}
}

// bindingView is what the "binding" template prints.
type bindingView struct {
	Comment string
	Func    string
	Client  string
	Host    string
	Method  string
}

// render writes the generated file for fm; it writes nothing when fm has
// nothing to bridge under cfg.
func render(plugin *protogen.Plugin, fm *fileModel, cfg *config, l *layout) error {
	bindings := fm.bindings
	if !cfg.host() {
		bindings = nil
	}
	if len(fm.pairs) == 0 && len(bindings) == 0 {
		return nil
	}
	f := fm.source
	importPath, pkg := l.bridgePackage(f.GoImportPath)
	g := plugin.NewGeneratedFile(l.filename(f), importPath)
	tmpl, err := parseTemplates(g)
	if err != nil {
		return err
	}
	view := &fileView{
		Version: Version,
		Source:  f.Desc.Path(),
		Package: pkg,
	}
	for _, p := range fm.pairs {
		view.Pairs = append(view.Pairs, newPairView(g, p, cfg))
	}
	for _, b := range bindings {
		view.Bindings = append(view.Bindings, newBindingView(g, f, b, l))
	}
	if err := tmpl.ExecuteTemplate(g, "file", view); err != nil {
		return fmt.Errorf("%s: rendering: %w", f.Desc.Path(), err)
	}
	return nil
}

func newPairView(g *protogen.GeneratedFile, p *pair, cfg *config) *pairView {
	req, res := p.request, p.response
	var comments []protogen.Comments
	for _, m := range p.methods {
		comments = append(comments, m.Comments.Leading)
	}
	comments = append(comments, req.message.Comments.Leading, res.message.Comments.Leading)
	return &pairView{
		Name:      p.prefix,
		Private:   unexported(p.prefix),
		Doc:       protoDoc(comments...),
		ChunkSize: chunkSizeLiteral(cfg.chunkSize),
		Host:      cfg.host(),
		Plugin:    cfg.plugin(),

		Request:        g.QualifiedGoIdent(req.message.GoIdent),
		RequestInit:    g.QualifiedGoIdent(req.initMessage.GoIdent),
		RequestHeader:  g.QualifiedGoIdent(req.header.message.GoIdent),
		Response:       g.QualifiedGoIdent(res.message.GoIdent),
		ResponseInit:   g.QualifiedGoIdent(res.initMessage.GoIdent),
		ResponseHeader: g.QualifiedGoIdent(res.header.message.GoIdent),

		Req: requestView{
			Init: req.init, BodyChunk: req.bodyChunk, BodyComplete: req.bodyComplete,
			Method: req.method, URL: req.url, Headers: req.headers,
			Proto: req.proto, ProtoMajor: req.protoMajor, ProtoMinor: req.protoMinor,
			Host: req.host, RemoteAddr: req.remoteAddr, RequestURI: req.requestURI,
			ContentLength: req.contentLength,
		},
		Res: responseView{
			Init: res.init, BodyChunk: res.bodyChunk, BodyComplete: res.bodyComplete,
			StatusCode: res.statusCode, Headers: res.headers, Flush: res.flush,
		},
		ReqHeader: headerView{Key: req.header.key, Values: req.header.values},
		ResHeader: headerView{Key: res.header.key, Values: res.header.values},
	}
}

func newBindingView(g *protogen.GeneratedFile, f *protogen.File, b *rpcBinding, l *layout) *bindingView {
	name := "New" + b.service.GoName + b.method.GoName + "Host"
	comment := fmt.Sprintf("// %s returns a host that forwards each HTTP request over one\n// %s.%s stream of client.\n", name, b.service.GoName, b.method.GoName)
	comment += protoDoc(b.method.Comments.Leading)
	if isDeprecated(b.method) {
		comment += "//\n// Deprecated: the " + b.method.GoName + " method is deprecated.\n"
	}
	return &bindingView{
		Comment: comment,
		Func:    name,
		Client:  g.QualifiedGoIdent(f.GoImportPath.Ident(b.service.GoName + "Client")),
		Host:    g.QualifiedGoIdent(l.bridgeIdent(b.hostIdent)),
		Method:  b.method.GoName,
	}
}

// protoDoc turns leading comments of the proto into paragraphs that close a
// generated doc comment, each after an empty line, as protoc-gen-go-grpc
// appends a service's comments to the doc of its client type.
func protoDoc(comments ...protogen.Comments) string {
	var b strings.Builder
	for _, c := range comments {
		if text := strings.TrimSpace(c.String()); text != "" {
			b.WriteString("//\n" + text + "\n")
		}
	}
	return b.String()
}

// unexported lowercases the leading capitals of an exported name the way Go
// code does: ServeHTTP → serveHTTP, HTTPTunnel → httpTunnel.
func unexported(name string) string {
	r := []rune(name)
	for i := range r {
		if !unicode.IsUpper(r[i]) {
			break
		}
		// Keep the last capital of a run followed by lower case: it starts a word.
		if i > 0 && i+1 < len(r) && unicode.IsLower(r[i+1]) {
			break
		}
		r[i] = unicode.ToLower(r[i])
	}
	return string(r)
}

// chunkSizeLiteral prints sizes in KiB when they are whole KiB, as people
// write them: 64 << 10.
func chunkSizeLiteral(n int) string {
	if n%1024 == 0 {
		return fmt.Sprintf("%d << 10", n/1024)
	}
	return fmt.Sprint(n)
}

func isDeprecated(m *protogen.Method) bool {
	opts, ok := m.Desc.Options().(*descriptorpb.MethodOptions)
	return ok && opts.GetDeprecated()
}
