package generator

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Which messages are held to the bridge shape
//
// A message is checked against the request or the response shape only where
// it means to be bridged, so that ordinary messages never fail a run:
//
//   - the input and the output of a bidi-streaming rpc, when either of them
//     resembles a bridge message (see resemblesBridge); the input must then
//     be the request and the output the response;
//   - two messages of one parent in one file named <P>Request and
//     <P>Response, when both resemble bridge messages or either has the
//     full shape.
//
// Other messages are never checked, with two exceptions that would
// otherwise silently get no bridge:
//
//   - an rpc that is not bidi-streaming but whose input and output both
//     resemble bridge messages is an error: a bridge streams both ways;
//   - a message that no rpc uses and that pairs with nothing by name is an
//     error when it has the full shape of one side.

// resemblesBridge reports whether m looks like it means to be one side of a
// bridge: its init field is a message with method, url or status_code, or it
// has two of the fields init, body_chunk and body_complete. Other field names
// (chunk, done, ...) are too common to count; a message that also misnames
// init is taken for an ordinary one.
func resemblesBridge(m *protogen.Message) bool {
	if role, _ := initRole(m); role != unknownRole {
		return true
	}
	n := 0
	for _, name := range requestFields { // the fields both sides share
		if m.Desc.Fields().ByName(name) != nil {
			n++
		}
	}
	return n >= 2
}

type role int

const (
	unknownRole role = iota
	requestRole
	responseRole
)

// initRole tells the direction of m from the fields of its init message.
func initRole(m *protogen.Message) (role, string) {
	init := m.Desc.Fields().ByName("init")
	if init == nil || init.Message() == nil {
		return unknownRole, ""
	}
	fields := init.Message().Fields()
	switch {
	case fields.ByName("status_code") != nil:
		return responseRole, "its init has status_code"
	case fields.ByName("method") != nil:
		return requestRole, "its init has method"
	case fields.ByName("url") != nil:
		return requestRole, "its init has url"
	}
	return unknownRole, ""
}

// direction tells which side of a bridge m resembles, and why, so that
// errors describe what it most likely meant to be.
func direction(m *protogen.Message) (role, string) {
	if r, why := initRole(m); r != unknownRole {
		return r, why
	}
	switch {
	case m.Desc.Fields().ByName("flush") != nil:
		return responseRole, "it has a flush field"
	case strings.HasSuffix(string(m.Desc.Name()), "Response"):
		return responseRole, "its name ends in Response"
	case strings.HasSuffix(string(m.Desc.Name()), "Request"):
		return requestRole, "its name ends in Request"
	}
	return unknownRole, ""
}

func isBidi(m *protogen.Method) bool {
	return m.Desc.IsStreamingClient() && m.Desc.IsStreamingServer()
}

// streaming names the kind of a method that is not bidi-streaming.
func streaming(m *protogen.Method) string {
	switch {
	case m.Desc.IsStreamingServer():
		return "server-streaming"
	case m.Desc.IsStreamingClient():
		return "client-streaming"
	}
	return "unary"
}

// builder finds the bridges of one run. Every message is checked at most
// once per role, across all files: a service in one file may use messages
// declared in another. Errors are collected, not returned, so that a run
// reports all of them.
type builder struct {
	requests  map[*protogen.Message]checked[*requestShape]
	responses map[*protogen.Message]checked[*responseShape]
	// parents holds the message each nested message is declared in.
	parents map[*protogen.Message]*protogen.Message
	// used holds the messages that some rpc of the run takes or returns.
	used map[*protogen.Message]bool
	// python is set when the run generates Python, where messages need no
	// common Go package and each file is a module of its own.
	python bool
	errs   errorList
}

type checked[T any] struct {
	shape T // nil when errs is not
	errs  []error
}

func newBuilder(plugin *protogen.Plugin) *builder {
	b := &builder{
		requests:  map[*protogen.Message]checked[*requestShape]{},
		responses: map[*protogen.Message]checked[*responseShape]{},
		parents:   map[*protogen.Message]*protogen.Message{},
		used:      map[*protogen.Message]bool{},
	}
	for _, f := range plugin.Files {
		b.recordParents(nil, f.Messages)
		for _, svc := range f.Services {
			for _, m := range svc.Methods {
				b.used[m.Input], b.used[m.Output] = true, true
			}
		}
	}
	return b
}

func (b *builder) recordParents(parent *protogen.Message, ms []*protogen.Message) {
	for _, m := range ms {
		if parent != nil {
			b.parents[m] = parent
		}
		b.recordParents(m, m.Messages)
	}
}

// request checks m against the request shape, once.
func (b *builder) request(m *protogen.Message) (*requestShape, []error) {
	c, ok := b.requests[m]
	if !ok {
		c.shape, c.errs = checkRequest(m)
		b.requests[m] = c
	}
	return c.shape, c.errs
}

// response checks m against the response shape, once.
func (b *builder) response(m *protogen.Message) (*responseShape, []error) {
	c, ok := b.responses[m]
	if !ok {
		c.shape, c.errs = checkResponse(m)
		b.responses[m] = c
	}
	return c.shape, c.errs
}

