package conformance

// Examples of the generated package gen/mattermost/pluginapi/v1, run by go
// test with their output checked. They live here, not beside the package,
// because buf generate's clean: true empties gen/ of everything it did not
// generate.

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
)

// examplePlugin is a plugin's PluginHooks service: its ServeHTTP method hands
// each stream to the bridge, which serves it with an http.Handler.
type examplePlugin struct {
	pluginapiv1.UnimplementedPluginHooksServer
	bridge pluginapiv1.ServeHTTPPlugin
}

func (p *examplePlugin) ServeHTTP(stream grpc.BidiStreamingServer[pluginapiv1.ServeHTTPRequest, pluginapiv1.ServeHTTPResponse]) error {
	return p.bridge.Serve(stream)
}

// exampleStartPlugin serves handler as a plugin process would, on a
// loopback port, and returns a gRPC connection to it and a function that
// stops both.
func exampleStartPlugin(handler http.Handler) (*grpc.ClientConn, func()) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	pluginapiv1.RegisterPluginHooksServer(srv, &examplePlugin{bridge: pluginapiv1.ServeHTTPPlugin{Handler: handler}})
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	return conn, func() {
		conn.Close()
		srv.Stop()
	}
}

// The plugin's side: an ordinary http.Handler, served over the PluginHooks
// service by a ServeHTTPPlugin.
func Example_plugin() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s\n", r.URL.Query().Get("name"))
	})

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	// The bridge's codec sends large response messages in buffers of
	// their size, not in gRPC's 1 MiB ones.
	srv := grpc.NewServer(grpc.ForceServerCodecV2(pluginapiv1.ServeHTTPServerCodec{}))
	// examplePlugin's ServeHTTP method calls bridge.Serve(stream).
	pluginapiv1.RegisterPluginHooksServer(srv, &examplePlugin{
		bridge: pluginapiv1.ServeHTTPPlugin{Handler: mux},
	})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	// What a host does with it:
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	host := pluginapiv1.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(conn))
	rec := httptest.NewRecorder()
	host.ServeHTTP(rec, httptest.NewRequest("GET", "/hello?name=gopher", nil))
	fmt.Print(rec.Code, " ", rec.Body)
	// Output: 200 hello, gopher
}

// The host's side: a ServeHTTPHost is an http.Handler that forwards each
// request over a new stream of the plugin's ServeHTTP method. Here the
// upload streams to the plugin while the plugin reads it.
func Example_host() {
	conn, stop := exampleStartPlugin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %s: %d bytes\n", r.Method, r.URL.Path, n)
	}))
	defer stop()

	client := pluginapiv1.NewPluginHooksClient(conn)
	host := &pluginapiv1.ServeHTTPHost{Open: client.ServeHTTP}
	srv := httptest.NewServer(http.StripPrefix("/plugins/demo", host))
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/plugins/demo/upload", "text/plain", strings.NewReader(strings.Repeat("x", 100_000)))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n%s", resp.Status, body)
	// Output:
	// 200 OK
	// POST /upload: 100000 bytes
}

// Forward reports what ServeHTTP would only log. When the plugin fails after
// the response started, the error wraps ErrServeHTTPAborted, and the caller
// must cut the response short so that the client does not take it for a
// complete one.
func Example_forward() {
	conn, stop := exampleStartPlugin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "partial")
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the plugin gives up midway
	}))
	defer stop()

	host := pluginapiv1.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(conn))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := host.Forward(w, r)
		if errors.Is(err, pluginapiv1.ErrServeHTTPAborted) {
			fmt.Println("host: the response was cut off")
			panic(http.ErrAbortHandler)
		}
	}))
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	fmt.Printf("client: %s, body %q, error %v\n", resp.Status, body, err)
	// Output:
	// host: the response was cut off
	// client: 200 OK, body "partial", error unexpected EOF
}

// NewPluginHooksServeHTTPHost builds the host from the PluginHooks client;
// mount it where the plugin's URLs live.
func Example_newPluginHooksServeHTTPHost() {
	conn, stop := exampleStartPlugin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "the plugin got %s (the host got %s)\n", r.URL.Path, r.RequestURI)
	}))
	defer stop()

	host := pluginapiv1.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(conn))
	mux := http.NewServeMux()
	mux.Handle("/plugins/demo/", http.StripPrefix("/plugins/demo", host))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/plugins/demo/hello", nil))
	fmt.Print(rec.Body)
	// Output: the plugin got /hello (the host got /plugins/demo/hello)
}

// The host's Init fills in what the plugin cannot learn from the request
// itself; the plugin's handler finds it in the request's context.
func Example_requestInitFromContext() {
	conn, stop := exampleStartPlugin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		init, _ := pluginapiv1.ServeHTTPRequestInitFromContext(r.Context())
		pc := init.GetPluginContext()
		fmt.Fprintf(w, "request %s from %s\n", pc.GetRequestId(), pc.GetIpAddress())
	}))
	defer stop()

	host := pluginapiv1.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(conn))
	host.Init = func(r *http.Request, init *pluginapiv1.ServeHTTPRequestInit) {
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		init.PluginContext = &pluginapiv1.PluginContext{
			RequestId: r.Header.Get("X-Request-Id"),
			IpAddress: ip,
		}
	}

	req := httptest.NewRequest("GET", "/hello", nil) // from 192.0.2.1:1234
	req.Header.Set("X-Request-Id", "r-42")
	rec := httptest.NewRecorder()
	host.ServeHTTP(rec, req)
	fmt.Print(rec.Body)
	// Output: request r-42 from 192.0.2.1
}
