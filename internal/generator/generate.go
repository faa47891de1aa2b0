// Package generator turns the descriptors protoc hands to
// protoc-gen-httpbridge into host adapters and plugin facades.
package generator

import (
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// Version is the generator's release, written into every generated file.
const Version = "v0.1.0"

// Generate runs the plugin on one request, as protoc or buf would.
// Parameter and shape errors are reported in the response's Error field.
func Generate(req *pluginpb.CodeGeneratorRequest) *pluginpb.CodeGeneratorResponse {
	cfg := defaultConfig()
	plugin, err := protogen.Options{ParamFunc: cfg.set}.New(req)
	if err != nil {
		msg := err.Error()
		return &pluginpb.CodeGeneratorResponse{Error: &msg}
	}
	plugin.SupportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL |
		pluginpb.CodeGeneratorResponse_FEATURE_SUPPORTS_EDITIONS)
	plugin.SupportedEditionsMinimum = descriptorpb.Edition_EDITION_PROTO2
	plugin.SupportedEditionsMaximum = descriptorpb.Edition_EDITION_2024
	if err := generate(plugin, cfg); err != nil {
		plugin.Error(err)
	}
	return plugin.Response()
}

// generate writes one file per .proto that declares something to bridge.
// It writes nothing when any file has an error, and then reports every
// error of the run, one per line.
func generate(plugin *protogen.Plugin, cfg *config) error {
	b := newBuilder(plugin)
	var models []*fileModel
	l := newLayout(plugin, cfg.packageSuffix)
	for _, f := range plugin.Files {
		if f.Generate {
			models = append(models, b.file(f))
		}
	}
	b.checkNames(models)
	if err := b.errs.err(); err != nil {
		return err
	}
	for _, fm := range models {
		if err := render(plugin, fm, cfg, l); err != nil {
			return err
		}
	}
	return nil
}