// fileModel is what one generated file holds.
type fileModel struct {
	source   *protogen.File
	pairs    []*pair
	bindings []*rpcBinding
}

// file finds the pairs declared in f and the bidi methods of f's services
// that can be bridged, recording what is wrong with the others.
func (b *builder) file(f *protogen.File) *fileModel {
	fm := &fileModel{source: f}
	messages := allMessages(f.Messages)
	byFullName := map[protoreflect.FullName]*protogen.Message{}
	for _, m := range messages {
		byFullName[m.Desc.FullName()] = m
	}

	// Pairs by name: <P>Request and <P>Response of one parent in f.
	byName := map[string]*pair{}
	held := map[*protogen.Message]bool{}
	for _, req := range messages {
		p, ok := strings.CutSuffix(string(req.Desc.Name()), "Request")
		if !ok {
			continue
		}
		res := byFullName[req.Desc.FullName().Parent().Append(protoreflect.Name(p+"Response"))]
		if res == nil {
			continue
		}
		prefix, ok := b.pairPrefix(req, res)
		if !ok {
			continue
		}
		reqShape, reqErrs := b.request(req)
		resShape, resErrs := b.response(res)
		if !(resemblesBridge(req) && resemblesBridge(res)) && reqShape == nil && resShape == nil {
			continue
		}
		held[req], held[res] = true, true
		b.errs.add(reqErrs...)
		b.errs.add(resErrs...)
		if reqShape == nil || resShape == nil {
			continue
		}
		pr := &pair{
			prefix:   prefix,
			origin:   fmt.Sprintf("messages %s and %s", req.Desc.FullName(), res.Desc.FullName()),
			file:     f.Desc.Path(),
			request:  reqShape,
			response: resShape,
		}
		fm.pairs = append(fm.pairs, pr)
		byName[pairKey(req, res)] = pr
	}

	for _, svc := range f.Services {
		for _, method := range svc.Methods {
			if binding := b.method(f, fm, byName, method); binding != nil {
				binding.service = svc
				fm.bindings = append(fm.bindings, binding)
			}
		}
	}

	// A well-formed side without a partner would silently get no bridge.
	for _, m := range messages {
		if held[m] || b.used[m] {
			continue
		}
		reqShape, _ := b.request(m)
		resShape, _ := b.response(m)
		if reqShape != nil || resShape != nil {
			b.errs.add(&shapeError{
				file:    f.Desc.Path(),
				message: m.Desc.FullName(),
				problem: "is shaped like one side of a bridge but has no partner: name the pair <P>Request and <P>Response, or use both in a bidi-streaming rpc",
			})
		}
	}
	return fm
}

// method returns the binding of method, a method of f, or nil when it is no
// bridge. byName holds the pairs f declares by name; a pair method makes of
// messages not named so is added to fm.
func (b *builder) method(f *protogen.File, fm *fileModel, byName map[string]*pair, method *protogen.Method) *rpcBinding {
	in, out := method.Input, method.Output
	if !isBidi(method) {
		if resemblesBridge(in) && resemblesBridge(out) {
			b.errs.add(b.rpcError(f, method, "is %s, but a bridge streams both ways: declare it rpc %s(stream %s) returns (stream %s)",
				streaming(method), method.Desc.Name(), in.Desc.FullName(), out.Desc.FullName()))
		}
		return nil
	}
	if !resemblesBridge(in) && !resemblesBridge(out) {
		return nil // an ordinary stream
	}
	inRole, inWhy := direction(in)
	outRole, outWhy := direction(out)
	switch {
	case inRole == responseRole && outRole == requestRole:
		b.errs.add(b.rpcError(f, method, "takes %s, shaped like a bridge response (%s), and returns %s, shaped like a bridge request (%s): swap them, as in rpc %s(stream %s) returns (stream %s)",
			in.Desc.FullName(), inWhy, out.Desc.FullName(), outWhy, method.Desc.Name(), out.Desc.FullName(), in.Desc.FullName()))
		return nil
	case inRole == responseRole:
		b.errs.add(b.rpcError(f, method, "takes %s, shaped like a bridge response (%s): a bridge rpc takes the request message, whose init has method and url",
			in.Desc.FullName(), inWhy))
		return nil
	case outRole == requestRole:
		b.errs.add(b.rpcError(f, method, "returns %s, shaped like a bridge request (%s): a bridge rpc returns the response message, whose init has status_code",
			out.Desc.FullName(), outWhy))
		return nil
	}
	req, reqErrs := b.request(in)
	res, resErrs := b.response(out)
	b.errs.add(reqErrs...)
	b.errs.add(resErrs...)
	if req == nil || res == nil {
		return nil
	}

	p := byName[pairKey(in, out)]
	if p == nil {
		// Messages named as a pair elsewhere get their bridge there.
		if prefix, ok := b.pairPrefix(in, out); ok {
			return &rpcBinding{method: method, hostIdent: in.GoIdent.GoImportPath.Ident(prefix + "Host"), prefix: prefix, pairFile: in.Desc.ParentFile().Path()}
		}
		if !b.python && (in.GoIdent.GoImportPath != f.GoImportPath || out.GoIdent.GoImportPath != f.GoImportPath) {
			b.errs.add(b.rpcError(f, method, "messages %s and %s are not named <P>Request and <P>Response, so their bridge is generated beside the service, which needs them in its Go package %s",
				in.Desc.FullName(), out.Desc.FullName(), f.GoImportPath))
			return nil
		}
		p = &pair{
			prefix:   method.GoName,
			origin:   fmt.Sprintf("rpc %s", method.Desc.FullName()),
			file:     f.Desc.Path(),
			request:  req,
			response: res,
		}
		fm.pairs = append(fm.pairs, p)
		byName[pairKey(in, out)] = p
	}
	p.methods = append(p.methods, method)
	return &rpcBinding{method: method, hostIdent: in.GoIdent.GoImportPath.Ident(p.prefix + "Host"), prefix: p.prefix, pairFile: p.file}
}

