package clickhouse

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/integration/harness"
	"github.com/switchyard-dev/switchyard/sinks"
)

// server is one ClickHouse shared by the package's tests; each test uses its own table.
var server *harness.ClickHouse

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchyard-clickhouse-sink")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), harness.ClickHouseStartTimeout)
	server, err = harness.StartClickHouseProcess(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	server.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

var tableSeq atomic.Int64

// newTable returns a table name no other test uses.
func newTable(t testing.TB) string {
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "_"))
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	return fmt.Sprintf("t%d_%s", tableSeq.Add(1), name)
}

// testConfig is a sink configuration for table on the test server, as the loader would
// fill it with defaults.
func testConfig(table string) *Config {
	return &Config{
		Addresses:   []string{server.Addr()},
		Table:       table,
		CreateTable: true,
		AddColumns:  true,
		PartitionBy: "toYYYYMM(_event_time)",
	}
}

// openSink creates and opens a sink, closed at the end of the test.
func openSink(t testing.TB, cfg *Config, deps sinks.Deps) *Sink {
	t.Helper()
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("new sink: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Open(ctx); err != nil {
		t.Fatalf("open sink: %v", err)
	}
	return s
}

func mustExec(t testing.TB, sql string) {
	t.Helper()
	server.Query(t, sql)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
