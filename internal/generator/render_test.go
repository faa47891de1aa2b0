package generator

import (
	"strings"
	"testing"
)

func TestUnexported(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ServeHTTP", "serveHTTP"},
		{"HTTPTunnel", "httpTunnel"},
		{"Exchange", "exchange"},
		{"URL", "url"},
		{"X", "x"},
		{"already", "already"},
	}
	for _, tt := range tests {
		if got := unexported(tt.in); got != tt.want {
			t.Errorf("unexported(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestChunkSizeLiteral(t *testing.T) {
	tests := []struct {
		in   int
		want string
	}{
		{65536, "64 << 10"},
		{1024, "1 << 10"},
		{1000, "1000"},
		{1, "1"},
	}
	for _, tt := range tests {
		if got := chunkSizeLiteral(tt.in); got != tt.want {
			t.Errorf("chunkSizeLiteral(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPyImportStatement(t *testing.T) {
	absolute := &config{pyImports: pyAbsolute}
	prefixed := &config{pyImports: pyAbsolute, pyPackage: "mattermost_plugin.grpc"}
	relative := &config{pyImports: pyRelative}
	tests := []struct {
		cfg            *config
		importer, name string
		want           string
	}{
		{absolute, "hooks_httpbridge", "hooks_http_httpbridge", "import hooks_http_httpbridge as hooks__http__httpbridge"},
		{absolute, "x_httpbridge", "a.b.c_pb2", "from a.b import c_pb2 as a_dot_b_dot_c__pb2"},
		{prefixed, "hooks_httpbridge", "hooks_pb2_grpc", "from mattermost_plugin.grpc import hooks_pb2_grpc as hooks__pb2__grpc"},
		{prefixed, "a.x_httpbridge", "a.b.c_pb2", "from mattermost_plugin.grpc.a.b import c_pb2 as a_dot_b_dot_c__pb2"},
		{relative, "hooks_httpbridge", "hooks_pb2_grpc", "from . import hooks_pb2_grpc as hooks__pb2__grpc"},
		{relative, "a.b.x_httpbridge", "a.b.y_pb2", "from . import y_pb2 as a_dot_b_dot_y__pb2"},
		{relative, "x_httpbridge", "a.b.y_pb2", "from .a.b import y_pb2 as a_dot_b_dot_y__pb2"},
		{relative, "a.b.x_httpbridge", "y_pb2", "from ... import y_pb2 as y__pb2"},
		{relative, "a.b.x_httpbridge", "a.c.y_pb2", "from ..c import y_pb2 as a_dot_c_dot_y__pb2"},
		{relative, "a.bb.x_httpbridge", "a.b.y_pb2", "from ..b import y_pb2 as a_dot_b_dot_y__pb2"},
		{relative, "a.x_httpbridge", "a.b.c.y_pb2", "from .b.c import y_pb2 as a_dot_b_dot_c_dot_y__pb2"},
	}
	for _, tt := range tests {
		_, alias := pyModule(strings.ReplaceAll(tt.name, ".", "/")+".proto", "")
		if got := pyImportStatement(tt.importer, tt.name, alias, tt.cfg); got != tt.want {
			t.Errorf("%s imports %s with %+v: %q, want %q", tt.importer, tt.name, *tt.cfg, got, tt.want)
		}
	}
}
