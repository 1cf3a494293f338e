package generate

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/config"
	_ "github.com/switchyard-dev/switchyard/sinks/all" // the sink kinds configs/dev.yaml uses
)

func devPipelines(t *testing.T) []Pipeline {
	t.Helper()
	cfg, err := config.Load("../../configs/dev.yaml")
	if err != nil {
		t.Fatalf("load configs/dev.yaml: %v", err)
	}
	return FromConfig(cfg)
}

// TestFromConfig_dev_pipelines: configs/dev.yaml's pipelines with their owners, the default
// freshness objective and dev's own completeness objective (its generator makes 1% invalid).
func TestFromConfig_dev_pipelines(t *testing.T) {
	ps := devPipelines(t)
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	if want := []string{"livestream-views", "auction-bids", "orders-paid"}; !slices.Equal(names, want) {
		t.Fatalf("pipelines = %v, want %v", names, want)
	}
	bids := ps[1]
	if bids.Team != "auctions" || bids.Contact != "#auctions-oncall" || len(bids.Sinks) != 2 || bids.Sinks[1].Name != "olap" {
		t.Fatalf("auction-bids = %+v", bids)
	}
	want := []SLO{
		{Kind: Freshness, Objective: 0.99, Threshold: 5 * time.Minute, Window: 28 * 24 * time.Hour},
		{Kind: Completeness, Objective: 0.98, Window: 28 * 24 * time.Hour},
	}
	if got := bids.Sinks[1].SLOs; !slices.Equal(got, want) {
		t.Fatalf("olap slos = %+v, want %+v", got, want)
	}
}

func TestRules_promtool_check_rules(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, devPipelines(t))
	out := runPromtool(t, dir, "check", "rules", "rules.yaml")
	// 7 windows of recording rules, then a page and a ticket alert per SLO (2) per sink (4).
	if want := "SUCCESS: 23 rules found"; !strings.Contains(out, want) {
		t.Fatalf("promtool check rules: want %q in\n%s", want, out)
	}
}

// TestRules_promtool_test_rules feeds promtool an hour of counters and checks which alerts
// fire: 5% of events bad on sink olap (reported by two instances) pages for completeness
// (budget 0.1%: 50x the sustainable rate) but only opens a ticket for freshness (budget 1%:
// 5x, under the 6x and 14.4x of the page pairs); the healthy sink bus fires nothing.
func TestRules_promtool_test_rules(t *testing.T) {
	orders := Pipeline{Name: "orders", Team: "payments", Contact: "#payments-oncall", Sinks: []Sink{
		{Name: "olap", SLOs: []SLO{
			{Kind: Freshness, Objective: 0.99, Threshold: 30 * time.Second, Window: 28 * 24 * time.Hour},
			{Kind: Completeness, Objective: 0.999, Window: 28 * 24 * time.Hour},
		}},
		{Name: "bus", SLOs: []SLO{
			{Kind: Freshness, Objective: 0.99, Threshold: 30 * time.Second, Window: 28 * 24 * time.Hour},
			{Kind: Completeness, Objective: 0.999, Window: 28 * 24 * time.Hour},
		}},
	}}
	dir := t.TempDir()
	writeRules(t, dir, []Pipeline{orders})
	rules, err := Rules([]Pipeline{orders})
	if err != nil {
		t.Fatal(err)
	}

	// counters returns the two series of one SLO of one sink on one instance: per minute,
	// perMinute events of which good are good.
	counters := func(sink, slo, instance string, perMinute, good int) []promSeries {
		lbl := fmt.Sprintf(`{pipeline="orders", sink=%q, slo=%q, instance=%q}`, sink, slo, instance)
		return []promSeries{
			{Series: "switchyard_slo_events_total" + lbl, Values: fmt.Sprintf("0+%dx120", perMinute)},
			{Series: "switchyard_slo_good_events_total" + lbl, Values: fmt.Sprintf("0+%dx120", good)},
		}
	}
	var failing, healthy []promSeries
	for _, inst := range []string{"a", "b"} {
		failing = append(failing, counters("olap", Freshness, inst, 100, 95)...)
		failing = append(failing, counters("olap", Completeness, inst, 100, 95)...)
	}
	for _, slo := range []string{Freshness, Completeness} {
		healthy = append(healthy, counters("bus", slo, "a", 100, 100)...)
	}
	expect := func(severity, slo string) promExpAlert {
		labels := map[string]string{
			"severity": severity, "team": "payments", "contact": "#payments-oncall",
			"pipeline": "orders", "sink": "olap", "slo": slo,
		}
		return promExpAlert{ExpLabels: labels, ExpAnnotations: annotationsOf(t, rules, labels)}
	}
	tests := promTestFile{
		RuleFiles:          []string{"rules.yaml"},
		EvaluationInterval: "1m",
		Tests: []promTest{
			{
				Name:        "5% bad events for an hour on olap, bus healthy",
				Interval:    "1m",
				InputSeries: append(failing, healthy...),
				AlertRuleTests: []promAlertTest{{
					EvalTime:  "1h",
					Alertname: AlertName,
					ExpAlerts: []promExpAlert{
						expect(Page, Completeness),
						expect(Ticket, Completeness),
						expect(Ticket, Freshness),
					},
				}},
				PromQLTests: []promExprTest{{
					// The recording rule sums the two instances away; 0/0-free and near 5%.
					Expr:     ErrorRatioRecord(time.Hour) + `{sink="olap"} > bool 0.0499 and ` + ErrorRatioRecord(time.Hour) + ` < 0.0501`,
					EvalTime: "1h",
					ExpSamples: []promExpSample{
						{Labels: `{pipeline="orders", sink="olap", slo="completeness"}`, Value: 1},
						{Labels: `{pipeline="orders", sink="olap", slo="freshness"}`, Value: 1},
					},
				}},
			},
			{
				Name:        "every sink healthy",
				Interval:    "1m",
				InputSeries: append(counters("olap", Completeness, "a", 100, 100), healthy...),
				AlertRuleTests: []promAlertTest{
					{EvalTime: "1h", Alertname: AlertName, ExpAlerts: []promExpAlert{}},
					{EvalTime: "2h", Alertname: AlertName, ExpAlerts: []promExpAlert{}},
				},
			},
		},
	}
	writeYAML(t, filepath.Join(dir, "tests.yaml"), tests)
	out := runPromtool(t, dir, "test", "rules", "tests.yaml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules: no SUCCESS in\n%s", out)
	}
}

