package generator

import "testing"

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
