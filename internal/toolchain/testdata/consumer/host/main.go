// Command host serves a plugin's HTTP handler under /plugins/demo/: it
// forwards each request over a ServeHTTP stream to the plugin's gRPC server.
package main

import (
	"crypto/rand"
	"flag"
	"log"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pluginv1 "example.com/consumer/gen/acme/plugin/v1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to serve HTTP on")
	pluginAddr := flag.String("plugin", "127.0.0.1:50051", "address of the plugin's gRPC server")
	flag.Parse()

	conn, err := grpc.NewClient(*pluginAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	host := pluginv1.NewPluginServeHTTPHost(pluginv1.NewPluginClient(conn))
	// Init adds what the plugin cannot learn from the request itself.
	host.Init = func(r *http.Request, init *pluginv1.ServeHTTPRequestInit) {
		init.RequestId = rand.Text()
	}
	http.Handle("/plugins/demo/", http.StripPrefix("/plugins/demo", host))

	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving http://%s/plugins/demo/", lis.Addr())
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(lis))
}
