package generate

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// RuleFile is a Prometheus rule file (the format `promtool check rules` reads). The structs
// are ours rather than prometheus/model/rulefmt's, whose module pulls in the whole server.
type RuleFile struct {
	Groups []RuleGroup `yaml:"groups"`
}

// RuleGroup is one group of rules, evaluated in order every interval.
type RuleGroup struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Rules    []Rule `yaml:"rules"`
}

// Rule is a recording rule (Record set) or an alerting rule (Alert set).
type Rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// AlertName is the name of every burn-rate alert; the severity, pipeline, sink and slo labels
// tell them apart.
const AlertName = "SwitchyardErrorBudgetBurn"

// Severities of the burn-rate alerts.
const (
	Page   = "page"
	Ticket = "ticket"
)

// BurnWindow is one of the Google SRE workbook's window pairs: the alert fires when the error
// budget burns faster than Factor times the sustainable rate over both Long and Short (the
// short window makes the alert stop soon after the burning does).
type BurnWindow struct {
	Long, Short time.Duration
	Factor      float64
	Severity    string
}

// BurnWindows are the workbook's pairs for a 30-day budget (chapter 5, "Multiwindow,
// Multi-Burn-Rate Alerts"): 2% of the budget in an hour or 5% in six hours pages; 10% in a
// day or the whole budget in three days at a steady burn opens a ticket.
var BurnWindows = []BurnWindow{
	{Long: time.Hour, Short: 5 * time.Minute, Factor: 14.4, Severity: Page},
	{Long: 6 * time.Hour, Short: 30 * time.Minute, Factor: 6, Severity: Page},
	{Long: 24 * time.Hour, Short: 2 * time.Hour, Factor: 3, Severity: Ticket},
	{Long: 72 * time.Hour, Short: 6 * time.Hour, Factor: 1, Severity: Ticket},
}

// Metric names the rules read, as the daemon exports them.
const (
	metricSLOEvents     = "switchyard_slo_events_total"
	metricSLOGoodEvents = "switchyard_slo_good_events_total"
)

// ErrorRatioRecord names the recording rule of the error ratio over a window, e.g.
// switchyard:slo_error_ratio:rate5m.
func ErrorRatioRecord(window time.Duration) string {
	return "switchyard:slo_error_ratio:rate" + promDuration(window)
}

// recordingWindows are the distinct windows of BurnWindows, shortest first.
func recordingWindows() []time.Duration {
	seen := map[time.Duration]bool{}
	var out []time.Duration
	for _, w := range BurnWindows {
		for _, d := range []time.Duration{w.Short, w.Long} {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Rules builds the rule file: one group of recording rules with the error ratio of every SLO
// of every sink over every window (summed across instances), then one group per pipeline
// with a page alert and a ticket alert per SLO per sink.
func Rules(pipelines []Pipeline) (RuleFile, error) {
	if err := check(pipelines); err != nil {
		return RuleFile{}, err
	}
	rec := RuleGroup{Name: "switchyard-slo-error-ratios"}
	for _, w := range recordingWindows() {
		d := promDuration(w)
		rec.Rules = append(rec.Rules, Rule{
			Record: ErrorRatioRecord(w),
			Expr: fmt.Sprintf("1 - (\n  sum by (pipeline, sink, slo) (rate(%s[%s]))\n/\n  sum by (pipeline, sink, slo) (rate(%s[%s]))\n)",
				metricSLOGoodEvents, d, metricSLOEvents, d),
		})
	}
	file := RuleFile{Groups: []RuleGroup{rec}}
	for _, p := range pipelines {
		g := RuleGroup{Name: "switchyard-slo-" + p.Name}
		for _, s := range p.Sinks {
			for _, o := range s.SLOs {
				g.Rules = append(g.Rules, burnAlert(p, s, o, Page), burnAlert(p, s, o, Ticket))
			}
		}
		if len(g.Rules) > 0 {
			file.Groups = append(file.Groups, g)
		}
	}
	return file, nil
}

// burnAlert is the alert of one severity for one SLO: the windows of that severity, or-ed.
func burnAlert(p Pipeline, s Sink, o SLO, severity string) Rule {
	sel := selector(p, s, o)
	budget := fmt.Sprintf("(1 - %s)", ratio(o.Objective))
	var expr bytes.Buffer
	var pairs []string
	for _, w := range BurnWindows {
		if w.Severity != severity {
			continue
		}
		if expr.Len() > 0 {
			expr.WriteString("\nor\n")
		}
		f := ratio(w.Factor)
		fmt.Fprintf(&expr, "(\n  %s%s > %s * %s\nand\n  %s%s > %s * %s\n)",
			ErrorRatioRecord(w.Long), sel, f, budget, ErrorRatioRecord(w.Short), sel, f, budget)
		pairs = append(pairs, fmt.Sprintf("%sx over both %s and %s", f, promDuration(w.Long), promDuration(w.Short)))
	}
	what := o.Kind
	if o.Kind == Freshness {
		what = fmt.Sprintf("freshness (events landed within %s)", promDuration(o.Threshold))
	}
	speed := "fast"
	if severity == Ticket {
		speed = "steadily"
	}
	return Rule{
		Alert: AlertName,
		Expr:  expr.String(),
		Labels: map[string]string{
			"severity": severity,
			"team":     p.Team,
			"contact":  p.Contact,
			"pipeline": p.Name,
			"sink":     s.Name,
			"slo":      o.Kind,
		},
		Annotations: map[string]string{
			"summary": fmt.Sprintf("Pipeline %s sink %s is burning its %s error budget %s", p.Name, s.Name, o.Kind, speed),
			"description": fmt.Sprintf("The %s SLO of sink %s of pipeline %s (objective %s over %s) is burning its error budget at more than %s, the rate that spends exactly the budget in a window. Check the pipeline's row of the Switchyard dashboard (lag, freshness, dead letters by reason) and switchyard_sink_up.",
				what, s.Name, p.Name, percent(o.Objective), promDuration(o.Window), strings.Join(pairs, ", or ")),
		},
	}
}

// WriteRules writes the rule file of pipelines as YAML.
func WriteRules(w io.Writer, pipelines []Pipeline) error {
	file, err := Rules(pipelines)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString("# Generated by `switchyard generate alerts`; do not edit. See docs/slo.md.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(file); err != nil {
		return fmt.Errorf("encode rule file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encode rule file: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}
