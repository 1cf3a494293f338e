package app

import (
	"context"
	"fmt"
	"io"

	"github.com/switchyard-dev/switchyard/pipelines"
	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/registry"
)

func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cf commonFlags
	fs := newFlagSet("plan", "Print, per sink, the schema changes (DDL, table patches) that start-up would make, without\nmaking them. Exits 1 if a sink would refuse to start.", stderr, &cf, "")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	c, ok := load(cf.config, stderr)
	if !ok {
		return 1
	}
	log := newLogger(c.Config.Logging, cf, stderr)
	code := 0
	for _, p := range c.Pipelines {
		for i := range p.Config.Sinks {
			sc := &p.Config.Sinks[i]
			fmt.Fprintf(stdout, "# pipeline %q sink %q\n", p.Config.Name, sc.Name)
			if registry.Schemaless(sc) {
				fmt.Fprintf(stdout, "-- %s sink: no schema to change\n", sc.Kind)
				continue
			}
			s, err := pipelines.NewSink(ctx, sc, pipelines.SinkDeps{
				Deps:  sinks.Deps{Pipeline: p.Config.Name, Sink: sc.Name, Schema: p.Schemas[sc.Name], Logger: log},
				Kafka: c.Config.Kafka,
				Input: p.Encoding,
			})
			if err != nil {
				fmt.Fprintf(stderr, "pipeline %q sink %q: %v\n", p.Config.Name, sc.Name, err)
				code = 1
				continue
			}
			pl, ok := s.(sinks.Planner)
			if !ok {
				fmt.Fprintln(stdout, "-- no schema to change")
				_ = s.Close(ctx)
				continue
			}
			stmts, err := pl.Plan(ctx)
			_ = s.Close(ctx)
			if err != nil {
				fmt.Fprintf(stderr, "pipeline %q sink %q would refuse to start: %v\n", p.Config.Name, sc.Name, err)
				code = 1
				continue
			}
			if len(stmts) == 0 {
				fmt.Fprintln(stdout, "-- up to date: nothing to change")
			}
			for _, s := range stmts {
				fmt.Fprintln(stdout, s+";")
			}
		}
	}
	return code
}
