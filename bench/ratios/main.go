// Command ratios turns the output of the bench package's BenchmarkExchange
// into the Markdown tables of BENCHMARKS.md: the median of each metric per
// workload and system, and the bridge's figures as ratios to raw and to the
// proxy over the same transport, taken from the same run.
//
//	go run ./bench/ratios < bench/results/default.txt
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

// line matches one result: name, iterations, then value-unit pairs.
var line = regexp.MustCompile(`^BenchmarkExchange/work=([^/]+)/sys=(\S+?)(-\d+)?\s+\d+\s+(.*)$`)

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

func parse(r io.Reader) (map[key][]float64, []string, error) {
	samples := make(map[key][]float64)
	var works []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		work, sys := m[1], m[2]
		if !slices.Contains(works, work) {
			works = append(works, work)
		}
		fields := strings.Fields(m[4])
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
