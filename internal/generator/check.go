package generator

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protoreflect"
)

const bytesKind = protoreflect.BytesKind

// shapeError is a message that looks like it means to be bridged but is not
// shaped like one. It names the file, the message and the field.
type shapeError struct {
	file    string
	message protoreflect.FullName
	field   protoreflect.Name // empty when the problem is the message itself
	problem string
}

func (e *shapeError) Error() string {
	if e.field == "" {
		return fmt.Sprintf("%s: message %s: %s", e.file, e.message, e.problem)
	}
	return fmt.Sprintf("%s: message %s, field %s: %s", e.file, e.message, e.field, e.problem)
}

// fieldType is what a bridged field must be: one of kinds, repeated or not.
type fieldType struct {
	name  string // as written in error messages: "bytes", "repeated string"
	kinds []protoreflect.Kind
	list  bool
}

var (
	typeBytes   = fieldType{name: "bytes", kinds: []protoreflect.Kind{protoreflect.BytesKind}}
	typeBool    = fieldType{name: "bool", kinds: []protoreflect.Kind{protoreflect.BoolKind}}
	typeString  = fieldType{name: "string", kinds: []protoreflect.Kind{protoreflect.StringKind}}
	typeStrings = fieldType{name: "repeated string", kinds: []protoreflect.Kind{protoreflect.StringKind}, list: true}
	typeInt32   = fieldType{name: "int32, sint32 or sfixed32", kinds: []protoreflect.Kind{protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind}}
	typeInt64   = fieldType{name: "int64, sint64 or sfixed64", kinds: []protoreflect.Kind{protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind}}
	typeMessage = fieldType{name: "a message", kinds: []protoreflect.Kind{protoreflect.MessageKind, protoreflect.GroupKind}}
	typeHeaders = fieldType{name: "a repeated message with key and values", kinds: []protoreflect.Kind{protoreflect.MessageKind, protoreflect.GroupKind}, list: true}
)

// describe spells a field's actual type the way fieldType names spell it.
func describe(fd protoreflect.FieldDescriptor) string {
	if fd.IsMap() {
		return "a map"
	}
	var kind string
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		kind = "message " + string(fd.Message().FullName())
	case protoreflect.EnumKind:
		kind = "enum " + string(fd.Enum().FullName())
	default:
		kind = fd.Kind().String()
	}
	if fd.IsList() {
		return "repeated " + kind
	}
	return kind
}

// checker validates the fields of one message against a shape, collecting
// every problem it finds.
type checker struct {
	msg *protogen.Message
	// known are the fields the shape names; a field of the wanted type
	// outside them may be a misnamed one.
	known []protoreflect.Name
	errs  []error
}

func (c *checker) fail(field protoreflect.Name, format string, args ...any) {
	c.errs = append(c.errs, &shapeError{
		file:    c.msg.Location.SourceFile,
		message: c.msg.Desc.FullName(),
		field:   field,
		problem: fmt.Sprintf(format, args...),
	})
}

func (want fieldType) matches(fd protoreflect.FieldDescriptor) bool {
	return !fd.IsMap() && fd.IsList() == want.list && slices.Contains(want.kinds, fd.Kind())
}

// lookup returns the field called name, checked against want; nil when the
// field is absent or wrong (wrong also records an error).
func (c *checker) lookup(name protoreflect.Name, want fieldType) *protogen.Field {
	for _, f := range c.msg.Fields {
		if f.Desc.Name() != name {
			continue
		}
		switch {
		case !want.matches(f.Desc):
			c.fail(name, "is %s, want %s", describe(f.Desc), want.name)
		case f.Oneof != nil && !f.Oneof.Desc.IsSynthetic():
			c.fail(name, "is in oneof %s, want a plain field", f.Oneof.Desc.Name())
		default:
			return f
		}
		return nil
	}
	return nil
}

// required is lookup for a field the shape cannot do without. A missing
// field is reported with the one field of its type that the shape does not
// name, if there is exactly one: most likely it is the field, misnamed.
func (c *checker) required(name protoreflect.Name, want fieldType, role string) (field, bool) {
	if f := c.lookup(name, want); f != nil {
		return newField(c.msg, f), true
	}
	if c.msg.Desc.Fields().ByName(name) != nil {
		return field{}, false // present but wrong: already reported
	}
	var near []protoreflect.Name
	for _, f := range c.msg.Fields {
		if want.matches(f.Desc) && !slices.Contains(c.known, f.Desc.Name()) {
			near = append(near, f.Desc.Name())
		}
	}
	if len(near) == 1 {
		c.fail("", "missing field %s (%s %s); if field %s is meant to be it, rename it %s", name, want.name, role, near[0], name)
	} else {
		c.fail("", "missing field %s (%s %s)", name, want.name, role)
	}
	return field{}, false
}

