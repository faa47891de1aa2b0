package host_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/reflect/protoregistry"

	"example.com/host/bridge/pluginapiv1host"
	"example.com/host/bridge/pluginapiv1plugin"
	"example.com/thirdparty/pluginapiv1"
)

// hooks is a plugin's gRPC server, built on the vendor's generated service.
type hooks struct {
	pluginapiv1.UnimplementedPluginHooksServer
	bridge pluginapiv1plugin.ServeHTTPPlugin
}

func (h *hooks) ServeHTTP(stream grpc.BidiStreamingServer[pluginapiv1.ServeHTTPRequest, pluginapiv1.ServeHTTPResponse]) error {
	return h.bridge.Serve(stream)
}

// startBridge serves handler as a plugin does and returns an HTTP server that
// forwards to it as the host does, putting sessionID in every request's
// plugin context.
func startBridge(t *testing.T, handler http.Handler, sessionID string) *httptest.Server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcServer := grpc.NewServer()
	pluginapiv1.RegisterPluginHooksServer(grpcServer, &hooks{bridge: pluginapiv1plugin.ServeHTTPPlugin{Handler: handler}})
	go func() { _ = grpcServer.Serve(lis) }()
	t.Cleanup(grpcServer.Stop)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	host := pluginapiv1host.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(conn))
	host.Init = func(r *http.Request, init *pluginapiv1.ServeHTTPRequestInit) {
		init.PluginContext = &pluginapiv1.PluginContext{SessionId: sessionID}
	}
	srv := httptest.NewServer(host)
	t.Cleanup(srv.Close)
	return srv
}

// TestMessagesAreTheVendors checks that the one registered
// ServeHTTPRequest is the vendor's: the bridge brought no copy of the
// messages, which would have panicked at start with a name conflict.
func TestMessagesAreTheVendors(t *testing.T) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName("mattermost.pluginapi.v1.ServeHTTPRequest")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := reflect.TypeOf(mt.Zero().Interface()).Elem().PkgPath(), "example.com/thirdparty/pluginapiv1"; got != want {
		t.Errorf("mattermost.pluginapi.v1.ServeHTTPRequest is registered by %s, want %s", got, want)
	}
}

// TestEcho streams an upload to a plugin handler that answers with the
// plugin context it received and the body, read while it writes.
func TestEcho(t *testing.T) {
	srv := startBridge(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		init, ok := pluginapiv1plugin.ServeHTTPRequestInitFromContext(r.Context())
		if !ok {
			http.Error(w, "no init in the request's context", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "session %s\n", init.GetPluginContext().GetSessionId())
		_, _ = io.Copy(w, r.Body)
	}), "session-1")
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
	want := append([]byte("session session-1\n"), data...)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
		t.Errorf("POST /echo: %s, %d bytes; want 200 and the session line and the %d bytes sent", resp.Status, len(got), len(data))
	}
}
