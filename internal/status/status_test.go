package status

import "testing"

func ptr(f float64) *float64 { return &f }

func TestGrade(t *testing.T) {
	cases := []struct {
		name string
		sink Sink
		dl   map[string]int64
		want Level
	}{
		{"landing and within budget", Sink{State: Landing, SLOs: []SLO{{Current: ptr(1), BudgetRemaining: 1}}}, nil, Green},
		{"retrying", Sink{State: Retrying, Error: "connection refused"}, nil, Red},
		{"failed to start", Sink{State: Failed}, nil, Red},
		{"paused by backpressure", Sink{State: Paused}, nil, Amber},
		{"stalled partition", Sink{State: Landing, Partitions: []Partition{{Stalled: true}}}, nil, Red},
		{"fast burn", Sink{State: Landing, SLOs: []SLO{{Current: ptr(0.5), BudgetRemaining: 0.5, BurnRates: map[string]float64{"5m": 20, "1h": 15}}}}, nil, Red},
		{"fast burn over 5m only", Sink{State: Landing, SLOs: []SLO{{Current: ptr(0.5), BudgetRemaining: 0.5, BurnRates: map[string]float64{"5m": 20, "1h": 2}}}}, nil, Green},
		{"slow burn", Sink{State: Landing, SLOs: []SLO{{Current: ptr(0.99), BudgetRemaining: 0.5, BurnRates: map[string]float64{"6h": 2}}}}, nil, Amber},
		{"budget spent", Sink{State: Landing, SLOs: []SLO{{Current: ptr(0.9), BudgetRemaining: -1}}}, nil, Red},
		{"no events yet", Sink{State: Landing, SLOs: []SLO{{BudgetRemaining: 0}}}, nil, Green},
		{"recent dead letters", Sink{State: Landing}, map[string]int64{"validate": 3}, Amber},
	}
	for _, tc := range cases {
		r := &Report{Pipelines: []Pipeline{{Sinks: []Sink{tc.sink, {State: Landing}}, DeadLetters5m: tc.dl}}}
		Grade(r)
		if r.Overall != tc.want || r.Pipelines[0].Level != tc.want {
			t.Errorf("%s: overall %s, pipeline %s, want %s", tc.name, r.Overall, r.Pipelines[0].Level, tc.want)
		}
		if r.Pipelines[0].Sinks[1].Level != Green {
			t.Errorf("%s: the healthy sink is %s, want green", tc.name, r.Pipelines[0].Sinks[1].Level)
		}
	}
}
