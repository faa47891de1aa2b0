//go:build linux

package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc: 100 on every
// architecture Go runs Linux on.
const clockTicks = 100

// procAttr makes a child process get SIGTERM when this one dies, so that
// no Python process outlives a benchmark that was killed.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// procStats returns the CPU time (user and system, of all its threads,
// ended ones included) that process pid has used, and the context switches
// of its live threads.
func procStats(pid int) (pluginStats, error) {
	var st pluginStats
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// The command name, in parentheses, may hold spaces: count the fields
	// after it. fields[0] is field 3 (state); utime and stime are 14 and 15.
	end := bytes.LastIndexByte(stat, ')')
	fields := strings.Fields(string(stat[end+1:]))
	if end < 0 || len(fields) < 13 {
		return st, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, stat)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return st, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	st.cpu = time.Duration(ticks) * time.Second / clockTicks

	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return st, err
	}
	for _, task := range tasks {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue // the thread ended
		}
		for line := range strings.Lines(string(status)) {
			name, value, _ := strings.Cut(line, ":")
			if name == "voluntary_ctxt_switches" || name == "nonvoluntary_ctxt_switches" {
				n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
				if err != nil {
					return st, fmt.Errorf("/proc/%d/task/%s/status: %w", pid, task.Name(), err)
				}
				st.switches += n
			}
		}
	}
	return st, nil
}

// setNoDelay sets TCP_NODELAY on a listening socket; Linux passes it on to
// the connections it accepts.
func setNoDelay(f *os.File) error {
	return syscall.SetsockoptInt(int(f.Fd()), syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
}
