// A stand-in for a module that ships generated message and gRPC packages
// the host author does not regenerate, as Mattermost's server/public does
// with pluginapiv1. TestStandalone copies the contract's protos into proto/
// under this module's go_package, as Mattermost declares them, and
// generates pluginapiv1/ with protoc-gen-go and protoc-gen-go-grpc only.
module example.com/thirdparty

go 1.26.0

require (
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
)
