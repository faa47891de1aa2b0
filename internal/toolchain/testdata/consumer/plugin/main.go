// Command plugin serves its HTTP handler to the host through the ServeHTTP
// method of its gRPC server.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"

	"google.golang.org/grpc"

	pluginv1 "example.com/consumer/gen/acme/plugin/v1"
)

// server is the plugin's gRPC service; the bridge turns each ServeHTTP
// stream into a call of an http.Handler.
type server struct {
	pluginv1.UnimplementedPluginServer
	bridge pluginv1.ServeHTTPPlugin
}

func (s *server) ServeHTTP(stream grpc.BidiStreamingServer[pluginv1.ServeHTTPRequest, pluginv1.ServeHTTPResponse]) error {
	return s.bridge.Serve(stream)
}

// newHandler is the plugin's HTTP side: an ordinary handler.
func newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		init, _ := pluginv1.ServeHTTPRequestInitFromContext(r.Context())
		fmt.Fprintf(w, "hello from the plugin, request %s\n", init.GetRequestId())
	})
	return mux
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "address to serve gRPC on")
	flag.Parse()

	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	// The bridge's codec sends large response messages in buffers of
	// their size, not in gRPC's 1 MiB ones.
	srv := grpc.NewServer(grpc.ForceServerCodecV2(pluginv1.ServeHTTPServerCodec{}))
	pluginv1.RegisterPluginServer(srv, &server{bridge: pluginv1.ServeHTTPPlugin{Handler: newHandler()}})
	log.Printf("serving gRPC on %s", lis.Addr())
	log.Fatal(srv.Serve(lis))
}
