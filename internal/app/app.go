// Package app implements the switchyard command line: run, validate, plan, dev, generate,
// status and version.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/admin"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/telemetry"
	"github.com/switchyard-dev/switchyard/pipelines"
	_ "github.com/switchyard-dev/switchyard/sinks/all" // every sink kind Switchyard ships
)

// Version is set at build time with -ldflags "-X switchyard/internal/app.Version=...".
var Version = "dev"

const usage = `switchyard routes Protobuf events from Kafka to Kafka, ClickHouse and BigQuery,
enforcing their data contracts on the way.

Usage:
  switchyard <command> [flags]

Commands:
  run       run the pipelines of a configuration
  validate  check a configuration and its contracts, print one line per pipeline
  plan      print, per sink, the schema changes start-up would make, without making them
  dev       run the embedded default: an in-process broker, sample events, configs/dev.yaml
  generate  write the alert rules (generate alerts) or Grafana dashboard (generate dashboard)
            of a configuration
  status    show a running daemon's status (pipelines, sinks, lag, SLOs) from its admin server
  version   print the version

Run 'switchyard <command> --help' for the flags of a command.
`

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, stdout, stderr)
	case "validate":
		return cmdValidate(rest, stdout, stderr)
	case "plan":
		return cmdPlan(ctx, rest, stdout, stderr)
	case "dev":
		return cmdDev(ctx, rest, stdout, stderr)
	case "generate":
		return cmdGenerate(rest, stdout, stderr)
	case "status":
		return cmdStatus(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "switchyard", version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "switchyard: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func version() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		return fmt.Sprintf("dev (%s)", bi.GoVersion)
	}
	return Version
}

// commonFlags are the flags every daemon-like command takes.
type commonFlags struct {
	config    string
	logFormat string
	logLevel  string
}

func newFlagSet(name, summary string, stderr io.Writer, cf *commonFlags, defConfig string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: switchyard %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	fs.StringVar(&cf.config, "config", defConfig, "configuration `path`: a YAML file or a directory of them")
	fs.StringVar(&cf.logFormat, "log-format", "", "log format: auto (text on a terminal, JSON otherwise), text or json; overrides logging.format")
	fs.StringVar(&cf.logLevel, "log-level", "", "minimum log level: debug, info, warn or error; overrides logging.level")
	return fs
}

func parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "switchyard %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, false
	}
	return 0, true
}

// load reads the configuration and compiles it against its contracts. Problems are printed
// one per line as file:line:col: message.
func load(path string, stderr io.Writer) (*pipelines.Compiled, bool) {
	if path == "" {
		fmt.Fprintln(stderr, "switchyard: --config is required")
		return nil, false
	}
	cfg, err := config.Load(path)
	if err != nil {
		printErrors(stderr, err)
		return nil, false
	}
	return compile(cfg, stderr)
}

// compile loads the contracts of a loaded configuration and compiles its pipelines, printing
// problems as load does.
func compile(cfg *config.Config, stderr io.Writer) (*pipelines.Compiled, bool) {
	reg, err := contract.Load(cfg.Contracts.Path)
	if err != nil {
		pos := cfg.Positions["contracts.path"]
		if pos.File != "" {
			fmt.Fprintf(stderr, "%s: %v\n", pos, err)
		} else {
			fmt.Fprintf(stderr, "%v\n", err)
		}
		return nil, false
	}
	c, err := pipelines.Compile(cfg, reg)
	if err != nil {
		printErrors(stderr, err)
		return nil, false
	}
	return c, true
}

