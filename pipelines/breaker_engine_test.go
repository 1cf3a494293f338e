package pipelines_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/internal/status"
	"github.com/switchyard-dev/switchyard/internal/telemetry"
)

// breakerConfig holds one batch per partition in flight (max_in_flight = max_batch), so the
// test knows how far a lane can get past the trip: the batch it is processing.
const breakerConfig = `
kafka: {brokers: ["${BROKERS}"]}
contracts: {path: "${CONTRACTS}"}
pii: {hash_key: test-key}
admin: {address: ""}
pipelines:
  - name: p
    owner: {team: t, contact: c}
    source: {topics: [in], group: g, max_batch: 10, max_in_flight: 10}
    contract: {message: auctions.v1.BidPlaced}
    sinks:
      - name: bus
        kafka: {topic: out}
        batch: {interval: 10ms}
      - name: copy
        kafka: {topic: copy}
        batch: {interval: 10ms}
    routes:
      - sink: bus
      - sink: copy
    dead_letter:
      topic: dlq
      breaker: {max_ratio: 50%, window: 1m, min_events: 20, cooldown: 1s}
`

// TestEngine_breaker_halts_a_poison_storm_and_resumes_on_valid_traffic: 100% invalid events
// trip the breaker of a two-lane pipeline; while tripped no lane commits; after each cooldown
// a probe batch re-trips it while it is still invalid, and valid events afterwards close it
// and land in both sinks. Every invalid event is dead-lettered once, none is lost.
func TestEngine_breaker_halts_a_poison_storm_and_resumes_on_valid_traffic(t *testing.T) {
	e := newEnv(t, true, "in", "out", "copy", "dlq")
	eng, m := e.start(t, breakerConfig)
	const bad, good = 60, 30
	e.produce(t, "in", bad, func(int) eventgen.Kind { return eventgen.Invalid }, nil)
	state := func() float64 { return gaugeValue(t, m.BreakerState.WithLabelValues("p")) }
	waitFor(t, 20*time.Second, "the breaker to trip", func() bool { return state() == telemetry.BreakerOpen })
	if lines := eng.Tripped(); len(lines) != 1 || !strings.HasPrefix(lines[0], "pipeline p: dead-letter breaker tripped") || !strings.Contains(lines[0], "top reasons validate=") {
		t.Fatalf("Tripped() = %q", lines)
	}
	var ps status.Pipeline
	for _, p := range eng.Status().Pipelines {
		ps = p
	}
	if ps.Breaker == nil || ps.Breaker.State != status.BreakerTripped || ps.Level != status.Red {
		t.Fatalf("status while tripped: %+v (level %s)", ps.Breaker, ps.Level)
	}
	if got := e.committed(t, "g.bus", "in") + e.committed(t, "g.copy", "in"); got >= 2*bad {
		t.Fatalf("both lanes committed everything (%d) although the breaker tripped", got)
	}

	e.produce(t, "in", good, func(int) eventgen.Kind { return eventgen.Valid }, nil)
	waitFor(t, time.Minute, "the breaker to close and every event to be handled", func() bool {
		return state() == telemetry.BreakerClosed && e.committed(t, "g.bus", "in") == bad+good && e.committed(t, "g.copy", "in") == bad+good
	})
	if got := e.count(t, "dlq"); got != bad {
		t.Fatalf("dead-letter topic holds %d records, want each of the %d invalid events once", got, bad)
	}
	if got, got2 := e.count(t, "out"), e.count(t, "copy"); got != good || got2 != good {
		t.Fatalf("landed %d and %d valid events, want %d in each sink", got, got2, good)
	}
	trips := value(t, m.BreakerTrips.WithLabelValues("p"))
	logs := e.logs.String()
	if n := strings.Count(logs, "level=ERROR"); trips < 1 || float64(n) != trips {
		t.Fatalf("%d ERROR lines for %v trips, want one per trip:\n%s", n, trips, logs)
	}
	// Each partition has its own backlog of invalid events, so a healthy probe on one may be
	// followed by another trip; every close is one line.
	if strings.Count(logs, `msg="dead-letter breaker closed: probe batch healthy, pipeline resumed"`) < 1 {
		t.Fatalf("want a resume line:\n%s", logs)
	}
	if n := strings.Count(logs, `msg="dead-lettered event"`); n != 1 {
		t.Fatalf("%d dead-letter WARN lines for %d dead letters, want 1 (rate limited):\n%s", n, bad, logs)
	}
	if len(eng.Tripped()) != 0 {
		t.Fatalf("Tripped() after closing: %q", eng.Tripped())
	}
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var d dto.Metric
	if err := g.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetGauge().GetValue()
}