func (b *builder) rpcError(f *protogen.File, m *protogen.Method, format string, args ...any) error {
	return fmt.Errorf("%s: rpc %s: %s", f.Desc.Path(), m.Desc.FullName(), fmt.Sprintf(format, args...))
}

// pairPrefix returns the name of the pair two messages form when they are
// named <P>Request and <P>Response, declared side by side (in one message,
// or at the top of one file). The name is the Go name of the request without
// the underscores that nesting adds and without its Request suffix:
// ServeHTTPRequest gives ServeHTTP, Outer.FetchRequest OuterFetch and
// Handle.Request Handle.
func (b *builder) pairPrefix(req, res *protogen.Message) (string, bool) {
	p, ok := strings.CutSuffix(string(req.Desc.Name()), "Request")
	if !ok || string(res.Desc.Name()) != p+"Response" ||
		b.parents[req] != b.parents[res] || req.Location.SourceFile != res.Location.SourceFile {
		return "", false
	}
	prefix, _ := strings.CutSuffix(b.goName(req), "Request")
	return prefix, prefix != ""
}

// goName is the Go name of m without the underscores that nesting adds:
// protoc-gen-go names Outer.Inner Outer_Inner, goName OuterInner.
func (b *builder) goName(m *protogen.Message) string {
	parent := b.parents[m]
	if parent == nil {
		return m.GoIdent.GoName
	}
	return b.goName(parent) + strings.TrimPrefix(m.GoIdent.GoName, parent.GoIdent.GoName+"_")
}

func pairKey(req, res *protogen.Message) string {
	return string(req.Desc.FullName()) + "\x00" + string(res.Desc.FullName())
}

// checkNames reports pairs whose generated declarations would collide: all
// files of one Go package share one scope. Exported names differ when their
// unexported forms do, so those are compared.
func (b *builder) checkNames(models []*fileModel) {
	type key struct {
		pkg  protogen.GoImportPath
		name string
	}
	first := map[key]*pair{}
	for _, fm := range models {
		for _, p := range fm.pairs {
			k := key{fm.source.GoImportPath, unexported(p.prefix)}
			if b.python {
				k.pkg = protogen.GoImportPath(fm.source.Desc.Path())
			}
			prev := first[k]
			if prev == nil {
				first[k] = p
				continue
			}
			if b.python {
				b.errs.add(fmt.Errorf("%s: %s: its bridge would be named %s, as is the bridge of %s, and both are generated into the Python module of %s, where classes such as %sASGI would collide: rename one of them",
					p.file, p.origin, p.prefix, prev.origin, p.file, p.prefix))
				continue
			}
			b.errs.add(fmt.Errorf("%s: %s: its bridge would be named %s, as is the bridge of %s in %s, and both are generated into Go package %s, where declarations such as %sHost would collide: rename one of them",
				p.file, p.origin, p.prefix, prev.origin, prev.file, fm.source.GoImportPath, p.prefix))
		}
	}
}

// allMessages lists messages and their nested messages in declaration order.
func allMessages(ms []*protogen.Message) []*protogen.Message {
	var out []*protogen.Message
	for _, m := range ms {
		if m.Desc.IsMapEntry() {
			continue
		}
		out = append(out, m)
		out = append(out, allMessages(m.Messages)...)
	}
	return out
}

// errorList collects the errors of a run in the order they are found, each
// once: a message used by several rpcs is reported once.
type errorList struct {
	errs []error
	seen map[string]bool
}

func (l *errorList) add(errs ...error) {
	for _, err := range errs {
		if l.seen == nil {
			l.seen = map[string]bool{}
		}
		if !l.seen[err.Error()] {
			l.seen[err.Error()] = true
			l.errs = append(l.errs, err)
		}
	}
}

// err joins the errors, one per line; nil when there are none.
func (l *errorList) err() error {
	return errors.Join(l.errs...)
}