func printErrors(w io.Writer, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		fmt.Fprintln(w, errs.Error())
		return
	}
	fmt.Fprintln(w, err)
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	var cf commonFlags
	fs := newFlagSet("validate", "Check a configuration: YAML, types, references, contracts and route conditions.\nExits 1 and prints one file:line:col: message per problem on stderr, or exits 0 with one line per pipeline.", stderr, &cf, "")
	printConfig := fs.Bool("print-config", false, "also print the effective configuration (defaults filled in, secrets shown as [redacted])")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	c, ok := load(cf.config, stderr)
	if !ok {
		return 1
	}
	if *printConfig {
		out, err := c.Config.Redacted()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		stdout.Write(out)
	}
	for _, p := range c.Pipelines {
		fmt.Fprintln(stdout, p.Summary())
	}
	return 0
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cf commonFlags
	fs := newFlagSet("run", "Run the pipelines of a configuration until SIGINT or SIGTERM, then drain in-flight events,\nflush the sinks, commit and exit 0; exit 1 if the drain timed out (the log lists, per\npartition, the uncommitted records the next run consumes again).", stderr, &cf, "")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	c, ok := load(cf.config, stderr)
	if !ok {
		return 1
	}
	log := newLogger(c.Config.Logging, cf, stderr)
	return runEngine(ctx, c, log, nil)
}

// runEngine runs the engine until ctx ends; tick, if set, is called every few seconds.
func runEngine(ctx context.Context, c *pipelines.Compiled, log *slog.Logger, tick func(*pipelines.Engine)) int {
	setMemoryLimit(c.Config.MemoryLimit, log)
	metrics := telemetry.New()
	if Version != "dev" {
		metrics.SetVersion(Version)
	}
	eng, err := pipelines.New(c, pipelines.Options{Logger: log, Metrics: metrics})
	if err != nil {
		log.Error("build pipelines", "error", err)
		return 1
	}
	var srv *admin.Server
	if addr := c.Config.Admin.Address; addr != "" {
		srv, err = admin.Start(admin.Options{Address: addr, Metrics: metrics, Ready: eng.Ready, Stalled: func() []string {
			var out []string
			for _, sp := range eng.Stalled() {
				out = append(out, sp.String())
			}
			return out
		}, PProf: c.Config.Admin.PProf, Status: eng.Status}, log)
		if err != nil {
			log.Error("start admin server", "error", err)
			return 1
		}
		log.Info("admin server listening", "address", srv.Addr())
	}
	if err := eng.Start(ctx); err != nil {
		log.Error("start pipelines", "error", err)
		_ = eng.Shutdown(context.Background())
		return 1
	}
	log.Info("switchyard running", "pipelines", len(c.Pipelines), "version", version())
	if tick != nil {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-t.C:
				tick(eng)
			}
		}
	} else {
		<-ctx.Done()
	}
	log.Info("shutting down: draining in-flight events")
	deadline := 10 * time.Second
	for _, p := range c.Config.Pipelines {
		deadline = max(deadline, p.Source.DrainTimeout+10*time.Second)
	}
	sctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	// Nothing is lost when the drain runs out of time (what was not committed is consumed
	// again by the next run), but it is duplicated work and a sign of a stuck sink: say what
	// is left and exit 1, so supervisors and deploy tooling see it.
	code := 0
	if err := eng.Shutdown(sctx); err != nil {
		code = 1
		var de *pipelines.DrainError
		if errors.As(err, &de) {
			for _, u := range de.Partitions {
				log.Error("drain did not finish; uncommitted records will be consumed again on restart", "pipeline", u.Pipeline,
					"sink", u.Sink, "topic", u.Topic, "partition", u.Partition, "committed_offset", u.Committed,
					"uncommitted_records", u.Records)
			}
		}
		log.Error("shutdown did not finish cleanly", "error", err)
	} else {
		log.Info("drained: every record handed to a sink was committed")
	}
	if tick != nil {
		tick(eng)
	}
	if srv != nil {
		_ = srv.Close(sctx)
	}
	log.Info("stopped", "exit_status", code)
	return code
}

func newLogger(lc config.Logging, cf commonFlags, w io.Writer) *slog.Logger {
	format, level := lc.Format, lc.Level
	if cf.logFormat != "" {
		format = cf.logFormat
	}
	if cf.logLevel != "" {
		level = cf.logLevel
	}
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(strings.ToUpper(level)))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" || (format != "text" && !isTerminal(w)) {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// setMemoryLimit sets the Go runtime's soft memory limit to memory_limit, unless GOMEMLIMIT
// sets it or memory_limit is 0.
func setMemoryLimit(limit config.Bytes, log *slog.Logger) {
	if limit <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(int64(limit))
	log.Debug("memory limit", "bytes", int64(limit))
}
