package generator

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
)

// shapes checks every message that looks bridged, once, across all files of
// a run: a service in one file may use messages declared in another.
type shapes struct {
	requests  map[*protogen.Message]*requestShape
	responses map[*protogen.Message]*responseShape
	// streamed holds the messages used by some bidi-streaming method.
	streamed map[*protogen.Message]bool
}

func newShapes(plugin *protogen.Plugin) *shapes {
	s := &shapes{
		requests:  map[*protogen.Message]*requestShape{},
		responses: map[*protogen.Message]*responseShape{},
		streamed:  map[*protogen.Message]bool{},
	}
	for _, f := range plugin.Files {
		for _, svc := range f.Services {
			for _, m := range svc.Methods {
				if isBidi(m) {
					s.streamed[m.Input] = true
					s.streamed[m.Output] = true
				}
			}
		}
	}
	return s
}

func isBidi(m *protogen.Method) bool {
	return m.Desc.IsStreamingClient() && m.Desc.IsStreamingServer()
}

// check classifies m, recording its shape; a message that looks bridged but
// is malformed is an error.
func (s *shapes) check(m *protogen.Message) error {
	if !looksBridged(m) || s.requests[m] != nil || s.responses[m] != nil {
		return nil
	}
	if looksLikeResponse(m) {
		shape, err := checkResponse(m)
		if err != nil {
			return err
		}
		s.responses[m] = shape
		return nil
	}
	shape, err := checkRequest(m)
	if err != nil {
		return err
	}
	s.requests[m] = shape
	return nil
}

// fileModel is what one generated file holds.
type fileModel struct {
	source   *protogen.File
	pairs    []*pair
	bindings []*rpcBinding
}

// buildFile finds the pairs declared in f and the bidi methods of f's
// services that can be bridged.
func buildFile(f *protogen.File, s *shapes) (*fileModel, error) {
	fm := &fileModel{source: f}
	messages := allMessages(f.Messages)
	for _, m := range messages {
		if err := s.check(m); err != nil {
			return nil, err
		}
	}

	// Pairs by name: <P>Request and <P>Response in the same file.
	byName := map[string]*pair{}
	paired := map[*protogen.Message]bool{}
	for _, m := range messages {
		req := s.requests[m]
		prefix, ok := strings.CutSuffix(m.GoIdent.GoName, "Request")
		if req == nil || !ok || prefix == "" {
			continue
		}
		for _, other := range messages {
			if resp := s.responses[other]; resp != nil && other.GoIdent.GoName == prefix+"Response" {
				p := &pair{prefix: prefix, request: req, response: resp}
				fm.pairs = append(fm.pairs, p)
				byName[pairKey(m, other)] = p
				paired[m], paired[other] = true, true
			}
		}
	}

	// Pairs by rpc: a bidi method whose input and output both pass.
	for _, svc := range f.Services {
		for _, method := range svc.Methods {
			if !isBidi(method) {
				continue
			}
			for _, m := range []*protogen.Message{method.Input, method.Output} {
				if err := s.check(m); err != nil {
					return nil, err
				}
			}
			req, resp := s.requests[method.Input], s.responses[method.Output]
			if req == nil || resp == nil {
				continue
			}
			p := byName[pairKey(method.Input, method.Output)]
			if p == nil {
				p = namedPair(method.Input, method.Output)
			}
			if p == nil {
				if method.Input.GoIdent.GoImportPath != f.GoImportPath || method.Output.GoIdent.GoImportPath != f.GoImportPath {
					return nil, fmt.Errorf("%s: method %s: messages %s and %s are not named <P>Request and <P>Response, so their bridge is generated beside the service, which needs them in its Go package %s",
						f.Desc.Path(), method.Desc.FullName(), method.Input.Desc.FullName(), method.Output.Desc.FullName(), f.GoImportPath)
				}
				p = &pair{prefix: method.GoName, request: req, response: resp}
				fm.pairs = append(fm.pairs, p)
				byName[pairKey(method.Input, method.Output)] = p
			}
			fm.bindings = append(fm.bindings, &rpcBinding{
				service:   svc,
				method:    method,
				pair:      p,
				hostIdent: method.Input.GoIdent.GoImportPath.Ident(p.prefix + "Host"),
			})
		}
	}

	// A well-formed side without a partner would silently get no bridge.
	for _, m := range messages {
		if (s.requests[m] != nil || s.responses[m] != nil) && !paired[m] && !s.streamed[m] {
			return nil, &shapeError{
				file:    f.Desc.Path(),
				message: m.Desc.FullName(),
				problem: "is shaped like one side of a bridge but has no partner: name the pair <P>Request and <P>Response, or use both in a bidi-streaming rpc",
			}
		}
	}

	seen := map[string]bool{}
	for _, p := range fm.pairs {
		if seen[p.prefix] {
			return nil, fmt.Errorf("%s: two bridges would both be named %sHost; rename one of their messages or methods", f.Desc.Path(), p.prefix)
		}
		seen[p.prefix] = true
	}
	return fm, nil
}

// namedPair is the pair two messages form by name, wherever they are
// declared; nil when their names do not match.
func namedPair(req, resp *protogen.Message) *pair {
	prefix, ok := strings.CutSuffix(req.GoIdent.GoName, "Request")
	if !ok || prefix == "" || resp.GoIdent.GoName != prefix+"Response" || req.GoIdent.GoImportPath != resp.GoIdent.GoImportPath {
		return nil
	}
	return &pair{prefix: prefix}
}

func pairKey(req, resp *protogen.Message) string {
	return string(req.Desc.FullName()) + "\x00" + string(resp.Desc.FullName())
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
