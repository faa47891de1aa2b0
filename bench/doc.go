// Package bench measures the generated ServeHTTP bridge against the
// transport it runs on and against what a plugin host would use instead.
//
// Everything lives in the package's tests. The benchmark binary re-executes
// itself as the plugin process, so every byte really crosses a socket
// between two processes. Side by side, per workload:
//
//   - raw: a bare bidirectional gRPC stream carrying the bridge's own
//     messages, 64 KiB chunks one way and a small answer back: the
//     transport's ceiling;
//   - bridge: the generated ServeHTTPHost, gRPC over 127.0.0.1 TCP or a unix
//     socket, and the generated ServeHTTPPlugin in the plugin process;
//   - proxy: [net/http/httputil.ReverseProxy] to the plugin's own net/http
//     server, over 127.0.0.1 TCP or a unix socket;
//   - direct: the plugin's handler called in the host process (the floor).
//
// BenchmarkPython does the same for a plugin written in Python: one plain
// ASGI app, python/app.py, with the Go handler's routes and bytes, run by
// Debian's /usr/bin/python3 with gen/python on its path:
//
//   - py-raw: the raw stream served by grpc.aio (python/raw.py), the
//     ceiling of any Python plugin over this contract;
//   - py-bridge: the generated ServeHTTPHost, gRPC over 127.0.0.1 TCP, and
//     the generated serve_plugin_hooks serving the app (python/plugin.py);
//   - py-uvicorn: [net/http/httputil.ReverseProxy] to uvicorn serving the
//     app over 127.0.0.1 TCP (h11 on asyncio's loop, as Debian's package
//     alone has it), on a listening socket the host passes with --fd.
//
// Its plugin-cpu-ns/op and plugin-switches/op are the Python process's,
// from /proc; the processes get SIGTERM when the tests end.
//
// python/facade.py measures the ASGI facade alone, without gRPC: the app
// served from an in-memory stream against raw's handler on the same stream,
// in CPU time per exchange (TestPythonFacadeAlone runs it briefly):
//
//	PYTHONPATH=gen/python:bench/python /usr/bin/python3 bench/python/facade.py 3000
//
// Run them with
//
//	go test ./bench -run '^$' -bench Exchange -count 6 | tee bench/results/default.txt
//	go test ./bench -run '^$' -bench PeakRSS -benchtime 1x -count 3
//	go test ./bench -run '^$' -bench Python -count 6 | tee bench/results/python.txt
//
// and compare with benchstat -col /sys, or with go run ./bench/ratios,
// which prints the medians and the bridge's ratios to raw and to the proxy
// (for Python: to py-raw and to py-uvicorn, against the targets of issue 8).
// Environment: HTTPBRIDGE_BENCH_GRPC names a gRPC configuration of both
// processes ("default", "pool" for the recommended buffer pool, "workers"
// for grpc.NumStreamWorkers on the plugin's server; see grpcProfiles); HTTPBRIDGE_BENCH_PPROF=DIR makes the plugin process write
// its CPU and allocation profiles into DIR; HTTPBRIDGE_BENCH_CHUNK sets the
// bridge's ChunkSize on both ends (the Python plugin's too);
// HTTPBRIDGE_BENCH_LOOP is the Python processes' event loop, as uvicorn's
// --loop ("auto", the default, is uvloop's where installed, for the bridge
// and uvicorn alike; "asyncio"); HTTPBRIDGE_BENCH_MMAP is the Python
// plugin's mmap_threshold;
// HTTPBRIDGE_BENCH_PYPROF=DIR runs each Python process under cProfile,
// which writes py-bridge.prof and py-uvicorn.prof into DIR when it stops;
// HTTPBRIDGE_BENCH_UVICORN adds arguments to uvicorn's, such as
// "--http httptools".
//
// BenchmarkWebSocket, BenchmarkWebSocketIdle and BenchmarkPythonWebSocket
// (websocket_test.go) measure WebSocket sessions, issue 18's targets
// (upgrade.md §7): the generated host with UpgradeProtocols ["websocket"]
// against the proxy, both behind a net/http server in this process that a
// coder/websocket client dials, in front of the same coder/websocket
// handler in the plugin process (for Python: python/app.py's /ws, bridged
// or under uvicorn --ws wsproto). Handshakes at concurrency 1 and 32,
// 125-byte echoes on one session (p50, p99) and on 32, 100 000 pushed
// messages of 100 bytes, 1 MiB and 16 MiB echoes, and, with -benchtime 1x,
// the heap and stacks 1 000 idle sessions add to each process. Rounds of
//
//	go test ./bench -run '^$' -bench '^BenchmarkWebSocket$'
//	go test ./bench -run '^$' -bench '^BenchmarkWebSocketIdle$' -benchtime 1x
//	go test ./bench -run '^$' -bench '^BenchmarkPythonWebSocket$'
//
// appended to one file, then go run ./bench/ratios, give BENCHMARKS.md's
// WebSocket tables and the targets met or missed.
//
// Plain go test runs only a quick check that every system serves the
// workloads correctly; the Python systems' is skipped when /usr/bin/python3
// cannot import grpc, google.protobuf and uvicorn, unless CI is set.
// BENCHMARKS.md at the repository root has the method, the results and the
// recommended gRPC options.
package bench
