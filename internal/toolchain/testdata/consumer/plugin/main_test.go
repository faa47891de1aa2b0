package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pluginv1 "example.com/consumer/gen/acme/plugin/v1"
)

// startBridge serves handler as the plugin does and returns an HTTP server
// that forwards to it as the host does, with requestID as every request's id.
func startBridge(t *testing.T, handler http.Handler, requestID string) *httptest.Server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcServer := grpc.NewServer()
	pluginv1.RegisterPluginServer(grpcServer, &server{bridge: pluginv1.ServeHTTPPlugin{Handler: handler}})
	go func() { _ = grpcServer.Serve(lis) }()
	t.Cleanup(grpcServer.Stop)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	host := pluginv1.NewPluginServeHTTPHost(pluginv1.NewPluginClient(conn))
	host.Init = func(r *http.Request, init *pluginv1.ServeHTTPRequestInit) {
		init.RequestId = requestID
	}
	srv := httptest.NewServer(host)
	t.Cleanup(srv.Close)
	return srv
}

func TestHello(t *testing.T) {
	srv := startBridge(t, newHandler(), "req-1")
	resp, err := http.Get(srv.URL + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if want := "hello from the plugin, request req-1\n"; resp.StatusCode != 200 || string(body) != want {
		t.Errorf("GET /hello: %s %q, want 200 %q", resp.Status, body, want)
	}
}

// TestEcho streams a body to a handler that writes it back while reading it.
func TestEcho(t *testing.T) {
	srv := startBridge(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(w, r.Body)
	}), "req-2")
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	resp, err := http.Post(srv.URL+"/echo", "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("echo returned %d bytes, want the %d sent", len(got), len(data))
	}
}
