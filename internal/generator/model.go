package generator

import (
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/gofeaturespb"
)

// pair is one request/response message pair that gets a host adapter and a
// plugin facade. Its exported names all start with prefix.
type pair struct {
	prefix   string // "ServeHTTP" for ServeHTTPRequest and ServeHTTPResponse
	origin   string // what the prefix comes from, for errors: "rpc a.B.C"
	file     string // the .proto file the pair is generated for
	request  *requestShape
	response *responseShape
	// methods are the bidi-streaming methods of file that the pair bridges,
	// in declaration order; their comments document the pair's types.
	methods []*protogen.Method
}

// requestShape is a message that carries an HTTP request, and its init.
type requestShape struct {
	message      *protogen.Message
	init         field
	bodyChunk    field
	bodyComplete field

	initMessage *protogen.Message
	method      field
	url         field
	headers     field
	header      headerShape

	// Optional init fields: nil when the message does not have them.
	proto         *field
	protoMajor    *field
	protoMinor    *field
	host          *field
	remoteAddr    *field
	requestURI    *field
	contentLength *field
}

// responseShape is a message that carries an HTTP response, and its init.
type responseShape struct {
	message      *protogen.Message
	init         field
	bodyChunk    field
	bodyComplete field
	flush        *field // optional

	initMessage *protogen.Message
	statusCode  field
	headers     field
	header      headerShape
}

// headerShape is the message of one header: a key and its values.
type headerShape struct {
	message *protogen.Message
	key     field
	values  field
}

// rpcBinding is a bidi-streaming method whose messages form a pair, so the
// host can be built from the service's client.
type rpcBinding struct {
	service *protogen.Service
	method  *protogen.Method
	// hostIdent names the pair's host type, which may live in the package of
	// the messages rather than the service.
	hostIdent protogen.GoIdent
	// prefix names the pair, and pairFile is the .proto file whose
	// generated code holds its bridge (the Python facades).
	prefix   string
	pairFile string
}

// field says how generated code reads and writes one message field, which
// depends on the field's presence and on the Go API level of its message.
type field struct {
	goName string
	style  accessStyle
	number protoreflect.FieldNumber
}

type accessStyle int

const (
	accessDirect  accessStyle = iota // open API, implicit presence: m.X = v
	accessPointer                    // open API, explicit presence scalar: m.X = &v
	accessSetter                     // opaque or hybrid API: m.SetX(v)
)

func newField(m *protogen.Message, f *protogen.Field) field {
	style := accessDirect
	switch {
	case m.APILevel == gofeaturespb.GoFeatures_API_OPAQUE || m.APILevel == gofeaturespb.GoFeatures_API_HYBRID:
		style = accessSetter
	case f.Desc.HasPresence() && f.Message == nil && !f.Desc.IsList() && f.Desc.Kind() != bytesKind:
		style = accessPointer
	}
	return field{goName: f.GoName, style: style, number: f.Desc.Number()}
}

// Number is the field's number, for code that reads the wire form itself.
func (f field) Number() int32 {
	return int32(f.number)
}

// Get is the expression that reads the field of recv; getters exist at every
// API level and are nil-safe.
func (f field) Get(recv string) string {
	return recv + ".Get" + f.goName + "()"
}

// Set is the statement that stores the value of expr into the field of recv.
// Explicit-presence scalars of the open API hold a pointer, so their value
// goes through a variable of its own.
func (f field) Set(recv, expr string) string {
	switch f.style {
	case accessPointer:
		return "{\n\tvalue := " + expr + "\n\t" + recv + "." + f.goName + " = &value\n}"
	case accessSetter:
		return recv + ".Set" + f.goName + "(" + expr + ")"
	default:
		return recv + "." + f.goName + " = " + expr
	}
}
