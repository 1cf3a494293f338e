package harness

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/bqemu"
)

// BQEmulatorStartTimeout bounds StartBQEmulator.
var BQEmulatorStartTimeout = time.Minute

// BQEmulator is a bqemulator (PyPI, a third-party BigQuery emulator over DuckDB, installed
// by .ci/setup) on 127.0.0.1, ephemeral (tables live in memory), with default project
// bqemu.Project. The process itself is run by internal/bqemu, which `switchyard dev` uses
// too. docs/sinks.md lists what it does not support; keep tables flat.
type BQEmulator struct {
	*bqemu.Server
}

// StartBQEmulator starts an emulator logging into tb.TempDir() and stops it in tb.Cleanup.
// It fails the test when the emulator cannot start, including when it is not installed.
func StartBQEmulator(tb testing.TB) *BQEmulator {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), BQEmulatorStartTimeout)
	defer cancel()
	start := time.Now()
	s, err := bqemu.Start(ctx, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	tb.Logf("bqemulator on %s and %s started in %s (log %s)", s.RESTEndpoint(), s.GRPCAddr(), time.Since(start).Round(time.Millisecond), s.LogPath())
	return &BQEmulator{Server: s}
}
