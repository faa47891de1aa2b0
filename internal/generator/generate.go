// Package generator turns the descriptors protoc hands to
// protoc-gen-httpbridge into host adapters and plugin facades.
package generator

import (
	"path"
	"slices"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// Version is the generator's release, written into every generated file.
const Version = "v0.1.0"

// Generate runs the plugin on one request, as protoc or buf would.
// Parameter and shape errors are reported in the response's Error field.
func Generate(req *pluginpb.CodeGeneratorRequest) *pluginpb.CodeGeneratorResponse {
	cfg := defaultConfig()
	plugin, err := protogen.Options{ParamFunc: cfg.set}.New(withGoPackages(req))
	if err == nil {
		err = cfg.check()
	}
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
	b.python = cfg.lang == langPython
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
		var err error
		if cfg.lang == langPython {
			err = renderPython(plugin, fm, cfg)
		} else {
			err = render(plugin, fm, cfg, l)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// withGoPackages returns req with a Go import path for each file that has
// none, when the run generates Python. protogen needs one for every file,
// but a proto written for Python plugins need not say where Go code goes,
// and Python output does not depend on it. Other runs get req as it is, so
// that protogen names the file that lacks go_package.
func withGoPackages(req *pluginpb.CodeGeneratorRequest) *pluginpb.CodeGeneratorRequest {
	params := strings.Split(req.GetParameter(), ",")
	if !slices.Contains(params, "lang=python") {
		return req
	}
	var added []string
	for _, f := range req.GetProtoFile() {
		mapped := slices.ContainsFunc(params, func(p string) bool { return strings.HasPrefix(p, "M"+f.GetName()+"=") })
		if f.GetOptions().GetGoPackage() == "" && !mapped {
			dir := path.Dir(f.GetName())
			name := strings.Map(func(r rune) rune {
				if r == '/' || r == '.' || r == '-' {
					return '_'
				}
				return r
			}, dir)
			added = append(added, "M"+f.GetName()+"="+path.Join("httpbridge.invalid", dir)+";_"+name)
		}
	}
	if len(added) == 0 {
		return req
	}
	clone := proto.CloneOf(req)
	clone.Parameter = proto.String(strings.Join(append(slices.DeleteFunc(params, func(p string) bool { return p == "" }), added...), ","))
	return clone
}
