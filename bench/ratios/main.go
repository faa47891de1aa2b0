// Command ratios turns the output of the bench package's BenchmarkExchange,
// BenchmarkPython and the WebSocket benchmarks into the Markdown tables of
// BENCHMARKS.md: the median
// of each metric per workload and system, and the bridge's figures as
// ratios to raw and to the proxy over the same transport (for Python: to
// raw over grpc.aio and to uvicorn behind the proxy), taken from the same
// run. For Python it also checks the ratios against the targets of issue
// 19 at the default chunk size: GET latency at most 1.4 times uvicorn's
// (1.5 for WSGI), downloads at least 0.3 of its throughput and uploads
// 0.7.
// BenchmarkPythonWSGI's tables compare the threaded WSGI facade with the
// grpc.aio one and with uvicorn --interface wsgi.
//
//	go run ./bench/ratios < bench/results/default.txt
//	go run ./bench/ratios < bench/results/python.txt
//	go run ./bench/ratios < bench/results/python-wsgi.txt
//	go run ./bench/ratios < bench/results/ws18.txt
//
// For WebSockets (BenchmarkWebSocket, BenchmarkWebSocketIdle,
// BenchmarkPythonWebSocket) it prints the bridge against the proxy per
// workload and transport, then each target of issue 18 (upgrade.md §7)
// with its ratio and whether it was met, then each process's CPU time.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// line matches one result: benchmark, workload, system, iterations, then
// value-unit pairs.
var line = regexp.MustCompile(`^Benchmark(Exchange|PythonWebSocket|PythonWSGI|Python|WebSocketIdle|WebSocket)/work=([^/]+)/sys=(\S+?)(-\d+)?\s+\d+\s+(.*)$`)

type key struct{ work, sys, unit string }

func main() {
	samples, works, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ratios:", err)
		os.Exit(1)
	}
	median := func(work, sys, unit string) (float64, bool) {
		v := samples[key{work, sys, unit}]
		if len(v) == 0 {
			return 0, false
		}
		v = slices.Clone(v)
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2], true
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2, true
	}
	printed := false
	if len(works["Exchange"]) > 0 {
		printExchange(works["Exchange"], median)
		printed = true
	}
	if len(works["Python"]) > 0 {
		if printed {
			fmt.Println()
		}
		printPython(works["Python"], median, pythonTables)
		printed = true
	}
	if len(works["PythonWSGI"]) > 0 {
		if printed {
			fmt.Println()
		}
		printPython(works["PythonWSGI"], median, wsgiTables)
		printed = true
	}
	if len(works["WebSocket"])+len(works["WebSocketIdle"])+len(works["PythonWebSocket"]) > 0 {
		if printed {
			fmt.Println()
		}
		printWebSocket(slices.Concat(works["WebSocket"], works["WebSocketIdle"]), works["PythonWebSocket"], median)
	}
}

// medianFunc returns the median of a metric's samples, false if there are
// none.
type medianFunc func(work, sys, unit string) (float64, bool)

// printExchange prints BenchmarkExchange's tables.
func printExchange(works []string, median medianFunc) {
	fmt.Println("| workload | transport | metric | raw | bridge | proxy | direct | bridge/raw | bridge/proxy |")
	fmt.Println("|---|---|---|--:|--:|--:|--:|--:|--:|")
	for _, work := range works {
		for _, unit := range metrics(work) {
			for _, tr := range []string{"tcp", "unix"} {
				raw, okRaw := median(work, "raw-"+tr, unit)
				bridge, okBridge := median(work, "bridge-"+tr, unit)
				proxy, okProxy := median(work, "proxy-"+tr, unit)
				direct, _ := median(work, "direct", unit)
				if !okBridge {
					continue
				}
				f := num
				if strings.HasSuffix(unit, "ns/op") {
					f = dur
				}
				fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", work, tr, unit,
					f(raw, okRaw), f(bridge, true), f(proxy, okProxy), f(direct, direct > 0),
					ratio(bridge, raw, okRaw), ratio(bridge, proxy, okProxy))
			}
		}
	}

	fmt.Println()
	fmt.Println("| workload | system | host CPU/op | plugin CPU/op | host B/op | host allocs/op | host B per body byte | plugin B/op | plugin allocs/op | plugin B per body byte | host switches/op | plugin switches/op |")
	fmt.Println("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, work := range works {
		for _, sys := range []string{"raw-tcp", "bridge-tcp", "proxy-tcp", "direct"} {
			b, ok := median(work, sys, "B/op")
			if !ok {
				continue
			}
			allocs, _ := median(work, sys, "allocs/op")
			pb, okPB := median(work, sys, "plugin-B/op")
			hostPerByte, pluginPerByte := "n/a", "n/a"
			if mbs, ok := median(work, sys, "MB/s"); ok && mbs > 0 {
				ns, _ := median(work, sys, "ns/op")
				bodyBytes := mbs * 1e6 * ns / 1e9 // MB/s is body bytes per second
				hostPerByte = fmt.Sprintf("%.3f", b/bodyBytes)
				if okPB {
					pluginPerByte = fmt.Sprintf("%.3f", pb/bodyBytes)
				}
			}
			pa, okPA := median(work, sys, "plugin-allocs/op")
			hc, okHC := median(work, sys, "host-cpu-ns/op")
			pc, okPC := median(work, sys, "plugin-cpu-ns/op")
			hs, okHS := median(work, sys, "host-switches/op")
			ps, okPS := median(work, sys, "plugin-switches/op")
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", work, sys,
				dur(hc, okHC), dur(pc, okPC),
				num(b, true), num(allocs, true), hostPerByte, num(pb, okPB), num(pa, okPA), pluginPerByte,
				num(hs, okHS), num(ps, okPS))
		}
	}
}

