// A host author's module that bridges HTTP to plugins over a contract it
// does not own: the messages and the gRPC client come from
// example.com/thirdparty, and protoc-gen-httpbridge generates only the
// bridge, with package_suffix, into packages of this module.
module example.com/host

go 1.26.0

require (
	example.com/thirdparty v0.0.0
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
)

replace example.com/thirdparty => ../thirdparty
