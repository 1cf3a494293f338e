package telemetry

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// Breaker states, the values of switchyard_pipeline_breaker_state.
const (
	BreakerClosed   = 0
	BreakerOpen     = 1
	BreakerHalfOpen = 2
)

// BreakerTrip describes why a pipeline's dead-letter breaker tripped.
type BreakerTrip struct {
	Pipeline string
	Sink     string // the lane whose window passed the limit ("" when a probe batch failed)
	Probe    bool   // tripped again because its probe batch was still poisoned
	Ratio    float64
	Dead     int64 // dead-lettered events of the window (or of the probe batch)
	Events   int64 // events of the window (or of the probe batch)
	MaxRatio float64
	Window   time.Duration
	Cooldown time.Duration
	Reasons  string // top reasons with counts, e.g. "validate=980 decode=20"
	Examples string // example source coordinates per top reason, e.g. "validate bids/0@12"
}

// BreakerTripped sets the breaker gauge to open, counts the trip and logs one ERROR line: the
// pipeline consumes and commits nothing until a probe batch after cooldown is healthy.
func BreakerTripped(log *slog.Logger, m *Metrics, t BreakerTrip) {
	if m != nil {
		m.BreakerState.WithLabelValues(t.Pipeline).Set(BreakerOpen)
		m.BreakerTrips.WithLabelValues(t.Pipeline).Inc()
	}
	msg := "dead-letter breaker tripped: pipeline stopped consuming"
	if t.Probe {
		msg = "dead-letter breaker tripped again: probe batch still poisoned"
	}
	log.Error(msg, "pipeline", t.Pipeline, "sink", t.Sink, "dead_letter_ratio", round3(t.Ratio), "dead_lettered", t.Dead,
		"events", t.Events, "max_ratio", t.MaxRatio, "window", t.Window, "cooldown", t.Cooldown,
		"top_reasons", t.Reasons, "examples", t.Examples)
}

// BreakerProbing sets the breaker gauge to half-open and logs it at INFO: the cooldown is
// over and one batch is let through to test the traffic.
func BreakerProbing(log *slog.Logger, m *Metrics, pipeline, sink string) {
	if m != nil {
		m.BreakerState.WithLabelValues(pipeline).Set(BreakerHalfOpen)
	}
	log.Info("dead-letter breaker half-open: trying one probe batch", "pipeline", pipeline, "sink", sink)
}

// BreakerResumed sets the breaker gauge to closed and logs at WARN (to pair with the trip) that
// a healthy probe batch resumed the pipeline after being tripped for trippedFor.
func BreakerResumed(log *slog.Logger, m *Metrics, pipeline string, ratio float64, events int64, trippedFor time.Duration) {
	if m != nil {
		m.BreakerState.WithLabelValues(pipeline).Set(BreakerClosed)
	}
	log.Warn("dead-letter breaker closed: probe batch healthy, pipeline resumed", "pipeline", pipeline,
		"dead_letter_ratio", round3(ratio), "events", events, "tripped_for", trippedFor.Round(time.Second))
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// Summary is the trip in one line, for /readyz and the status page: "97% of 1000 events
// dead-lettered over 1m0s in sink lane olap (max 50%); top reasons validate=970 decode=30; e.g.
// validate bids/0@12, decode bids/1@7".
func (t BreakerTrip) Summary() string {
	what := fmt.Sprintf("%s%% of %d events dead-lettered over %v in sink lane %s", strconv.FormatFloat(round3(t.Ratio)*100, 'f', -1, 64), t.Events, t.Window, t.Sink)
	if t.Probe {
		what = fmt.Sprintf("probe batch still poisoned in sink lane %s: %s%% of %d events dead-lettered", t.Sink, strconv.FormatFloat(round3(t.Ratio)*100, 'f', -1, 64), t.Events)
	}
	s := fmt.Sprintf("%s (max %s%%)", what, strconv.FormatFloat(t.MaxRatio*100, 'f', -1, 64))
	if t.Reasons != "" {
		s += "; top reasons " + t.Reasons + "; e.g. " + t.Examples
	}
	return s
}