// pyTables names the systems of one Python benchmark's tables: the one
// measured, what it is compared with over gRPC, and uvicorn behind the
// proxy, with the ratios' column names and the GET latency target.
type pyTables struct {
	base, subject, uvicorn  string
	baseRatio, uvicornRatio string
	getMax                  float64
	allocs                  bool // whether the host's bytes and allocations are listed
}

// pythonTables are BenchmarkPython's (the bridge against raw over grpc.aio
// and uvicorn; Python's allocations are not measured) and
// BenchmarkPythonWSGI's (the threaded WSGI facade against the grpc.aio one
// and uvicorn --interface wsgi).
var (
	pythonTables = pyTables{"py-raw", "py-bridge", "py-uvicorn", "bridge/raw", "bridge/uvicorn", 1.4, true}
	wsgiTables   = pyTables{"py-wsgi-aio", "py-wsgi", "py-wsgi-uvicorn", "wsgi/aio", "wsgi/uvicorn", 1.5, false}
)

// printPython prints the tables of t: the ratios against the targets, then
// the CPU time (and allocations) of each process.
func printPython(works []string, median medianFunc, t pyTables) {
	fmt.Printf("| workload | metric | %s | %s | %s | %s | %s | target |\n", t.base, t.subject, t.uvicorn, t.baseRatio, t.uvicornRatio)
	fmt.Println("|---|---|--:|--:|--:|--:|--:|---|")
	for _, work := range works {
		for _, unit := range metrics(work) {
			base, okBase := median(work, t.base, unit)
			subject, ok := median(work, t.subject, unit)
			uvicorn, okUvicorn := median(work, t.uvicorn, unit)
			if !ok {
				continue
			}
			f := num
			if strings.HasSuffix(unit, "ns/op") {
				f = dur
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", work, unit,
				f(base, okBase), f(subject, true), f(uvicorn, okUvicorn),
				ratio(subject, base, okBase), ratio(subject, uvicorn, okUvicorn),
				target(work, unit, subject, uvicorn, okUvicorn, t.getMax))
		}
	}

	fmt.Println()
	if t.allocs {
		fmt.Println("| workload | system | host CPU/op | Python CPU/op | host B/op | host allocs/op | host switches/op | Python switches/op |")
		fmt.Println("|---|---|--:|--:|--:|--:|--:|--:|")
	} else {
		fmt.Println("| workload | system | host CPU/op | Python CPU/op | host switches/op | Python switches/op |")
		fmt.Println("|---|---|--:|--:|--:|--:|")
	}
	for _, work := range works {
		for _, sys := range []string{t.base, t.subject, t.uvicorn} {
			b, okB := median(work, sys, "B/op")
			hc, okHC := median(work, sys, "host-cpu-ns/op")
			if (t.allocs && !okB) || (!t.allocs && !okHC) {
				continue
			}
			pc, okPC := median(work, sys, "plugin-cpu-ns/op")
			hs, okHS := median(work, sys, "host-switches/op")
			ps, okPS := median(work, sys, "plugin-switches/op")
			if t.allocs {
				allocs, _ := median(work, sys, "allocs/op")
				fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", work, sys,
					dur(hc, okHC), dur(pc, okPC), num(b, true), num(allocs, true),
					num(hs, okHS), num(ps, okPS))
			} else {
				fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", work, sys,
					dur(hc, okHC), dur(pc, okPC), num(hs, okHS), num(ps, okPS))
			}
		}
	}
}

