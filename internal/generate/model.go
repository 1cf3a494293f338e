// Package generate turns a configuration into the operator artefacts that watch it: a
// Prometheus rule file with multi-window, multi-burn-rate alerts per SLO per sink (alerts.go)
// and a Grafana dashboard with a row per pipeline (dashboard.go).
//
// The generators read their own small model (Pipeline, Sink, SLO), not *config.Config, so the
// only code that knows how the configuration spells owners and objectives is FromConfig.
package generate

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-dev/switchyard/internal/config"
)

// SLO kinds, the values of the slo label of the switchyard_slo_* metrics.
const (
	Freshness    = "freshness"
	Completeness = "completeness"
)

// Defaults for a pipeline or sink that declares no SLO, as documented in docs/slo.md.
const (
	DefaultFreshnessThreshold    = 5 * time.Minute
	DefaultFreshnessObjective    = 0.99
	DefaultCompletenessObjective = 0.999
	DefaultWindow                = 28 * 24 * time.Hour
)

// Pipeline is what the generators need to know about one pipeline.
type Pipeline struct {
	Name    string
	Team    string
	Contact string
	Sinks   []Sink
}

// Sink is one sink of a pipeline with the SLOs it is held to, in a fixed order (freshness,
// then completeness).
type Sink struct {
	Name string
	SLOs []SLO
}

// SLO is one service level objective of one sink.
type SLO struct {
	// Kind is Freshness or Completeness.
	Kind string
	// Objective is the ratio of good events to aim for over Window, in (0, 1): 0.999 is 99.9%.
	Objective float64
	// Threshold is, for Freshness, the age under which a landed event counts as good; the
	// daemon applies it when it counts switchyard_slo_good_events_total, the generators only
	// print it. Zero for Completeness.
	Threshold time.Duration
	// Window is the period the error budget is counted over.
	Window time.Duration
}

// FromConfig builds the generators' model from a loaded configuration: each sink's SLOs are
// its pipeline's slo section with the sink's overrides (config.Pipeline.SLOFor), the loader
// having filled in the documented defaults.
func FromConfig(cfg *config.Config) []Pipeline {
	out := make([]Pipeline, 0, len(cfg.Pipelines))
	for _, p := range cfg.Pipelines {
		gp := Pipeline{Name: p.Name, Team: p.Owner.Team, Contact: p.Owner.Contact}
		for i := range p.Sinks {
			s := &p.Sinks[i]
			o := p.SLOFor(s)
			window := time.Duration(o.Window)
			gp.Sinks = append(gp.Sinks, Sink{Name: s.Name, SLOs: []SLO{
				{Kind: Freshness, Objective: o.Freshness.Objective.Ratio(), Threshold: o.Freshness.Threshold, Window: window},
				{Kind: Completeness, Objective: o.Completeness.Objective.Ratio(), Window: window},
			}})
		}
		out = append(out, gp)
	}
	return out
}

// check reports the first SLO whose numbers cannot be turned into rules.
func check(pipelines []Pipeline) error {
	for _, p := range pipelines {
		for _, s := range p.Sinks {
			for _, o := range s.SLOs {
				if o.Kind != Freshness && o.Kind != Completeness {
					return fmt.Errorf("pipeline %q sink %q: unknown slo %q (want %s or %s)", p.Name, s.Name, o.Kind, Freshness, Completeness)
				}
				if !(o.Objective > 0 && o.Objective < 1) {
					return fmt.Errorf("pipeline %q sink %q slo %s: objective %v is not between 0 and 1 (exclusive)", p.Name, s.Name, o.Kind, o.Objective)
				}
				if o.Window <= 0 {
					return fmt.Errorf("pipeline %q sink %q slo %s: window must be positive", p.Name, s.Name, o.Kind)
				}
			}
		}
	}
	return nil
}

// promDuration formats d the way Prometheus writes durations: 28d, 1h30m, 5m.
func promDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}} {
		if n := d / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.suffix)
			d -= n * u.unit
		}
	}
	return b.String()
}

// ratio formats an objective as PromQL reads it: 0.999.
func ratio(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// percent formats an objective for people: 99.9%.
func percent(f float64) string {
	return strconv.FormatFloat(math.Round(f*1e6)/1e4, 'f', -1, 64) + "%"
}

// selector is the PromQL label matcher of one SLO of one sink.
func selector(p Pipeline, s Sink, o SLO) string {
	return fmt.Sprintf(`{pipeline=%q, sink=%q, slo=%q}`, p.Name, s.Name, o.Kind)
}
