//go:build !linux

package bench

import (
	"errors"
	"os"
	"syscall"
)

// The Python systems run on Linux only (requirePython skips them
// elsewhere): their figures come from /proc.

func procAttr() *syscall.SysProcAttr { return nil }

func procStats(pid int) (pluginStats, error) {
	return pluginStats{}, errors.New("process figures need Linux's /proc")
}

func setNoDelay(f *os.File) error { return nil }
