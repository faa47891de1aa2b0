// Example is a plugin host and a plugin that talk through the generated
// bridge, as two processes, the way plugin systems run them.
//
//	go run ./example
//
// starts the host on 127.0.0.1:8080. The host creates a directory only its
// user can enter and starts the plugin as a child process (this same
// program, run with -plugin) that serves gRPC on a unix socket in it. Once
// the first line the plugin prints says it is serving, the host connects
// (the gRPC target unix:///path/to/socket) and serves the plugin's HTTP
// handler under /plugins/demo/ with the generated ServeHTTPHost. The
// plugin's handler is a plain http.ServeMux served by the generated
// ServeHTTPPlugin:
//
//	GET  /plugins/demo/hello              the plugin context the host filled in
//	POST /plugins/demo/echo               streams the body back while reading it
//	POST /plugins/demo/upload             byte count and SHA-256 of the body
//	GET  /plugins/demo/download?size=N    N bytes (byte i is i%251), streamed
//	GET  /plugins/demo/events?count=N     server-sent events, one per 100 ms
//	GET  /plugins/demo/ws?ticks=N         a WebSocket: echoes each message, and
//	                                      sends N clock ticks, one per 100 ms
//	GET  /plugins/demo/panic              a handler that panics: 500
//
// For example, from another terminal:
//
//	curl http://127.0.0.1:8080/plugins/demo/hello
//	curl --data-binary @some-file http://127.0.0.1:8080/plugins/demo/upload
//	curl -N http://127.0.0.1:8080/plugins/demo/events
//	python3 -m websockets ws://127.0.0.1:8080/plugins/demo/ws?ticks=5
//
// The host lets clients switch to WebSocket (ServeHTTPHost.UpgradeProtocols),
// and the plugin's /ws is written with gorilla/websocket, unchanged.
//
// Ctrl-C (SIGINT) or SIGTERM stops the host's HTTP server, letting requests
// in flight finish for up to 5 seconds and ending the WebSocket sessions
// (ServeHTTPHost.CloseUpgraded), then stops the plugin, which lets its
// streams finish (grpc GracefulStop), and removes the socket's directory.
//
// The plugin can be written in Python instead:
//
//	go run ./example -plugin-lang=python
//
// runs the same host with the plugin in example/python/plugin.py, a
// Starlette app with the same routes and answers, served by the generated
// Python module gen/python/mattermost/pluginapi/v1/hooks_httpbridge.py. The
// host runs it with /usr/bin/python3 (-python picks another interpreter,
// which needs grpcio, protobuf, starlette and wsproto) and PYTHONPATH set to
// gen/python. It finds both in the repository that the example was built
// from, or else in the working directory or one above it, so run the example
// from a clone.
//
// Usage:
//
//	example [-addr host:port] [-plugin-lang go|python] [-python path]
//	example -plugin -socket path
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
)

// handshake starts the first line the plugin prints on its standard output;
// the gRPC target of its server follows. It lets the host wait until the
// plugin listens.
const handshake = "httpbridge-example-plugin grpc "

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "`address` the host serves HTTP on (port 0 picks a free one)")
	plugin := flag.Bool("plugin", false, "run as the plugin: serve gRPC on the unix socket -socket, print its address, and stop on SIGTERM or when standard input closes (the host starts itself this way)")
	socket := flag.String("socket", "", "with -plugin, the `path` of the unix socket to create, in a directory only this user can enter")
	lang := flag.String("plugin-lang", "go", "the `language` of the plugin the host starts: go (this program, run with -plugin) or python (example/python/plugin.py in the repository the example was built from)")
	python := flag.String("python", "/usr/bin/python3", "with -plugin-lang=python, the Python `interpreter` that runs the plugin; it needs grpcio, protobuf, starlette and wsproto")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), "Usage: example [-addr host:port] [-plugin-lang go|python] [-python path] | -plugin -socket path\n\nRuns the httpbridge demo: a host that serves a plugin's HTTP handler under\n/plugins/demo/, and starts the plugin, in Go or Python, as a child process.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || !slices.Contains(pluginLangs, *lang) {
		if flag.NArg() == 0 {
			fmt.Fprintf(flag.CommandLine.Output(), "-plugin-lang %q: want one of %q\n", *lang, pluginLangs)
		}
		flag.Usage()
		os.Exit(2)
	}

	log.SetFlags(log.Ltime | log.Lmsgprefix)
	var err error
	if *plugin {
		log.SetPrefix("plugin: ")
		err = runPlugin(*socket)
	} else {
		log.SetPrefix("host: ")
		err = runHost(*addr, pluginCommand{lang: *lang, python: *python})
	}
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
}
