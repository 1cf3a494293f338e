package config_test

import (
	"testing"
	"time"

	. "github.com/switchyard-dev/switchyard/internal/config"
)

func TestSLO_defaults_and_sink_overrides(t *testing.T) {
	cfg := mustParse(t, `
kafka: {brokers: [localhost:9092]}
pipelines:
  - name: orders
    owner: {team: commerce, contact: "#commerce"}
    source: {topics: [orders]}
    contract: {message: orders.v1.Order}
    slo:
      freshness: {threshold: 30s}
    sinks:
      - name: olap
        clickhouse: {addresses: [localhost:9000]}
      - name: bus
        kafka: {topic: out}
        slo:
          freshness: {objective: "99.5%"}
          completeness: {objective: 99.99%}
          window: 7d
    routes:
      - sink: olap
    dead_letter: {topic: orders.dlq}
`, nil)
	p := &cfg.Pipelines[0]
	cases := []struct {
		sink            int
		threshold       time.Duration
		fresh, complete float64
		window          time.Duration
	}{
		{0, 30 * time.Second, 0.99, 0.999, 28 * 24 * time.Hour},
		{1, 30 * time.Second, 0.995, 0.9999, 7 * 24 * time.Hour},
	}
	for _, tc := range cases {
		s := p.SLOFor(&p.Sinks[tc.sink])
		if s.Freshness.Threshold != tc.threshold || !near(s.Freshness.Objective.Ratio(), tc.fresh) ||
			!near(s.Completeness.Objective.Ratio(), tc.complete) || time.Duration(s.Window) != tc.window {
			t.Errorf("sink %s: got %+v, want threshold %v freshness %v completeness %v window %v",
				p.Sinks[tc.sink].Name, s, tc.threshold, tc.fresh, tc.complete, tc.window)
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-12 && b-a < 1e-12 }

func TestPercent_and_Period_round_trip(t *testing.T) {
	for _, s := range []string{"99%", "99.9%", "50%"} {
		var p Percent
		if err := p.UnmarshalText([]byte(s)); err != nil || p.String() != s {
			t.Errorf("Percent %q: got %v, %v", s, p, err)
		}
	}
	for _, s := range []string{"28d", "1d", "36h0m0s"} {
		var p Period
		if err := p.UnmarshalText([]byte(s)); err != nil || p.String() != s {
			t.Errorf("Period %q: got %v, %v", s, p, err)
		}
	}
	for _, s := range []string{"0%", "100%", "-1%", "x"} {
		var p Percent
		if err := p.UnmarshalText([]byte(s)); err == nil {
			t.Errorf("Percent %q: no error", s)
		}
	}
}
