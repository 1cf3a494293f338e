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
	fs := newFlagSet("plan", "Print, per sink, the schema changes (DDL, table patches) that start-up would make, without\nmaking them. Connects to every sink.\n\nExit codes: 0 every sink would start; 1 a sink would refuse to start (its table does not fit\nthe contract, the configuration is invalid, or the sink refused access); 3 a sink could not\nbe reached (nothing was learnt about it; no sink would refuse). For a check that needs no\nsinks, see `switchyard contracts check`.", stderr, &cf, "")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	c, ok := load(cf.config, stderr)
	if !ok {
		return planRefuse
	}
	log := newLogger(c.Config.Logging, cf, stderr)
	refused, unreachable := false, false
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
				fmt.Fprintf(stderr, "pipeline %q sink %q would refuse to start: %v\n", p.Config.Name, sc.Name, err)
				refused = true
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
			if err != nil && !sinks.IsPermanent(err) {
				fmt.Fprintf(stderr, "pipeline %q sink %q could not be reached: %v\n", p.Config.Name, sc.Name, err)
				unreachable = true
				continue
			}
			if err != nil {
				fmt.Fprintf(stderr, "pipeline %q sink %q would refuse to start: %v\n", p.Config.Name, sc.Name, err)
				refused = true
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
	switch {
	case refused:
		return planRefuse
	case unreachable:
		return planUnreachable
	}
	return 0
}

// Exit codes of switchyard plan besides 0 (every sink would start).
const (
	// planRefuse: a sink would refuse to start, or the configuration does not load.
	planRefuse = 1
	// planUnreachable: a sink could not be reached or inspected, and none would refuse.
	planUnreachable = 3
)
