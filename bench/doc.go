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
// Run them with
//
//	go test ./bench -run '^$' -bench Exchange -count 6 | tee bench/results/default.txt
//	go test ./bench -run '^$' -bench PeakRSS -benchtime 1x -count 3
//
// and compare with benchstat -col /sys, or with go run ./bench/ratios,
// which prints the medians and the bridge's ratios to raw and to the proxy.
// Environment: HTTPBRIDGE_BENCH_GRPC names a gRPC configuration of both
// processes ("default", or "pool" for the recommended buffer pool; see
// grpcProfiles); HTTPBRIDGE_BENCH_PPROF=DIR makes the plugin process write
// its CPU and allocation profiles into DIR; HTTPBRIDGE_BENCH_CHUNK sets the
// bridge's ChunkSize on both ends.
//
// Plain go test runs only a quick check that every system serves the
// workloads correctly. BENCHMARKS.md at the repository root has the method,
// the results and the recommended gRPC options.
package bench