// annotationsOf returns the annotations of the one alert whose labels are labels.
func annotationsOf(t *testing.T, rules RuleFile, labels map[string]string) map[string]string {
	t.Helper()
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && maps(r.Labels, labels) {
				return r.Annotations
			}
		}
	}
	t.Fatalf("no alert with labels %v", labels)
	return nil
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestRules_windows_and_labels(t *testing.T) {
	rules, err := Rules(devPipelines(t))
	if err != nil {
		t.Fatal(err)
	}
	var records []string
	for _, r := range rules.Groups[0].Rules {
		records = append(records, r.Record)
	}
	want := []string{"5m", "30m", "1h", "2h", "6h", "1d", "3d"}
	for i := range want {
		want[i] = "switchyard:slo_error_ratio:rate" + want[i]
	}
	if !slices.Equal(records, want) {
		t.Fatalf("recording rules = %v, want %v", records, want)
	}
	alerts := 0
	for _, g := range rules.Groups[1:] {
		for _, r := range g.Rules {
			alerts++
			for _, k := range []string{"severity", "team", "contact", "pipeline", "sink", "slo"} {
				if r.Labels[k] == "" {
					t.Errorf("%s %v: no %s label", r.Alert, r.Labels, k)
				}
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s %v: summary or description missing", r.Alert, r.Labels)
			}
		}
	}
	if alerts != 16 {
		t.Fatalf("alerts = %d, want 16 (page and ticket, 2 slos, 4 sinks)", alerts)
	}
}

func TestRules_rejects_bad_objectives(t *testing.T) {
	for _, tc := range []struct {
		slo  SLO
		want string
	}{
		{SLO{Kind: Freshness, Objective: 1, Window: time.Hour}, "objective 1 is not between 0 and 1"},
		{SLO{Kind: Completeness, Objective: 99.9, Window: time.Hour}, "objective 99.9 is not between 0 and 1"},
		{SLO{Kind: "latency", Objective: 0.9, Window: time.Hour}, `unknown slo "latency"`},
		{SLO{Kind: Freshness, Objective: 0.9}, "window must be positive"},
	} {
		_, err := Rules([]Pipeline{{Name: "p", Sinks: []Sink{{Name: "s", SLOs: []SLO{tc.slo}}}}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.slo, err, tc.want)
		}
	}
}

func TestPromDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Minute:            "5m",
		90 * time.Minute:           "1h30m",
		72 * time.Hour:             "3d",
		28 * 24 * time.Hour:        "28d",
		36*time.Hour + time.Second: "1d12h1s",
	} {
		if got := promDuration(d); got != want {
			t.Errorf("promDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestFromConfig_reads_slo_and_sink_overrides: the generators take each sink's objectives
// from its pipeline's slo section, with the sink's own overrides, and the defaults elsewhere.
func TestFromConfig_reads_slo_and_sink_overrides(t *testing.T) {
	cfg, err := config.Parse("slo.yaml", []byte(`
kafka: {brokers: ["localhost:9092"]}
pipelines:
  - name: p
    owner: {team: t, contact: c}
    source: {topics: [in]}
    contract: {message: auctions.v1.BidPlaced}
    slo: {freshness: {threshold: 30s, objective: 95%}, window: 7d}
    sinks:
      - name: a
        kafka: {topic: out}
      - name: b
        kafka: {topic: out2}
        slo: {completeness: {objective: 99%}}
    routes: [{sink: a}, {sink: b}]
    dead_letter: {topic: dlq}
`))
	if err != nil {
		t.Fatal(err)
	}
	ps := FromConfig(cfg)
	if len(ps) != 1 || len(ps[0].Sinks) != 2 {
		t.Fatalf("got %+v, want one pipeline with two sinks", ps)
	}
	for _, tc := range []struct {
		sink                  int
		fresh, complete       float64
		threshold, windowDays time.Duration
	}{
		{0, 0.95, DefaultCompletenessObjective, 30 * time.Second, 7},
		{1, 0.95, 0.99, 30 * time.Second, 7},
	} {
		s := ps[0].Sinks[tc.sink]
		f, c := s.SLOs[0], s.SLOs[1]
		if f.Kind != Freshness || f.Objective != tc.fresh || f.Threshold != tc.threshold || f.Window != tc.windowDays*24*time.Hour {
			t.Errorf("sink %s freshness = %+v, want objective %v threshold %v window %dd", s.Name, f, tc.fresh, tc.threshold, tc.windowDays)
		}
		if c.Kind != Completeness || c.Objective != tc.complete {
			t.Errorf("sink %s completeness = %+v, want objective %v", s.Name, c, tc.complete)
		}
	}
}
