package app

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/generate"
)

const generateUsage = `Usage: switchyard generate <artefact> --config PATH [--out FILE]

Generate, from a configuration, what watches its pipelines (see docs/slo.md):

  alerts     a Prometheus rule file: error-ratio recording rules and multi-window,
             multi-burn-rate alerts (severity page or ticket) per SLO per sink
  dashboard  a Grafana dashboard (JSON): a row per pipeline with event rates, lag,
             freshness, dead letters and the error budget left per SLO

Run 'switchyard generate <artefact> --help' for its flags.
`

// generators are the artefacts of `switchyard generate`, each with the summary its --help
// shows and the function that writes it.
var generators = map[string]struct {
	summary string
	write   func(io.Writer, []generate.Pipeline) error
}{
	"alerts": {
		"Write a Prometheus rule file with the error-ratio recording rules and the burn-rate alerts of\nevery SLO of every sink; check it with `promtool check rules FILE`.",
		generate.WriteRules,
	},
	"dashboard": {
		"Write a Grafana dashboard (JSON) with a row per pipeline: event rates, consumer lag,\nfreshness, dead letters and the error budget left per SLO; import it in Grafana.",
		generate.WriteDashboard,
	},
}

func cmdGenerate(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, generateUsage)
		return 2
	}
	what, rest := args[0], args[1:]
	if what == "help" || what == "-h" || what == "--help" {
		fmt.Fprint(stdout, generateUsage)
		return 0
	}
	gen, ok := generators[what]
	if !ok {
		fmt.Fprintf(stderr, "switchyard generate: unknown artefact %q\n\n%s", what, generateUsage)
		return 2
	}
	// Not newFlagSet: the log flags would mean nothing here.
	fs := flag.NewFlagSet("generate "+what, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: switchyard generate %s --config PATH [--out FILE]\n\n%s\n\nFlags:\n", what, gen.summary)
		fs.PrintDefaults()
	}
	path := fs.String("config", "", "configuration `path`: a YAML file or a directory of them")
	out := fs.String("out", "", "write to `file` instead of stdout")
	if code, ok := parse(fs, rest); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "switchyard: --config is required")
		return 1
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	// Written in full before the file is touched: a failure leaves the old file as it was.
	var buf bytes.Buffer
	if err := gen.write(&buf, generate.FromConfig(cfg)); err != nil {
		fmt.Fprintf(stderr, "switchyard generate %s: %v\n", what, err)
		return 1
	}
	if *out == "" {
		_, err = stdout.Write(buf.Bytes())
	} else {
		err = os.WriteFile(*out, buf.Bytes(), 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchyard generate %s: write: %v\n", what, err)
		return 1
	}
	return 0
}