// optional is lookup for a field the shape uses only when it is present.
func (c *checker) optional(name protoreflect.Name, want fieldType) *field {
	f := c.lookup(name, want)
	if f == nil {
		return nil
	}
	access := newField(c.msg, f)
	return &access
}

// sub returns the message type of field name, for checking it in turn.
func (c *checker) sub(name protoreflect.Name) *protogen.Message {
	for _, f := range c.msg.Fields {
		if f.Desc.Name() == name {
			return f.Message
		}
	}
	return nil
}

// The fields each shape names, required or optional.
var (
	requestFields      = []protoreflect.Name{"init", "body_chunk", "body_complete"}
	responseFields     = []protoreflect.Name{"init", "body_chunk", "body_complete", "flush"}
	requestInitFields  = []protoreflect.Name{"method", "url", "headers", "proto", "proto_major", "proto_minor", "host", "remote_addr", "request_uri", "content_length"}
	responseInitFields = []protoreflect.Name{"status_code", "headers"}
	headerFields       = []protoreflect.Name{"key", "values"}
)

// checkRequest checks m against the request shape. It returns either the
// shape or every problem found: those of m, then of its init message, then
// of the header message.
func checkRequest(m *protogen.Message) (*requestShape, []error) {
	c := &checker{msg: m, known: requestFields}
	s := &requestShape{message: m}
	var initOK bool
	s.init, initOK = c.required("init", typeMessage, "holding the request metadata")
	s.bodyChunk, _ = c.required("body_chunk", typeBytes, "holding a piece of the request body")
	s.bodyComplete, _ = c.required("body_complete", typeBool, "marking the last request message")
	if !initOK {
		return nil, c.errs
	}
	s.initMessage = c.sub("init")
	ic := &checker{msg: s.initMessage, known: requestInitFields}
	s.method, _ = ic.required("method", typeString, "holding the HTTP method")
	s.url, _ = ic.required("url", typeString, "holding the request URL")
	var headersOK bool
	s.headers, headersOK = ic.required("headers", typeHeaders, "holding the request headers")
	s.proto = ic.optional("proto", typeString)
	s.protoMajor = ic.optional("proto_major", typeInt32)
	s.protoMinor = ic.optional("proto_minor", typeInt32)
	s.host = ic.optional("host", typeString)
	s.remoteAddr = ic.optional("remote_addr", typeString)
	s.requestURI = ic.optional("request_uri", typeString)
	s.contentLength = ic.optional("content_length", typeInt64)
	var errs []error
	s.header, errs = checkInit(c, ic, headersOK)
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// checkResponse is checkRequest for the response shape.
func checkResponse(m *protogen.Message) (*responseShape, []error) {
	c := &checker{msg: m, known: responseFields}
	s := &responseShape{message: m}
	var initOK bool
	s.init, initOK = c.required("init", typeMessage, "holding the response status and headers")
	s.bodyChunk, _ = c.required("body_chunk", typeBytes, "holding a piece of the response body")
	s.bodyComplete, _ = c.required("body_complete", typeBool, "marking the last response message")
	s.flush = c.optional("flush", typeBool)
	if !initOK {
		return nil, c.errs
	}
	s.initMessage = c.sub("init")
	ic := &checker{msg: s.initMessage, known: responseInitFields}
	s.statusCode, _ = ic.required("status_code", typeInt32, "holding the HTTP status")
	var headersOK bool
	s.headers, headersOK = ic.required("headers", typeHeaders, "holding the response headers")
	var errs []error
	s.header, errs = checkInit(c, ic, headersOK)
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// checkInit ends the check of a request or response message c, whose init
// message ic has been checked: it checks the header message too when the
// init's headers field passed, and returns every problem, in that order.
func checkInit(c, ic *checker, headersOK bool) (headerShape, []error) {
	errs := slices.Concat(c.errs, ic.errs)
	if !headersOK {
		return headerShape{}, errs
	}
	header, headerErrs := checkHeader(ic.sub("headers"))
	return header, append(errs, headerErrs...)
}

func checkHeader(m *protogen.Message) (headerShape, []error) {
	c := &checker{msg: m, known: headerFields}
	h := headerShape{message: m}
	h.key, _ = c.required("key", typeString, "holding the header name")
	h.values, _ = c.required("values", typeStrings, "holding the header values")
	return h, c.errs
}