// target checks the bridge against issue 19's targets for Python plugins
// at the default chunk size: GET latency at most getMax times uvicorn's
// behind the proxy, download throughput at least 0.3 of it and upload 0.7.
// Other figures have none.
func target(work, unit string, bridge, uvicorn float64, ok bool, getMax float64) string {
	var want string
	var met bool
	r := bridge / uvicorn
	switch {
	case unit == "ns/op" && strings.HasPrefix(work, "get-c1"):
		want, met = fmt.Sprintf("≤ %.1f", getMax), r <= getMax
	case unit == "MB/s" && strings.HasPrefix(work, "download"):
		want, met = "≥ 0.3", r >= 0.3
	case unit == "MB/s" && strings.HasPrefix(work, "upload"):
		want, met = "≥ 0.7", r >= 0.7
	default:
		return ""
	}
	switch {
	case !ok || uvicorn == 0:
		return want
	case met:
		return want + ": met"
	}
	return want + ": missed"
}

// metrics are the figures compared for a workload; cpu-ns/op is the CPU
// time of host and plugin together.
func metrics(work string) []string {
	switch {
	case strings.HasPrefix(work, "get-c1"):
		return []string{"ns/op", "req/s", "cpu-ns/op"}
	case strings.HasPrefix(work, "get-"):
		return []string{"req/s", "cpu-ns/op"}
	case strings.HasPrefix(work, "events-"):
		return []string{"events/s", "cpu-ns/op"}
	}
	return []string{"MB/s", "cpu-ns/op"}
}

// parse returns the samples, and each benchmark's workloads in the order
// they came. Workloads of the two benchmarks share names but not systems.
func parse(r io.Reader) (map[key][]float64, map[string][]string, error) {
	samples := make(map[key][]float64)
	works := make(map[string][]string)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		bench, work, sys := m[1], m[2], m[3]
		if !slices.Contains(works[bench], work) {
			works[bench] = append(works[bench], work)
		}
		fields := strings.Fields(m[5])
		cpu, sawCPU := 0.0, false
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, nil, fmt.Errorf("%q: %w", sc.Text(), err)
			}
			unit := fields[i+1]
			k := key{work, sys, unit}
			samples[k] = append(samples[k], v)
			if unit == "host-cpu-ns/op" || unit == "plugin-cpu-ns/op" {
				cpu, sawCPU = cpu+v, true
			}
		}
		if sawCPU {
			// Both processes' CPU time: what the exchange costs the machine.
			k := key{work, sys, "cpu-ns/op"}
			samples[k] = append(samples[k], cpu)
		}
	}
	return samples, works, sc.Err()
}

