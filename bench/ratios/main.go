// Command ratios turns the output of the bench package's BenchmarkExchange
// and BenchmarkPython into the Markdown tables of BENCHMARKS.md: the median
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
var line = regexp.MustCompile(`^Benchmark(Exchange|PythonWSGI|Python)/work=([^/]+)/sys=(\S+?)(-\d+)?\s+\d+\s+(.*)$`)

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
