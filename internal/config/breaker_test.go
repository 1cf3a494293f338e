package config_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/switchyard-dev/switchyard/internal/config"
)

const breakerPipeline = `
kafka: {brokers: [localhost:9092]}
pipelines:
  - name: orders
    owner: {team: commerce, contact: "#commerce"}
    source: {topics: [orders]}
    contract: {message: orders.v1.Order}
    sinks:
      - name: bus
        kafka: {topic: out}
    routes:
      - sink: bus
    dead_letter:
      topic: orders.dlq
`

func TestBreaker_defaults_and_ratio_forms(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       Breaker
	}{
		{"on by default", "", Breaker{Enabled: true, MaxRatio: 0.5, Window: time.Minute, MinEvents: 1000, Cooldown: 5 * time.Minute}},
		{"percentage", `      breaker: {max_ratio: "12.5%", window: 10s, min_events: 50, cooldown: 3s}`,
			Breaker{Enabled: true, MaxRatio: 0.125, Window: 10 * time.Second, MinEvents: 50, Cooldown: 3 * time.Second}},
		{"fraction", `      breaker: {max_ratio: 0.9}`, Breaker{Enabled: true, MaxRatio: 0.9, Window: time.Minute, MinEvents: 1000, Cooldown: 5 * time.Minute}},
		{"off", `      breaker: {enabled: false}`, Breaker{Enabled: false, MaxRatio: 0.5, Window: time.Minute, MinEvents: 1000, Cooldown: 5 * time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, breakerPipeline+tc.yaml+"\n", nil)
			got := cfg.Pipelines[0].DeadLetter.Breaker
			if got.Enabled != tc.want.Enabled || !near(float64(got.MaxRatio), float64(tc.want.MaxRatio)) || got.Window != tc.want.Window ||
				got.MinEvents != tc.want.MinEvents || got.Cooldown != tc.want.Cooldown {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBreaker_invalid_values_are_positioned_errors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{`      breaker: {max_ratio: 50}`, `test.yaml:15:28: invalid max_ratio: "50" is above 1: write a percentage with its % sign ("50%") or a fraction (0.5)`},
		{`      breaker: {max_ratio: "150%"}`, `must be above 0% and at most 100%`},
		{`      breaker: {max_ratio: lots}`, `"lots" is not a ratio`},
		{`      breaker: {window: 0s}`, `test.yaml:15:17: pipeline "orders": dead_letter.breaker.window must be positive (or set enabled: false)`},
		{`      breaker: {cooldown: 0s}`, `dead_letter.breaker.cooldown must be positive`},
	} {
		_, err := parseWith(breakerPipeline+tc.yaml+"\n", nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %s", tc.yaml, err, tc.want)
		}
	}
	// Disabled, the other keys are not checked.
	mustParse(t, breakerPipeline+"      breaker: {enabled: false, window: 0s}\n", nil)
}