func num(v float64, ok bool) string {
	switch {
	case !ok:
		return "n/a"
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// dur formats nanoseconds.
func dur(ns float64, ok bool) string {
	switch {
	case !ok:
		return "n/a"
	case ns >= 1e6:
		return fmt.Sprintf("%.1f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.0f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

func ratio(a, b float64, ok bool) string {
	if !ok || b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// wsTransports are the transports of the Go WebSocket systems.
var wsTransports = []string{"tcp", "unix"}

// wsMetrics are the figures compared for a WebSocket workload.
func wsMetrics(work string) []string {
	switch {
	case strings.HasPrefix(work, "ws-handshake-c1"):
		return []string{"ns/op", "upgrades/s", "cpu-ns/op"}
	case strings.HasPrefix(work, "ws-handshake-"):
		return []string{"upgrades/s", "cpu-ns/op"}
	case strings.HasPrefix(work, "ws-echo-") && strings.HasSuffix(work, "-s1"):
		return []string{"p50-ns", "p99-ns", "msgs/s", "cpu-ns/op"}
	case strings.HasPrefix(work, "ws-echo-"), strings.HasPrefix(work, "ws-push-"):
		return []string{"msgs/s", "cpu-ns/op"}
	case strings.HasPrefix(work, "ws-idle-"):
		return []string{"host-heap-B/session", "host-stack-B/session", "plugin-heap-B/session", "plugin-stack-B/session"}
	case strings.HasPrefix(work, "http-get-"):
		return []string{"ns/op", "cpu-ns/op"}
	}
	return []string{"MB/s", "cpu-ns/op"}
}

// printWebSocket prints the WebSocket tables: the figures of the bridge
// and the proxy, the targets of issue 18, and the CPU time per process.
// goWorks are BenchmarkWebSocket's and BenchmarkWebSocketIdle's workloads,
// pyWorks BenchmarkPythonWebSocket's (the names overlap, the systems not).
func printWebSocket(goWorks, pyWorks []string, median medianFunc) {
	format := func(unit string) func(float64, bool) string {
		if strings.HasSuffix(unit, "ns/op") || strings.HasSuffix(unit, "-ns") {
			return dur
		}
		return num
	}

	fmt.Println("| workload | transport | metric | bridge | proxy | direct | bridge/proxy |")
	fmt.Println("|---|---|---|--:|--:|--:|--:|")
	for _, work := range goWorks {
		for _, unit := range wsMetrics(work) {
			for _, tr := range wsTransports {
				bridge, ok := median(work, "bridge-"+tr, unit)
				if !ok {
					continue
				}
				proxy, okProxy := median(work, "proxy-"+tr, unit)
				direct, okDirect := median(work, "direct", unit)
				f := format(unit)
				fmt.Printf("| %s | %s | %s | %s | %s | %s | %s |\n", work, tr, unit,
					f(bridge, true), f(proxy, okProxy), f(direct, okDirect), ratio(bridge, proxy, okProxy))
			}
		}
	}
	if len(pyWorks) > 0 {
		fmt.Println()
		fmt.Println("| workload | metric | py-bridge | py-uvicorn | bridge/uvicorn |")
		fmt.Println("|---|---|--:|--:|--:|")
		for _, work := range pyWorks {
			for _, unit := range wsMetrics(work) {
				bridge, ok := median(work, "py-bridge", unit)
				if !ok {
					continue
				}
				uvicorn, okU := median(work, "py-uvicorn", unit)
				f := format(unit)
				fmt.Printf("| %s | %s | %s | %s | %s |\n", work, unit, f(bridge, true), f(uvicorn, okU), ratio(bridge, uvicorn, okU))
			}
		}
	}

	fmt.Println()
	fmt.Println("| target (issue 18) | transport | bridge | reference | ratio | wanted | result |")
	fmt.Println("|---|---|--:|--:|--:|---|---|")
	// check prints one target: the ratio a/b (or, with diff, a-b) against
	// want, at most (atMost) or at least.
	check := func(name, tr string, a, b float64, okA, okB bool, f func(float64, bool) string, atMost bool, want float64, diff bool) {
		if !okA || !okB || (!diff && b == 0) {
			return
		}
		r, rs, ws := a/b, "", ""
		if diff {
			r = a - b
			rs = fmt.Sprintf("%+.1f KiB", r/1024)
			ws = fmt.Sprintf("%.0f KiB", want/1024)
		} else {
			rs = fmt.Sprintf("%.2f", r)
			ws = fmt.Sprintf("%.2f", want)
		}
		met := r >= want
		if atMost {
			met = r <= want
			ws = "≤ " + ws
		} else {
			ws = "≥ " + ws
		}
		result := "missed"
		if met {
			result = "met"
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s |\n", name, tr, f(a, true), f(b, true), rs, ws, result)
	}
	get := func(work, sys, unit string) (float64, bool) { return median(work, sys, unit) }
	for _, tr := range wsTransports {
		bridge, proxy := "bridge-"+tr, "proxy-"+tr
		v, ok := get("ws-handshake-c1", bridge, "ns/op")
		g, okG := get("http-get-c1", bridge, "ns/op")
		check("handshake c=1 latency / bridge GET c=1", tr, v, g, ok, okG, dur, true, 1.3, false)
		for _, work := range []string{"ws-handshake-c1", "ws-handshake-c32"} {
			v, ok := get(work, bridge, "upgrades/s")
			p, okP := get(work, proxy, "upgrades/s")
			check(strings.TrimPrefix(work, "ws-")+" upgrades/s / proxy", tr, v, p, ok, okP, num, false, 0.8, false)
		}
		for _, c := range []struct {
			unit string
			want float64
		}{{"p50-ns", 1.5}, {"p99-ns", 2}} {
			v, ok := get("ws-echo-125B-s1", bridge, c.unit)
			p, okP := get("ws-echo-125B-s1", proxy, c.unit)
			check("echo 125 B, 1 session, "+strings.TrimSuffix(c.unit, "-ns")+" / proxy", tr, v, p, ok, okP, dur, true, c.want, false)
		}
		v, ok = get("ws-echo-125B-s32", bridge, "msgs/s")
		p, okP := get("ws-echo-125B-s32", proxy, "msgs/s")
		check("echo 125 B, 32 sessions, msgs/s / proxy", tr, v, p, ok, okP, num, false, 1, false)
		v, ok = get("ws-push-100B", bridge, "msgs/s")
		p, okP = get("ws-push-100B", proxy, "msgs/s")
		check("push 100 B msgs/s / proxy", tr, v, p, ok, okP, num, false, 1, false)
		e, okE := get("http-echo-64MiB", bridge, "MB/s")
		for _, work := range []string{"ws-bulk-1MiB", "ws-bulk-16MiB"} {
			v, ok := get(work, bridge, "MB/s")
			p, okP := get(work, proxy, "MB/s")
			name := strings.TrimPrefix(work, "ws-")
			check(name+" MB/s / bridge HTTP echo-64MiB", tr, v, e, ok, okE, num, false, 0.9, false)
			check(name+" MB/s / proxy", tr, v, p, ok, okP, num, false, 0.5, false)
		}
		// The host process's memory holds the client's too: the direct
		// system's figure, subtracted from both.
		idle := "ws-idle-1000"
		client, okC := get(idle, "direct", "host-heap-B/session")
		bh, okB := get(idle, bridge, "host-heap-B/session")
		ph, okP := get(idle, proxy, "host-heap-B/session")
		check("idle session host heap (client's subtracted) / proxy", tr, bh-client, ph-client, okB && okC, okP && okC, num, true, 0.5, false)
		bp, okBP := get(idle, bridge, "plugin-heap-B/session")
		dp, okDP := get(idle, "direct", "plugin-heap-B/session")
		check("idle session plugin heap − net/http's", tr, bp, dp, okBP, okDP, num, true, 16<<10, true)
		bs, _ := get(idle, bridge, "plugin-stack-B/session")
		ds, _ := get(idle, "direct", "plugin-stack-B/session")
		check("idle session plugin heap+stack − net/http's", tr, bp+bs, dp+ds, okBP, okDP, num, true, 16<<10, true)
	}
	for _, c := range []struct {
		work, unit string
		atMost     bool
		want       float64
	}{{"ws-echo-125B-s1", "p50-ns", true, 1.5}, {"ws-bulk-1MiB", "MB/s", false, 0.5}} {
		v, ok := get(c.work, "py-bridge", c.unit)
		u, okU := get(c.work, "py-uvicorn", c.unit)
		f := num
		if c.unit == "p50-ns" {
			f = dur
		}
		check("Python "+strings.TrimPrefix(c.work, "ws-")+" "+c.unit+" / uvicorn", "tcp", v, u, ok, okU, f, c.atMost, c.want, false)
	}

	fmt.Println()
	fmt.Println("| workload | system | host CPU/op | plugin CPU/op | CPU per MB | host allocs/op | plugin allocs/op | host switches/op | plugin switches/op |")
	fmt.Println("|---|---|--:|--:|--:|--:|--:|--:|--:|")
	cpuRows := []struct {
		works   []string
		systems []string
	}{
		{goWorks, []string{"bridge-tcp", "proxy-tcp", "bridge-unix", "proxy-unix"}},
		{pyWorks, []string{"py-bridge", "py-uvicorn"}},
	}
	for _, row := range cpuRows {
		for _, work := range row.works {
			if strings.HasPrefix(work, "ws-idle-") {
				continue
			}
			for _, sys := range row.systems {
				hc, ok := median(work, sys, "host-cpu-ns/op")
				if !ok {
					continue
				}
				pc, okPC := median(work, sys, "plugin-cpu-ns/op")
				perMB := "n/a"
				if mbs, ok := median(work, sys, "MB/s"); ok && mbs > 0 {
					ns, _ := median(work, sys, "ns/op")
					cpu, _ := median(work, sys, "cpu-ns/op")
					perMB = dur(cpu/(mbs*ns/1e9), true) // MB/s × s/op = MB/op
				}
				ha, okHA := median(work, sys, "allocs/op")
				pa, okPA := median(work, sys, "plugin-allocs/op")
				hs, okHS := median(work, sys, "host-switches/op")
				ps, okPS := median(work, sys, "plugin-switches/op")
				fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", work, sys,
					dur(hc, true), dur(pc, okPC), perMB, num(ha, okHA), num(pa, okPA), num(hs, okHS), num(ps, okPS))
			}
		}
	}
}
