package pipelines_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/internal/status"
	"github.com/switchyard-dev/switchyard/internal/telemetry"
	"github.com/switchyard-dev/switchyard/pipelines"
	"github.com/switchyard-dev/switchyard/sinks"
)

// produceAt writes n events of kind whose occurred_at starts at start.
func (e *env) produceAt(t *testing.T, topic string, n int, kind eventgen.Kind, start time.Time) {
	t.Helper()
	gen, err := eventgen.New(e.reg, eventgen.Options{Seed: 5, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range n {
		ev, err := gen.Make(eventgen.BidPlaced, kind, contract.Confluent)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: ev.Payload})
	}
	if err := e.client.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func sloValue(t *testing.T, m *telemetry.Metrics, good bool, slo string) float64 {
	t.Helper()
	vec := m.SLOEvents
	if good {
		vec = m.SLOGood
	}
	var d dto.Metric
	if err := vec.WithLabelValues("p", "bus", slo).Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}

const sloConfig = `
kafka: {brokers: ["${BROKERS}"]}
contracts: {path: "${CONTRACTS}"}
pii: {hash_key: test-key}
admin: {address: ""}
pipelines:
  - name: p
    owner: {team: t, contact: c}
    source: {topics: [in], group: g, max_batch: 10}
    contract: {message: auctions.v1.BidPlaced}
    slo:
      freshness: {threshold: 1m, objective: 99%}
    sinks:
      - name: bus
        kafka: {topic: out}
        batch: {interval: 10ms}
        slo:
          completeness: {objective: 99.9%}
    routes:
      - sink: bus
    dead_letter: {topic: dlq}
`

// Events whose occurred_at is two hours old land stale, events from now land fresh; an
// invalid event is dead-lettered and counts against completeness only. Its log line is the
// only one of its reason within the interval.
func TestEngine_slo_freshness_split_and_completeness_with_a_dead_letter(t *testing.T) {
	e := newEnv(t, true, "in", "out", "dlq")
	_, m := e.start(t, sloConfig)
	e.produceAt(t, "in", 10, eventgen.Valid, time.Now().Add(-2*time.Hour))
	e.produceAt(t, "in", 10, eventgen.Valid, time.Now())
	e.produceAt(t, "in", 2, eventgen.Invalid, time.Now())
	waitFor(t, 20*time.Second, "all events handled", func() bool {
		return sloValue(t, m, false, telemetry.SLOCompleteness) == 22
	})
	if got := sloValue(t, m, false, telemetry.SLOFreshness); got != 20 {
		t.Errorf("freshness total = %v, want 20 landed", got)
	}
	if got := sloValue(t, m, true, telemetry.SLOFreshness); got != 10 {
		t.Errorf("freshness good = %v, want the 10 recent events", got)
	}
	if got := sloValue(t, m, true, telemetry.SLOCompleteness); got != 20 {
		t.Errorf("completeness good = %v, want 20 (2 dead-lettered)", got)
	}
	var h dto.Metric
	if err := m.Freshness.WithLabelValues("p", "bus").(interface{ Write(*dto.Metric) error }).Write(&h); err != nil {
		t.Fatal(err)
	}
	if got := h.GetHistogram().GetSampleCount(); got != 20 {
		t.Errorf("switchyard_event_freshness_seconds count = %d, want 20", got)
	}
	if got := h.GetHistogram().GetSampleSum(); got < 10*7000 {
		t.Errorf("switchyard_event_freshness_seconds sum = %v, want the stale ones at about 2h each", got)
	}
	for _, s := range m.SLOs() {
		want := map[string]float64{telemetry.SLOFreshness: 0.99, telemetry.SLOCompleteness: 0.999}[s.Name]
		if s.Objective != want {
			t.Errorf("%s objective = %v, want %v", s.Name, s.Objective, want)
		}
		if s.Name == telemetry.SLOFreshness && math.Abs(s.BurnRate(5*time.Minute)-50) > 1e-6 {
			t.Errorf("freshness burn rate 5m = %v, want 50 (half stale, 1%% budget)", s.BurnRate(5*time.Minute))
		}
	}
	if got := m.DeadLetteredCount("p", "validate"); got != 2 {
		t.Errorf("dead-lettered validate = %v, want 2", got)
	}
	if got := strings.Count(e.logs.String(), "dead-lettered event"); got != 1 {
		t.Errorf("%d dead-letter log lines, want 1 (rate limited per reason)", got)
	}
}

// gatedSink fails every write transiently while closed.
type gatedSink struct {
	sinks.Sink
	closed *atomic.Bool
}

func (g gatedSink) Write(ctx context.Context, recs []*event.Record) error {
	if g.closed.Load() {
		return errors.New("dial tcp 127.0.0.1:9000: connection refused")
	}
	return g.Sink.Write(ctx, recs)
}

// While the sink cannot write, the lag in records and in seconds rises; once it writes again
// both return to 0.
func TestEngine_lag_seconds_rise_while_a_sink_is_paused_then_return_to_0(t *testing.T) {
	e := newEnv(t, true, "in", "out", "dlq")
	var closed atomic.Bool
	closed.Store(true)
	cfg := strings.Replace(sloConfig, "max_batch: 10}", "max_batch: 10, lag_interval: 100ms}", 1)
	_, m := e.startWith(t, cfg, func(ctx context.Context, sc *config.Sink, deps pipelines.SinkDeps) (sinks.Sink, error) {
		s, err := pipelines.NewSink(ctx, sc, deps)
		if err != nil {
			return nil, err
		}
		return gatedSink{Sink: s, closed: &closed}, nil
	})
	e.produceAt(t, "in", 10, eventgen.Valid, time.Now())
	sum := func(name string) float64 {
		mfs, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var v float64
		for _, mf := range mfs {
			if mf.GetName() == name {
				for _, mm := range mf.GetMetric() {
					v += mm.GetGauge().GetValue()
				}
			}
		}
		return v
	}
	waitFor(t, 20*time.Second, "lag in records and seconds", func() bool {
		return sum("switchyard_consumer_lag_records") == 10 && sum("switchyard_consumer_lag_seconds") > 0
	})
	first := sum("switchyard_consumer_lag_seconds")
	waitFor(t, 20*time.Second, "lag in seconds to rise", func() bool { return sum("switchyard_consumer_lag_seconds") > first+0.5 })
	closed.Store(false)
	waitFor(t, 30*time.Second, "lag back to 0", func() bool {
		return sum("switchyard_consumer_lag_records") == 0 && sum("switchyard_consumer_lag_seconds") == 0
	})
}

func TestCompile_event_time_field_must_be_a_timestamp(t *testing.T) {
	e := newEnv(t, false)
	yaml := strings.ReplaceAll(strings.Replace(sloConfig, "    slo:\n      freshness", "    event_time_field: bid_id\n    slo:\n      freshness", 1), "${CONTRACTS}", contractsDir())
	cfg, err := config.Parse("test.yaml", []byte(strings.ReplaceAll(yaml, "${BROKERS}", "localhost:9092")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = pipelines.Compile(cfg, e.reg)
	if err == nil || !strings.Contains(err.Error(), `test.yaml:11:5: pipeline "p": event_time_field "bid_id" is not a top-level google.protobuf.Timestamp field of auctions.v1.BidPlaced`) {
		t.Fatalf("got %v", err)
	}
	cfg.Pipelines[0].EventTimeField = "occurred_at"
	c, err := pipelines.Compile(cfg, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Pipelines[0].Summary(); !strings.Contains(s, "event time occurred_at") {
		t.Errorf("summary does not say the event time: %s", s)
	}
}

const twoSinkConfig = `
kafka: {brokers: ["${BROKERS}"]}
contracts: {path: "${CONTRACTS}"}
pii: {hash_key: test-key}
admin: {address: ""}
pipelines:
  - name: p
    owner: {team: t, contact: "#c"}
    source: {topics: [in], group: g, max_batch: 10, lag_interval: 100ms}
    contract: {message: auctions.v1.BidPlaced}
    sinks:
      - name: bus
        kafka: {topic: out}
        batch: {interval: 10ms}
      - name: held
        kafka: {topic: out2}
        batch: {interval: 10ms}
        retry: {initial_backoff: 10ms, max_backoff: 50ms}
    routes:
      - sink: bus
      - sink: held
    dead_letter: {topic: dlq}
`

// Status grades a sink that cannot write red with its error while the other sink of the
// pipeline stays green, and reports owner, contract and lag.
func TestEngine_status_shows_the_held_sink_red_and_the_other_green(t *testing.T) {
	e := newEnv(t, true, "in", "out", "out2", "dlq")
	var closed atomic.Bool
	closed.Store(true)
	eng, _ := e.startWith(t, twoSinkConfig, func(ctx context.Context, sc *config.Sink, deps pipelines.SinkDeps) (sinks.Sink, error) {
		s, err := pipelines.NewSink(ctx, sc, deps)
		if err != nil || sc.Name != "held" {
			return s, err
		}
		return gatedSink{Sink: s, closed: &closed}, nil
	})
	e.produceAt(t, "in", 10, eventgen.Valid, time.Now())
	lagOf := func(s status.Sink) int64 {
		var lag int64
		for _, pt := range s.Partitions {
			lag += pt.LagRecords
		}
		return lag
	}
	// The held lane's partitions are reported from their assignment on, every lag_interval;
	// a report from before the events were produced reads lag 0, so wait for one after.
	waitFor(t, 20*time.Second, "bus landing and held retrying with the events behind it", func() bool {
		r := eng.Status()
		s := r.Pipelines[0].Sinks
		return s[0].LastLanded != nil && s[1].State == status.Retrying && lagOf(s[1]) > 0
	})
	r := eng.Status()
	p := r.Pipelines[0]
	bus, held := p.Sinks[0], p.Sinks[1]
	if r.Version != 1 || r.Overall != status.Red || p.Team != "t" || p.Contact != "#c" ||
		len(p.Contracts) != 1 || p.Contracts[0].Name != "auctions.v1.BidPlaced" || len(p.Contracts[0].Hash) != 12 {
		t.Errorf("report: %+v", r)
	}
	if bus.Level != status.Green || bus.State != status.Landing {
		t.Errorf("bus: %+v, want green and landing", bus)
	}
	if held.Level != status.Red || !strings.Contains(held.Error, "connection refused") {
		t.Errorf("held: %+v, want red with its error", held)
	}
	if lag := lagOf(held); lag != 10 {
		t.Errorf("held lag = %d records, want 10", lag)
	}
	closed.Store(false)
	waitFor(t, 20*time.Second, "held landing again", func() bool {
		s := eng.Status().Pipelines[0].Sinks[1]
		return s.State == status.Landing && s.Level == status.Green
	})
}
