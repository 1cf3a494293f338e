package harness

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/switchyard-dev/switchyard/internal/chserver"
)

// ClickHouseStartTimeout bounds StartClickHouse and ClickHouse.Start.
// StartClickHouseProcess uses the caller's context instead.
var ClickHouseStartTimeout = time.Minute

// ClickHouse is a clickhouse-server (Debian's 18.16 package) on 127.0.0.1
// with user "default", no password, database "default" and server time zone
// UTC. Its methods are safe for concurrent use. The process itself is run by
// internal/chserver, which `switchyard dev` uses too.
//
// 18.16 is old: batch INSERTs must name their columns, and there is no
// DateTime64, Map, Bool or JSON type.
type ClickHouse struct {
	s *chserver.Server
}

// StartClickHouse starts a server in tb.TempDir() and stops it in
// tb.Cleanup. It fails the test (tb.Fatal) when the server cannot start,
// including when clickhouse-server is not installed; the message ends with the
// tail of the server log.
func StartClickHouse(tb testing.TB) *ClickHouse {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ClickHouseStartTimeout)
	defer cancel()
	start := time.Now()
	c, err := StartClickHouseProcess(ctx, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Stop)
	tb.Logf("clickhouse %s on %s started in %s (log %s)", c.Version(), c.Addr(), time.Since(start).Round(time.Millisecond), c.LogPath())
	return c
}

// StartClickHouseProcess starts a server whose config, data and logs live in
// dir (which must exist; it is not removed). It returns once a clickhouse-go
// native connection answers SELECT version(), or fails when ctx ends or the
// server exits. The caller must call Stop. Use it from TestMain to share one
// server per package.
func StartClickHouseProcess(ctx context.Context, dir string) (*ClickHouse, error) {
	s, err := chserver.Start(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("start clickhouse: %w", err)
	}
	return &ClickHouse{s: s}, nil
}

// Addr is the native protocol address ("127.0.0.1:port") for clickhouse-go.
// It stays the same across Stop and Start.
func (c *ClickHouse) Addr() string { return c.s.Addr() }

// HTTPAddr is the HTTP interface address ("127.0.0.1:port").
func (c *ClickHouse) HTTPAddr() string { return c.s.HTTPAddr() }

// Version is the server version reported at the last start, e.g. "18.16.1".
func (c *ClickHouse) Version() string { return c.s.Version() }

// LogPath is the server log file.
func (c *ClickHouse) LogPath() string { return c.s.LogPath() }

// Stop shuts the server down (SIGTERM, then SIGKILL after 30 s) and returns
// once it has exited. Data and ports are kept for Start. Stopping a stopped
// server does nothing.
func (c *ClickHouse) Stop() { c.s.Stop() }

// Start starts a stopped server again on the same ports with the same data,
// for outage tests. It returns once the server answers and fails the test if
// it cannot start within ClickHouseStartTimeout. Starting a running server
// fails the test.
func (c *ClickHouse) Start(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ClickHouseStartTimeout)
	defer cancel()
	if err := c.s.Restart(ctx); err != nil {
		tb.Fatalf("start clickhouse: %v", err)
	}
}

// Open returns a clickhouse-go native connection to database "default",
// closed in tb.Cleanup.
func (c *ClickHouse) Open(tb testing.TB) driver.Conn {
	tb.Helper()
	conn, err := clickhouse.Open(c.s.Options())
	if err != nil {
		tb.Fatalf("open clickhouse connection: %v", err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// Query runs sql over the HTTP interface and returns the result rows in
// TabSeparated form, one string per cell with escapes undone (NULL is `\N`).
// Statements without a result (DDL, INSERT) return no rows. It fails the test
// on any error.
func (c *ClickHouse) Query(tb testing.TB, sql string) [][]string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := c.QueryContext(ctx, sql)
	if err != nil {
		tb.Fatal(err)
	}
	return rows
}

// QueryContext is Query for callers without a testing.TB.
func (c *ClickHouse) QueryContext(ctx context.Context, sql string) ([][]string, error) {
	return c.s.Query(ctx, sql)
}
