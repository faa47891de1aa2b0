package bench

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// BenchmarkExchange runs every workload on every system. Besides ns/op,
// B/op and allocs/op of the host (this process) it reports the plugin's
// allocations per exchange, the CPU time each process spent per exchange,
// and MB/s, req/s or events/s.
func BenchmarkExchange(b *testing.B) {
	for _, wl := range workloads {
		b.Run("work="+wl.name, func(b *testing.B) {
			for _, name := range systemNames {
				b.Run("sys="+name, func(b *testing.B) {
					sys, err := getSystem(name)
					if err != nil {
						b.Fatal(err)
					}
					runExchanges(b, sys, wl)
				})
			}
		})
	}
}

func runExchanges(b *testing.B, sys *system, wl workload) {
	ctx := context.Background()
	// One exchange first, so that connections are up and pools are warm.
	if err := newExchanger(sys, wl).do(ctx); err != nil {
		b.Fatal(err)
	}
	// The plugin process's figures: the Go plugin's, or the Python
	// process's (CPU time and switches only).
	readPlugin := sys.pluginStats()
	var pluginBefore pluginStats
	if readPlugin != nil {
		var err error
		if pluginBefore, err = readPlugin(); err != nil {
			b.Fatal(err)
		}
	}
	hostCPU, hostSwitches := usage()
	if n := wl.bodyBytes(); n > 0 {
		b.SetBytes(n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if wl.conc > 1 {
		procs := runtime.GOMAXPROCS(0)
		b.SetParallelism((wl.conc + procs - 1) / procs)
		b.RunParallel(func(pb *testing.PB) {
			e := newExchanger(sys, wl)
			for pb.Next() {
				if err := e.do(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		e := newExchanger(sys, wl)
		for range b.N {
			if err := e.do(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu, switches := usage()
	hostCPU, hostSwitches = cpu-hostCPU, switches-hostSwitches

	switch wl.kind {
	case "get":
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	case "events":
		b.ReportMetric(float64(b.N)*float64(wl.size)/elapsed.Seconds(), "events/s")
	}
	// CPU time tells the systems apart even when other work shares the
	// cores and stretches the wall-clock figures.
	b.ReportMetric(float64(hostCPU.Nanoseconds())/float64(b.N), "host-cpu-ns/op")
	// Context switches stand for wake-ups: goroutine hand-offs that park
	// and wake OS threads cost more than the work they pass on.
	b.ReportMetric(float64(hostSwitches)/float64(b.N), "host-switches/op")
	if readPlugin != nil {
		after, err := readPlugin()
		if err != nil {
			b.Fatal(err)
		}
		if sys.plugin != nil { // Python's allocations are not counted
			b.ReportMetric(float64(after.bytes-pluginBefore.bytes)/float64(b.N), "plugin-B/op")
			b.ReportMetric(float64(after.objects-pluginBefore.objects)/float64(b.N), "plugin-allocs/op")
		}
		b.ReportMetric(float64((after.cpu-pluginBefore.cpu).Nanoseconds())/float64(b.N), "plugin-cpu-ns/op")
		b.ReportMetric(float64(after.switches-pluginBefore.switches)/float64(b.N), "plugin-switches/op")
	}
}

// peakWorkloads stream bodies of growing size, to show that memory stays
// flat in the body size.
var peakWorkloads = []workload{
	{name: "upload-64MiB", kind: "upload", size: 64 << 20},
	{name: "upload-1GiB", kind: "upload", size: 1 << 30},
	{name: "download-64MiB", kind: "download", size: 64 << 20},
	{name: "download-1GiB", kind: "download", size: 1 << 30},
	{name: "echo-1GiB", kind: "echo", size: 1 << 30},
}

// BenchmarkPeakRSS reports the peak resident set size of the host (this
// process) and of the plugin while one body streams through, starting each
// exchange from the live heap (after a GC that returns free memory to the
// OS). Run it with -benchtime=1x: each exchange is a measurement.
func BenchmarkPeakRSS(b *testing.B) {
	for _, wl := range peakWorkloads {
		b.Run("work="+wl.name, func(b *testing.B) {
			for _, name := range []string{"raw-tcp", "bridge-tcp", "proxy-tcp", "direct"} {
				b.Run("sys="+name, func(b *testing.B) {
					sys, err := getSystem(name)
					if err != nil {
						b.Fatal(err)
					}
					e := newExchanger(sys, wl)
					var hostPeak, pluginPeak int64
					b.SetBytes(wl.bodyBytes())
					b.ReportAllocs()
					for range b.N {
						b.StopTimer()
						if err := resetPeakRSS(); err != nil {
							b.Fatal(err)
						}
						if sys.plugin != nil {
							if err := sys.plugin.resetPeak(); err != nil {
								b.Fatal(err)
							}
						}
						b.StartTimer()
						if err := e.do(context.Background()); err != nil {
							b.Fatal(err)
						}
						b.StopTimer()
						kib, err := peakRSS()
						if err != nil {
							b.Fatal(err)
						}
						hostPeak = max(hostPeak, kib)
						if sys.plugin != nil {
							if kib, err = sys.plugin.peak(); err != nil {
								b.Fatal(err)
							}
							pluginPeak = max(pluginPeak, kib)
						}
						b.StartTimer()
					}
					b.ReportMetric(float64(hostPeak)/1024, "host-peak-MiB")
					if sys.plugin != nil {
						b.ReportMetric(float64(pluginPeak)/1024, "plugin-peak-MiB")
					}
				})
			}
		})
	}
}

// TestSystems checks, with small bodies, that every system serves every
// workload correctly, so that the benchmarks measure working exchanges.
func TestSystems(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the plugin's memory figures need Linux")
	}
	const size = 300<<10 + 7 // several chunks and a ragged end
	checks := []workload{
		{name: "upload", kind: "upload", size: size},
		{name: "download", kind: "download", size: size},
		{name: "echo", kind: "echo", size: size},
		{name: "get", kind: "get", size: int64(len(small))},
		{name: "events", kind: "events", size: 10},
	}
	for _, name := range systemNames {
		t.Run(name, func(t *testing.T) {
			sys, err := getSystem(name)
			if err != nil {
				t.Fatal(err)
			}
			for _, wl := range checks {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				e := newExchanger(sys, wl)
				e.w.keep = true
				err := e.do(ctx)
				cancel()
				if err != nil {
					t.Errorf("%s: %v", wl.name, err)
					continue
				}
				if sys.handler == nil {
					continue // raw checks its own counts
				}
				if (wl.kind == "download" || wl.kind == "echo") && e.w.crc != wantCRC(size) {
					t.Errorf("%s: body differs from what was sent", wl.name)
				}
				if wl.kind == "events" && e.w.flushes == 0 {
					t.Errorf("%s: no flush reached the host's ResponseWriter", wl.name)
				}
			}
		})
	}
	if _, err := mustPlugin(t).stats(); err != nil {
		t.Errorf("plugin memstats: %v", err)
	}
	if _, err := mustPlugin(t).peak(); err != nil {
		t.Errorf("plugin peak RSS: %v", err)
	}
}

func mustPlugin(t *testing.T) *plugin {
	t.Helper()
	p, err := startPlugin("default")
	if err != nil {
		t.Fatal(err)
	}
	return p
}
