package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/chserver"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/pipelines"
	"github.com/switchyard-dev/switchyard/sinks/clickhouse"
	sinktable "github.com/switchyard-dev/switchyard/sinks/table"
)

// devClickHouseEnv holds the native address of the ClickHouse server that configs/dev.yaml's
// ClickHouse sinks write to. `switchyard dev` sets it to the private server it starts; when a
// user sets it, dev uses that server instead of starting one.
const devClickHouseEnv = "SWITCHYARD_CLICKHOUSE"

// startClickHouse starts the private server; tests replace it.
var startClickHouse = chserver.Start

// devClickHouse is the ClickHouse server `switchyard dev` lands sample events in.
type devClickHouse struct {
	srv  *chserver.Server // nil when the user's server is used, or none
	addr string           // native address; "" when ClickHouse lands are skipped
	dir  string           // temporary data directory of srv
}

// startDevClickHouse provides the server for dev's ClickHouse sinks: the one at
// $SWITCHYARD_CLICKHOUSE when set, else (when enabled) a private clickhouse-server on free
// ports with a temporary data directory. It says on stdout what it did; when no server is
// available it says plainly that ClickHouse lands are skipped and how to install one. It
// never fails: dev runs without ClickHouse then. The caller must call stop.
func startDevClickHouse(ctx context.Context, enabled bool, stdout io.Writer) *devClickHouse {
	if addr := os.Getenv(devClickHouseEnv); addr != "" {
		fmt.Fprintf(stdout, "clickhouse: landing sample bids in the server at %s ($%s)\n", addr, devClickHouseEnv)
		return &devClickHouse{addr: addr}
	}
	if !enabled {
		fmt.Fprintln(stdout, "clickhouse: ClickHouse lands are off (--clickhouse=false)")
		return &devClickHouse{}
	}
	dir, err := os.MkdirTemp("", "switchyard-dev-clickhouse-")
	if err != nil {
		fmt.Fprintf(stdout, "clickhouse: ClickHouse lands are skipped: create a data directory: %v\n", err)
		return &devClickHouse{}
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	started := time.Now()
	srv, err := startClickHouse(sctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		if errors.Is(err, chserver.ErrNotInstalled) {
			fmt.Fprintf(stdout, "clickhouse: clickhouse-server is not installed, so ClickHouse lands are skipped (everything else runs).\n"+
				"  To land sample bids in ClickHouse too, install it (Debian/Ubuntu: `%s`;\n"+
				"  elsewhere see https://clickhouse.com/docs/install) and run `switchyard dev` again,\n"+
				"  or point $%s at a server you run (host:port of its native protocol).\n", chserver.InstallHint, devClickHouseEnv)
			return &devClickHouse{}
		}
		fmt.Fprintf(stdout, "clickhouse: clickhouse-server did not start, so ClickHouse lands are skipped: %v\n", err)
		return &devClickHouse{}
	}
	fmt.Fprintf(stdout, "clickhouse: started clickhouse-server %s on %s in %s (data in %s, removed on exit)\n",
		srv.Version(), srv.Addr(), time.Since(started).Round(time.Millisecond), dir)
	return &devClickHouse{srv: srv, addr: srv.Addr(), dir: dir}
}

// enabled reports whether dev's ClickHouse sinks have a server.
func (d *devClickHouse) enabled() bool { return d.addr != "" }

// stop stops the private server and removes its data.
func (d *devClickHouse) stop() {
	if d.srv == nil {
		return
	}
	d.srv.Stop()
	os.RemoveAll(d.dir)
}

// dropSinks removes every sink whose options are of type O (one sink kind) and the routes to
// it from cfg, and every pipeline left without sinks, returning "pipeline/sink" for each
// removed sink.
func dropSinks[O any](cfg *config.Config) []string {
	var dropped []string
	var keep []config.Pipeline
	for _, p := range cfg.Pipelines {
		var kept []config.Sink
		var names []string
		for _, sc := range p.Sinks {
			if _, ok := sc.Options.(O); ok {
				names = append(names, sc.Name)
				dropped = append(dropped, p.Name+"/"+sc.Name)
				continue
			}
			kept = append(kept, sc)
		}
		if len(kept) == 0 {
			continue
		}
		p.Sinks = kept
		p.Routes = slices.DeleteFunc(slices.Clone(p.Routes), func(r config.Route) bool { return slices.Contains(names, r.Sink) })
		keep = append(keep, p)
	}
	cfg.Pipelines = keep
	return dropped
}

// chTables returns the fully qualified table of every ClickHouse sink of c.
func chTables(c *pipelines.Compiled) []string {
	var out []string
	for _, p := range c.Pipelines {
		for _, sc := range p.Config.Sinks {
			ch, ok := sc.Options.(*clickhouse.Config)
			if !ok {
				continue
			}
			table := ch.Table
			if table == "" {
				table = sinktable.Name(protoreflect.FullName(p.Config.Contract.Message))
			}
			out = append(out, ch.Database+"."+table)
		}
	}
	return out
}

// printClickHouseHelp says how to query the tables of dev's ClickHouse sinks.
func (d *devClickHouse) printHelp(stdout io.Writer, c *pipelines.Compiled) {
	if d.srv == nil {
		return
	}
	for _, t := range chTables(c) {
		fmt.Fprintf(stdout, "clickhouse: sample bids land in %s; query it while dev runs with\n"+
			"  clickhouse-client --port %d --query \"SELECT auction_id, count() AS bids, max(amount_units) AS top_units FROM %s GROUP BY auction_id ORDER BY bids DESC LIMIT 5\"\n",
			t, d.srv.TCPPort(), t)
	}
}

// printSummary prints the row count of each table of dev's ClickHouse sinks, before the
// private server stops.
func (d *devClickHouse) printSummary(stdout io.Writer, c *pipelines.Compiled) {
	if d.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, t := range chTables(c) {
		rows, err := d.srv.Query(ctx, "SELECT count(), uniqExact(_topic, _partition, _offset) FROM "+t)
		if err != nil || len(rows) != 1 || len(rows[0]) != 2 {
			fmt.Fprintf(stdout, "clickhouse: could not count the rows of %s: %v\n", t, err)
			continue
		}
		fmt.Fprintf(stdout, "clickhouse: %s holds %s rows (%s distinct source offsets)\n", t, rows[0][0], rows[0][1])
	}
}
