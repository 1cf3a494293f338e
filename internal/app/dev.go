package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/pipelines"
	"github.com/switchyard-dev/switchyard/sinks/clickhouse"
)

const devSummary = `Run the embedded default: an in-process Kafka-compatible broker (franz-go's kfake), a
generator producing realistic sample events (about 1% invalid) for the sample contracts, and
the pipelines of configs/dev.yaml. Prints a progress line every few seconds and serves the
admin endpoints. Ctrl-C drains in-flight events and exits 0.

When clickhouse-server is installed, dev also starts one as a child process (free ports, a
temporary data directory, stopped on exit) and lands sample bids in it; set
SWITCHYARD_CLICKHOUSE=host:port to use a server of your own instead. Without one, the
ClickHouse sinks of the configuration are left out and dev says so.

When bqemulator (a local BigQuery emulator, installed by .ci/setup) is installed, dev starts
one too and lands the sample orders in it, flattened, through a bigquery sink it adds to the
orders-paid pipeline, and prints the SQL to run; set SWITCHYARD_BQ_ENDPOINT and
SWITCHYARD_BQ_GRPC_ENDPOINT to use an emulator of your own instead.`

func cmdDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cf commonFlags
	fs := newFlagSet("dev", devSummary, stderr, &cf, "configs/dev.yaml")
	rate := fs.Int("rate", 2000, "sample events per second, over all topics")
	invalid := fs.Float64("invalid", 0.01, "fraction of sample events that are invalid")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	withCH := fs.Bool("clickhouse", true, "land sample events in a private clickhouse-server too, when one is installed")
	withBQ := fs.Bool("bigquery", true, "land sample orders in a private BigQuery emulator (bqemulator) too, when one is installed")
	logFile := fs.String("log-file", filepath.Join(os.TempDir(), "switchyard-dev.log"), "write the full log here (one line per dead-lettered event among it); the terminal shows progress lines and errors only")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	defer takeTerminal()() // Ctrl-C under `make dev` reaches dev alone: see takeTerminal
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(8), kfake.AllowAutoTopicCreation())
	if err != nil {
		fmt.Fprintf(stderr, "start in-process broker: %v\n", err)
		return 1
	}
	defer cluster.Close()
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	os.Setenv("SWITCHYARD_BROKERS", brokers)
	ch := startDevClickHouse(ctx, *withCH, stdout)
	defer ch.stop()
	if ch.enabled() {
		os.Setenv(devClickHouseEnv, ch.addr)
	}
	bq := startDevBigQuery(ctx, *withBQ, stdout)
	defer bq.stop()
	cfg, err := config.Load(cf.config)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	if err := bq.setUp(cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "bigquery: %v\n", err)
		return 1
	}
	if !ch.enabled() {
		if dropped := dropSinks[*clickhouse.Config](cfg); len(dropped) > 0 {
			fmt.Fprintf(stdout, "clickhouse: left out ClickHouse sinks %v\n", dropped)
		}
	}
	c, ok := compile(cfg, stderr)
	if !ok {
		return 1
	}
	lf, err := os.Create(*logFile)
	if err != nil {
		fmt.Fprintf(stderr, "open log file: %v\n", err)
		return 1
	}
	defer lf.Close()
	// The full log goes to the file; the terminal keeps the progress lines readable and gets
	// errors only.
	full := newLogger(c.Config.Logging, cf, lf)
	terminal := newLogger(config.Logging{Level: "error", Format: c.Config.Logging.Format}, commonFlags{logFormat: cf.logFormat}, stderr)
	log := slog.New(slog.NewMultiHandler(full.Handler(), terminal.Handler()))
	log.Info("in-process broker listening", "brokers", brokers)

	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	gen, err := startGenerator(ctx, c, cluster.ListenAddrs(), *rate, *invalid, log)
	if err != nil {
		fmt.Fprintf(stderr, "start sample generator: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "switchyard dev: broker %s, %d pipelines from %s, ~%d events/s (%.1f%% invalid); admin on http://%s/metrics; Ctrl-C to stop\n",
		brokers, len(c.Pipelines), cf.config, *rate, *invalid*100, c.Config.Admin.Address)
	fmt.Fprintf(stdout, "log: %s (tail -f it to watch each dead-lettered event and its reason)\n", *logFile)
	if a := c.Config.Admin.Address; a != "" {
		fmt.Fprintf(stdout, "status page: http://%s/ (or: switchyard status --admin %s)\n", a, a)
	}
	ch.printHelp(stdout, c)
	bq.printHelp(stdout, c)
	var last []pipelines.Stats
	lastAt := time.Now()
	summarized := false
	progress := func(eng *pipelines.Engine) {
		if ctx.Err() != nil && !summarized {
			// The last call, after the drain: the table is final, and the progress line
			// stays the last line.
			ch.printSummary(stdout, c)
			bq.printSummary(stdout, c)
			summarized = true
		}
		now := time.Now()
		stats := eng.Stats()
		fmt.Fprintln(stdout, progressLine(stats, last, now.Sub(lastAt), gen.Produced()))
		last, lastAt = stats, now
	}
	code := runEngine(ctx, c, log, progress)
	gen.Stop()
	return code
}

// progressLine renders one line: per pipeline consumed, landed (all sinks) and dead-lettered,
// and the consumption rate since the previous line.
func progressLine(stats, prev []pipelines.Stats, elapsed time.Duration, produced int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s produced=%d", time.Now().Format("15:04:05"), produced)
	var rate float64
	for i, s := range stats {
		landed := int64(0)
		sinks := make([]string, 0, len(s.Landed))
		for k := range s.Landed {
			sinks = append(sinks, k)
		}
		sort.Strings(sinks)
		var per []string
		for _, k := range sinks {
			landed += s.Landed[k]
			per = append(per, fmt.Sprintf("%s:%d", k, s.Landed[k]))
		}
		before := int64(0)
		if i < len(prev) {
			before = prev[i].Consumed
		}
		if elapsed > 0 {
			rate += float64(s.Consumed-before) / elapsed.Seconds()
		}
		fmt.Fprintf(&b, " | %s consumed=%d landed=%d [%s] dead=%d", s.Pipeline, s.Consumed, landed, strings.Join(per, " "), s.DeadLettered)
	}
	fmt.Fprintf(&b, " | %.0f events/s", rate)
	return b.String()
}
