//go:build unix

package bench

import (
	"syscall"
	"time"
)

// usage returns the CPU time (user and system) this process has used, and
// how many times its threads were switched out: voluntarily when one blocks
// (a goroutine hand-off that parks an OS thread, a poll with nothing ready),
// or preempted. The count stands for the wake-ups an exchange costs.
func usage() (cpu time.Duration, switches int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Nvcsw + ru.Nivcsw
}
