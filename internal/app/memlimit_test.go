package app

import (
	"log/slog"
	"runtime/debug"
	"testing"

	"github.com/switchyard-dev/switchyard/internal/config"
)

// restoreGC puts the runtime's soft limit and GOGC back after a test changed them.
func restoreGC(t *testing.T) {
	limit, percent := debug.SetMemoryLimit(-1), debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	t.Cleanup(func() {
		debug.SetMemoryLimit(limit)
		debug.SetGCPercent(percent)
	})
}

func gcPercent() int {
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	return p
}

func TestSetMemoryLimit_sets_the_soft_limit_and_gogc_unless_the_environment_does(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	const limit = 200 << 20

	t.Run("budget", func(t *testing.T) {
		restoreGC(t)
		t.Setenv("GOMEMLIMIT", "")
		t.Setenv("GOGC", "")
		debug.SetGCPercent(100)
		setMemoryLimit(config.Bytes(limit), log)
		if got := debug.SetMemoryLimit(-1); got != limit {
			t.Errorf("soft memory limit %d, want memory_limit %d", got, limit)
		}
		if got := gcPercent(); got != budgetGCPercent {
			t.Errorf("GOGC %d, want %d", got, budgetGCPercent)
		}
	})
	t.Run("environment wins", func(t *testing.T) {
		restoreGC(t)
		t.Setenv("GOMEMLIMIT", "1GiB")
		t.Setenv("GOGC", "100")
		debug.SetMemoryLimit(1 << 30)
		debug.SetGCPercent(100)
		setMemoryLimit(config.Bytes(limit), log)
		if got := debug.SetMemoryLimit(-1); got != 1<<30 {
			t.Errorf("soft memory limit %d, want GOMEMLIMIT's %d", got, 1<<30)
		}
		if got := gcPercent(); got != 100 {
			t.Errorf("GOGC %d, want the environment's 100", got)
		}
	})
	t.Run("no budget", func(t *testing.T) {
		restoreGC(t)
		t.Setenv("GOMEMLIMIT", "")
		t.Setenv("GOGC", "")
		debug.SetGCPercent(100)
		before := debug.SetMemoryLimit(-1)
		setMemoryLimit(0, log)
		if got := debug.SetMemoryLimit(-1); got != before {
			t.Errorf("memory_limit 0 changed the soft limit to %d", got)
		}
		if got := gcPercent(); got != 100 {
			t.Errorf("memory_limit 0 changed GOGC to %d", got)
		}
	})
}
