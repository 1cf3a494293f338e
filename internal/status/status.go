// Package status is the model of the daemon's status report, served as /api/status and
// rendered on the admin server's status page and by `switchyard status`. The engine fills it
// (pipelines.Engine.Status); Grade sets the red/amber/green levels.
package status

import "time"

// Version is the version of the report's JSON format; it changes only when a field is
// removed or changes meaning.
const Version = 1

// Level is a red/amber/green grade.
type Level string

const (
	Green Level = "green"
	Amber Level = "amber"
	Red   Level = "red"
)

func (l Level) rank() int {
	switch l {
	case Red:
		return 2
	case Amber:
		return 1
	}
	return 0
}

// Worst is the worse of a and b.
func Worst(a, b Level) Level {
	if b.rank() > a.rank() {
		return b
	}
	if a == "" {
		return Green
	}
	return a
}

// SinkState is what a sink is doing.
type SinkState string

const (
	Landing  SinkState = "landing"         // its last write succeeded (or it has written nothing yet)
	Retrying SinkState = "retrying"        // its last write failed; Error says why
	Failed   SinkState = "failed_to_start" // it could not start and is being retried; Error says why
	Paused   SinkState = "paused"          // fetching is paused by backpressure: a partition is at source.max_in_flight
	Starting SinkState = "starting"        // not started yet
)

// Report is the whole status.
type Report struct {
	Version     int        `json:"version"`
	GeneratedAt time.Time  `json:"generated_at"`
	Overall     Level      `json:"overall"`
	Pipelines   []Pipeline `json:"pipelines"`
}

// Pipeline is one pipeline's status.
type Pipeline struct {
	Name      string     `json:"name"`
	Level     Level      `json:"level"`
	Team      string     `json:"owner_team"`
	Contact   string     `json:"owner_contact"`
	Contracts []Contract `json:"contracts"`
	// DeadLetters5m counts the pipeline's dead letters of the last 5 minutes per reason.
	DeadLetters5m map[string]int64 `json:"dead_letters_5m"`
	// Breaker is the pipeline's dead-letter breaker; absent when dead_letter.breaker is
	// disabled.
	Breaker *Breaker `json:"breaker,omitempty"`
	Sinks   []Sink   `json:"sinks"`
}

// BreakerState is what a pipeline's dead-letter breaker is doing.
type BreakerState string

const (
	BreakerClosed  BreakerState = "closed"  // consuming
	BreakerTripped BreakerState = "tripped" // open: no lane consumes or commits until ProbeAt
	BreakerProbing BreakerState = "probing" // half-open: one probe batch is being tried
)

// Breaker is a pipeline's dead-letter breaker (dead_letter.breaker).
type Breaker struct {
	State BreakerState `json:"state"`
	// Trips counts the trips since the daemon started.
	Trips int64 `json:"trips"`
	// TrippedAt is when the current episode began and ProbeAt when its cooldown ends (set
	// unless closed).
	TrippedAt *time.Time `json:"tripped_at,omitempty"`
	ProbeAt   *time.Time `json:"probe_at,omitempty"`
	// Reason says why it tripped: the ratio, the lane, the top reasons and example source
	// coordinates (set unless closed).
	Reason    string  `json:"reason,omitempty"`
	MaxRatio  float64 `json:"max_ratio"`
	Window    string  `json:"window"`
	MinEvents int     `json:"min_events"`
	Cooldown  string  `json:"cooldown"`
}

// Contract is a contract message the pipeline decodes.
type Contract struct {
	Name string `json:"name"` // full name, e.g. auctions.v1.BidPlaced
	Hash string `json:"hash"` // first 12 hex digits of the SHA-256 of its file's descriptor
}

// Sink is one sink's status.
type Sink struct {
	Name  string    `json:"name"`
	Kind  string    `json:"kind"`
	Level Level     `json:"level"`
	State SinkState `json:"state"`
	// Error is the last write error (Retrying) or start-up error (Failed).
	Error      string      `json:"error,omitempty"`
	ErrorAt    *time.Time  `json:"error_at,omitempty"`
	LastLanded *time.Time  `json:"last_landed,omitempty"`
	Partitions []Partition `json:"partitions"`
	SLOs       []SLO       `json:"slos"`
}

// Partition is the lag of one partition of a sink's lane.
type Partition struct {
	Topic      string  `json:"topic"`
	Partition  int32   `json:"partition"`
	LagRecords int64   `json:"lag_records"`
	LagSeconds float64 `json:"lag_seconds"`
	Stalled    bool    `json:"stalled"`
	Paused     bool    `json:"paused"`
}

// SLO is one objective of a sink.
type SLO struct {
	Name      string  `json:"name"`      // freshness or completeness
	Objective float64 `json:"objective"` // ratio, e.g. 0.999
	// Current is good/total over the last 6 hours; nil without events.
	Current *float64 `json:"current"`
	Events  int64    `json:"events_6h"`
	// BudgetRemaining is the share of the error budget left since the daemon started: 1
	// untouched, 0 spent, negative overspent.
	BudgetRemaining float64            `json:"error_budget_remaining"`
	BurnRates       map[string]float64 `json:"burn_rates"` // by window: 5m, 30m, 1h, 6h
	Level           Level              `json:"level"`
}

// Burn-rate thresholds of the grades, from the multiwindow alerting of the Google SRE
// workbook: 14.4 spends 2% of a 30-day budget in an hour.
const (
	FastBurn = 14.4
	SlowBurn = 1.0
)

// Grade sets every level of r from the states, lags and SLOs, bottom up: an SLO is red when
// it burns fast over both 5m and 1h or its budget is spent, amber when it burns over 6h; a
// sink is red while retrying, failed to start or stalled, amber while paused or starting, and
// no better than its SLOs; a pipeline is its worst sink, red while its dead-letter breaker is
// tripped or probing, and amber at best with dead letters in the last 5 minutes; the report is its worst pipeline.
func Grade(r *Report) {
	r.Overall = Green
	for i := range r.Pipelines {
		p := &r.Pipelines[i]
		p.Level = Green
		for j := range p.Sinks {
			s := &p.Sinks[j]
			s.Level = Green
			switch s.State {
			case Retrying, Failed:
				s.Level = Red
			case Paused, Starting:
				s.Level = Amber
			}
			for _, pt := range s.Partitions {
				if pt.Stalled {
					s.Level = Red
				}
			}
			for k := range s.SLOs {
				o := &s.SLOs[k]
				o.Level = Green
				switch {
				case o.BurnRates["5m"] >= FastBurn && o.BurnRates["1h"] >= FastBurn, o.BudgetRemaining <= 0 && o.Current != nil:
					o.Level = Red
				case o.BurnRates["6h"] >= SlowBurn:
					o.Level = Amber
				}
				s.Level = Worst(s.Level, o.Level)
			}
			p.Level = Worst(p.Level, s.Level)
		}
		if p.Breaker != nil && p.Breaker.State != BreakerClosed {
			p.Level = Red
		}
		for _, n := range p.DeadLetters5m {
			if n > 0 {
				p.Level = Worst(p.Level, Amber)
			}
		}
		r.Overall = Worst(r.Overall, p.Level)
	}
}
