package generator

import (
	"fmt"
	"strings"

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
	typeInt32   = fieldType{name: "int32", kinds: []protoreflect.Kind{protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind}}
	typeInt64   = fieldType{name: "int64", kinds: []protoreflect.Kind{protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind}}
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

// bridgeFieldNames are the fields that make a message look like one side of
// a bridge; two of them are enough to hold it to the full shape.
var bridgeFieldNames = []protoreflect.Name{"init", "body_chunk", "body_complete"}

// looksBridged reports whether m means to be a request or response message.
func looksBridged(m *protogen.Message) bool {
	n := 0
	for _, name := range bridgeFieldNames {
		if m.Desc.Fields().ByName(name) != nil {
			n++
		}
	}
	return n >= 2
}

// looksLikeResponse tells the two directions apart for a message that
// looksBridged, so that its errors describe what it most likely meant to be.
func looksLikeResponse(m *protogen.Message) bool {
	if m.Desc.Fields().ByName("flush") != nil || strings.HasSuffix(m.GoIdent.GoName, "Response") {
		return true
	}
	if init := m.Desc.Fields().ByName("init"); init != nil && init.Message() != nil {
		return init.Message().Fields().ByName("status_code") != nil
	}
	return false
}

// checker validates the fields of one message against a shape.
type checker struct {
	msg *protogen.Message
	err error
}

func (c *checker) fail(field protoreflect.Name, format string, args ...any) {
	if c.err == nil {
		c.err = &shapeError{
			file:    c.msg.Location.SourceFile,
			message: c.msg.Desc.FullName(),
			field:   field,
			problem: fmt.Sprintf(format, args...),
		}
	}
}

// lookup returns the field called name, checked against want; nil when the
// field is absent or wrong (wrong also records an error).
func (c *checker) lookup(name protoreflect.Name, want fieldType) *protogen.Field {
	for _, f := range c.msg.Fields {
		if f.Desc.Name() != name {
			continue
		}
		fd := f.Desc
		switch {
		case fd.IsMap() || fd.IsList() != want.list || !hasKind(want.kinds, fd.Kind()):
			c.fail(name, "is %s, want %s", describe(fd), want.name)
		case f.Oneof != nil && !f.Oneof.Desc.IsSynthetic():
			c.fail(name, "is in oneof %s, want a plain field", f.Oneof.Desc.Name())
		default:
			return f
		}
		return nil
	}
	return nil
}

// required is lookup for a field the shape cannot do without.
func (c *checker) required(name protoreflect.Name, want fieldType, role string) field {
	f := c.lookup(name, want)
	if f == nil {
		if c.err == nil {
			c.fail("", "missing field %s (%s %s)", name, want.name, role)
		}
		return field{}
	}
	return newField(c.msg, f)
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

func hasKind(kinds []protoreflect.Kind, k protoreflect.Kind) bool {
	for _, want := range kinds {
		if want == k {
			return true
		}
	}
	return false
}

func checkRequest(m *protogen.Message) (*requestShape, error) {
	c := &checker{msg: m}
	s := &requestShape{
		message:      m,
		init:         c.required("init", typeMessage, "holding the request metadata"),
		bodyChunk:    c.required("body_chunk", typeBytes, "holding a piece of the request body"),
		bodyComplete: c.required("body_complete", typeBool, "marking the last request message"),
	}
	if c.err != nil {
		return nil, c.err
	}
	s.initMessage = c.sub("init")
	ic := &checker{msg: s.initMessage}
	s.method = ic.required("method", typeString, "holding the HTTP method")
	s.url = ic.required("url", typeString, "holding the request URL")
	s.headers = ic.required("headers", typeHeaders, "holding the request headers")
	s.proto = ic.optional("proto", typeString)
	s.protoMajor = ic.optional("proto_major", typeInt32)
	s.protoMinor = ic.optional("proto_minor", typeInt32)
	s.host = ic.optional("host", typeString)
	s.remoteAddr = ic.optional("remote_addr", typeString)
	s.requestURI = ic.optional("request_uri", typeString)
	s.contentLength = ic.optional("content_length", typeInt64)
	header, err := ic.header()
	if err != nil {
		return nil, err
	}
	s.header = header
	return s, nil
}

func checkResponse(m *protogen.Message) (*responseShape, error) {
	c := &checker{msg: m}
	s := &responseShape{
		message:      m,
		init:         c.required("init", typeMessage, "holding the response status and headers"),
		bodyChunk:    c.required("body_chunk", typeBytes, "holding a piece of the response body"),
		bodyComplete: c.required("body_complete", typeBool, "marking the last response message"),
		flush:        c.optional("flush", typeBool),
	}
	if c.err != nil {
		return nil, c.err
	}
	s.initMessage = c.sub("init")
	ic := &checker{msg: s.initMessage}
	s.statusCode = ic.required("status_code", typeInt32, "holding the HTTP status")
	s.headers = ic.required("headers", typeHeaders, "holding the response headers")
	header, err := ic.header()
	if err != nil {
		return nil, err
	}
	s.header = header
	return s, nil
}

// header checks the message of the init's headers field, once the init's
// own fields passed.
func (c *checker) header() (headerShape, error) {
	if c.err != nil {
		return headerShape{}, c.err
	}
	return checkHeader(c.sub("headers"))
}

func checkHeader(m *protogen.Message) (headerShape, error) {
	c := &checker{msg: m}
	h := headerShape{
		message: m,
		key:     c.required("key", typeString, "holding the header name"),
		values:  c.required("values", typeStrings, "holding the header values"),
	}
	return h, c.err
}
