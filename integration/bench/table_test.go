package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// row is one scenario's line of the results table that TestMain prints and writes.
type row struct {
	scenario  string
	eps       float64 // events per second, first landed event to last
	cpuPer    float64 // daemon user+sys CPU-µs per event
	rssMB     float64 // daemon peak RSS (getrusage ru_maxrss)
	serverPer float64 // clickhouse-server CPU-µs per event, or -1 when no ClickHouse sink
	note      string
}

var (
	rowsMu sync.Mutex
	rows   []row
)

func addRow(r row) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	rows = append(rows, r)
}

// TestMain runs the benchmarks, then prints every scenario's figures as one table and
// appends it to $SWITCHYARD_BENCH_OUT (default bench-results/<UTC date>.txt in the
// repository), so that two runs can be compared line by line (docs/benchmarks.md).
func TestMain(m *testing.M) {
	code := m.Run()
	rowsMu.Lock()
	defer rowsMu.Unlock()
	if len(rows) > 0 {
		path := os.Getenv("SWITCHYARD_BENCH_OUT")
		if path == "" {
			path = filepath.Join(repoRoot(), "bench-results", time.Now().UTC().Format("2006-01-02")+".txt")
		}
		table := formatTable(rows)
		fmt.Print("\n" + table)
		if err := appendTable(path, table); err != nil {
			fmt.Fprintf(os.Stderr, "write %s: %v\n", path, err)
			if code == 0 {
				code = 1
			}
		} else {
			fmt.Printf("results appended to %s\n", path)
		}
	}
	os.Exit(code)
}

const tableHeader = "| scenario | events/s | CPU-µs/event | peak RSS MB | ClickHouse server CPU-µs/event | notes |\n|---|---:|---:|---:|---:|---|\n"

// formatTable is the Markdown table of rs, headed by the run's time, Go version and the
// number of events (SWITCHYARD_BENCH_EVENTS).
func formatTable(rs []row) string {
	var s strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&s, "run %s on %s, %d events per scenario\n\n", time.Now().UTC().Format(time.RFC3339), host, envInt("SWITCHYARD_BENCH_EVENTS", 1_000_000))
	s.WriteString(tableHeader)
	for _, r := range rs {
		server := "-"
		if r.serverPer >= 0 {
			server = fmt.Sprintf("%.2f", r.serverPer)
		}
		fmt.Fprintf(&s, "| %s | %.0f | %.2f | %.0f | %s | %s |\n", r.scenario, r.eps, r.cpuPer, r.rssMB, server, r.note)
	}
	return s.String()
}

func appendTable(path, table string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(table + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
