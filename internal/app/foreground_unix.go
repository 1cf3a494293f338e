//go:build unix

package app

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// takeTerminal makes this process the terminal's foreground process group when it was
// started inside another program's foreground job (`make dev`), and returns the function
// that hands the terminal back. It is a no-op without a terminal on stdin, or when this
// process already leads its group (a shell started it directly).
//
// Why: Ctrl-C sends SIGINT to every process of the foreground group. Under make, that
// includes make, which waits for its recipe and then kills itself with the same signal
// (GNU make re-raises SIGINT after reaping), so `make dev` ended "killed by SIGINT" however
// cleanly the daemon drained. In its own foreground group, dev alone gets Ctrl-C, drains,
// exits 0, and make exits 0 with it. While dev holds the terminal, Ctrl-Z is ignored: a
// stopped dev could not be resumed with `fg`, which continues make's group only.
func takeTerminal() (restore func()) {
	const fd = 0
	noop := func() {}
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil {
		return noop // stdin is not a terminal
	}
	self, group := os.Getpid(), syscall.Getpgrp()
	if group == self || fg != group {
		return noop // already its own job, or not in the foreground
	}
	if err := syscall.Setpgid(0, 0); err != nil {
		return noop
	}
	// A background process that sets the foreground group gets SIGTTOU unless it ignores it.
	signal.Ignore(syscall.SIGTTOU, syscall.SIGTSTP, syscall.SIGTTIN)
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, self); err != nil {
		_ = syscall.Setpgid(0, group)
		return noop
	}
	return func() { _ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, group) }
}
