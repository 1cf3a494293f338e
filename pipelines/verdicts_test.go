package pipelines_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/pipelines"
	"github.com/switchyard-dev/switchyard/sinks"
)

const twoLaneConfig = `
kafka: {brokers: ["${BROKERS}"]}
contracts: {path: "${CONTRACTS}"}
admin: {address: ""}
pipelines:
  - name: p
    owner: {team: t, contact: c}
    source: {topics: [in], group: g, max_batch: 100}
    contract: {message: auctions.v1.BidPlaced}
    sinks:
      - name: a
        kafka: {topic: out-a}
        batch: {interval: 10ms}
      - name: b
        kafka: {topic: out-b}
        batch: {interval: 10ms}
    routes:
      - {sink: a, pii: raw, pii_reason: test}
      - {sink: b, pii: raw, pii_reason: test}
    dead_letter: {topic: dlq}
`

// Two lanes of one pipeline validate each event once between them while they move together,
// and an invalid event is still rejected by each lane (only valid verdicts are shared).
func TestEngine_lanes_share_valid_verdicts(t *testing.T) {
	e := newEnv(t, true, "in", "out-a", "out-b", "dlq")
	const n = 2000
	e.produceTenthInvalid(t, n)
	_, m := e.start(t, twoLaneConfig)
	const valid = n - n/10
	waitFor(t, time.Minute, "both sinks to land every valid event", func() bool {
		return e.count(t, "out-a") == valid && e.count(t, "out-b") == valid && e.count(t, "dlq") == n/10
	})
	shared := value(t, m.SharedValidations.WithLabelValues("p"))
	if shared <= 0 || shared > valid {
		t.Fatalf("switchyard_validations_shared_total = %v, want in (0, %d]", shared, valid)
	}
	// Both sinks write the records' bytes on unconditional routes: a lane that finds a verdict
	// before decoding does not decode the record either (one stored while it decoded is still
	// a shared validation).
	if skipped := value(t, m.DecodesSkipped.WithLabelValues("p", "a")) + value(t, m.DecodesSkipped.WithLabelValues("p", "b")); skipped <= 0 || skipped > shared {
		t.Fatalf("switchyard_decodes_skipped_total = %v over both lanes, want in (0, %v], the shared verdicts", skipped, shared)
	}
	e.checkOnceEach(t, 1, n/10)
	// Lanes that all route from bytes fetch for themselves (TestEngine_lanes_share_fetches).
	if got := value(t, m.FetchesShared.WithLabelValues("p", "a")) + value(t, m.FetchesShared.WithLabelValues("p", "b")); got != 0 {
		t.Errorf("switchyard_records_fetch_shared_total = %v over two lanes that route from bytes, want 0", got)
	}
	// Nothing more lands later: no invalid event slipped through a shared verdict.
	time.Sleep(300 * time.Millisecond)
	if a, b, d := e.count(t, "out-a"), e.count(t, "out-b"), e.count(t, "dlq"); a != valid || b != valid || d != n/10 {
		t.Fatalf("out-a=%d out-b=%d dlq=%d, want %d, %d, %d", a, b, d, valid, valid, n/10)
	}
	t.Logf("%v of %d validations shared", shared, valid)
}

// checkOnceEach fails unless the protobuf body of every (Confluent-framed) input value is in
// both outputs once per time it was produced (times: the producer repeated its values that
// often), or (the invalid ones, of which invalid were produced) in neither: byte for byte.
func (e *env) checkOnceEach(t *testing.T, times, invalid int) {
	t.Helper()
	a, b := e.values(t, "out-a"), e.values(t, "out-b")
	rejected := 0
	for _, v := range e.valuesList(t, "in") {
		_, _, body, err := contract.SplitConfluent(v)
		if err != nil {
			t.Fatal(err)
		}
		switch na, nb := a[string(body)], b[string(body)]; {
		case na == 0 && nb == 0:
			rejected++
		case na != times || nb != times:
			t.Fatalf("an input value is %d times in out-a and %d times in out-b, want %d each", na, nb, times)
		}
	}
	if rejected != invalid {
		t.Fatalf("%d input values reached neither sink, want the %d invalid ones", rejected, invalid)
	}
}

// tapConfig is twoLaneConfig with a condition (true for every event) on sink a's route: its
// lane reads decoded messages, so it leads the shared fetch.
var tapConfig = strings.Replace(twoLaneConfig, "- {sink: a, pii: raw", "- {sink: a, when: \"kafka.offset >= 0\", pii: raw", 1)

// While two lanes move together, one fetches for both: the lane that routes from bytes (b)
// takes the records the lane that decodes (a) fetched, and both land every valid event once.
// Lanes that all route from bytes fetch for themselves.
func TestEngine_lanes_share_fetches(t *testing.T) {
	e := newEnv(t, true, "in", "out-a", "out-b", "dlq")
	_, m := e.start(t, tapConfig)
	const rounds, each = 10, 300
	for range rounds {
		e.produceTenthInvalid(t, each)
		time.Sleep(50 * time.Millisecond)
	}
	const n, valid = rounds * each, rounds * (each - each/10)
	waitFor(t, time.Minute, "both sinks to land every valid event", func() bool {
		return e.count(t, "out-a") == valid && e.count(t, "out-b") == valid && e.count(t, "dlq") == n/10
	})
	if got := value(t, m.FetchesShared.WithLabelValues("p", "b")); got <= 0 || got > n {
		t.Errorf("switchyard_records_fetch_shared_total{sink=b} = %v, want in (0, %d]", got, n)
	}
	if got := value(t, m.FetchesShared.WithLabelValues("p", "a")); got != 0 {
		t.Errorf("switchyard_records_fetch_shared_total{sink=a} = %v, want 0 for the leading lane", got)
	}
	e.checkOnceEach(t, rounds, n/10) // each round produces the same values
}

// produceTenthInvalid produces n events to "in", every tenth (i%10 == 3) invalid.
func (e *env) produceTenthInvalid(t *testing.T, n int) {
	t.Helper()
	e.produce(t, "in", n, func(i int) eventgen.Kind {
		if i%10 == 3 {
			return eventgen.Invalid
		}
		return eventgen.Valid
	}, nil)
}

// paceConfig is twoLaneConfig with a small ring (2 × max_in_flight = 1024 slots per
// partition) so that a backlog of a few thousand events spans it several times.
var paceConfig = strings.Replace(twoLaneConfig, "max_batch: 100}", "max_batch: 100, max_in_flight: 200}", 1)

// jsonLanesConfig is paceConfig with both sinks re-encoding as JSON: both lanes read decoded
// messages.
var jsonLanesConfig = strings.NewReplacer(
	"kafka: {topic: out-a}", "kafka: {topic: out-a, encoding: json}",
	"kafka: {topic: out-b}", "kafka: {topic: out-b, encoding: json}").Replace(paceConfig)

// slowSink wraps a real sink; each write first waits delay, and fails while down is set.
type slowSink struct {
	sinks.Sink
	delay time.Duration
	down  *atomic.Bool
}

func (s slowSink) Open(ctx context.Context) error {
	if o, ok := s.Sink.(sinks.Opener); ok {
		return o.Open(ctx)
	}
	return nil
}

func (s slowSink) Write(ctx context.Context, recs []*event.Record) error {
	time.Sleep(s.delay)
	if s.down != nil && s.down.Load() {
		return errors.New("injected outage: connection refused")
	}
	return s.Sink.Write(ctx, recs)
}

// wrapSink builds the configured sinks, wrapping sink b in slowSink.
func wrapSink(delay time.Duration, down *atomic.Bool) func(context.Context, *config.Sink, pipelines.SinkDeps) (sinks.Sink, error) {
	return wrapNamed("b", delay, down)
}

// wrapNamed builds the configured sinks, wrapping the one called name in slowSink.
func wrapNamed(name string, delay time.Duration, down *atomic.Bool) func(context.Context, *config.Sink, pipelines.SinkDeps) (sinks.Sink, error) {
	return func(ctx context.Context, sc *config.Sink, deps pipelines.SinkDeps) (sinks.Sink, error) {
		s, err := pipelines.NewSink(ctx, sc, deps)
		if err != nil || sc.Name != name {
			return s, err
		}
		return slowSink{Sink: s, delay: delay, down: down}, nil
	}
}

// Over a backlog the lane of a fast sink would run far ahead of a slower one, past the ring,
// and both would validate every event. The lanes pace each other instead: the one ahead waits
// while a live lane behind is more than half the ring behind, so each event is validated once.
func TestEngine_lanes_move_together_over_a_backlog(t *testing.T) {
	e := newEnv(t, true, "in", "out-a", "out-b", "dlq")
	const n = 8000
	e.produce(t, "in", n, func(int) eventgen.Kind { return eventgen.Valid }, nil)
	_, m := e.startWith(t, paceConfig, wrapSink(15*time.Millisecond, nil))
	waitFor(t, 2*time.Minute, "both sinks to land every event", func() bool {
		return e.count(t, "out-a") == n && e.count(t, "out-b") == n
	})
	shared := value(t, m.SharedValidations.WithLabelValues("p"))
	if shared < 0.95*n {
		t.Fatalf("switchyard_validations_shared_total = %v of %d events: the lanes drifted apart and validated on their own", shared, n)
	}
	t.Logf("%v of %d validations shared", shared, n)
}

// A lane whose sink is down does not hold back the others for longer than the pacing
// patience: the healthy lane lands the whole backlog while the other lane's sink fails every
// write, and the recovered lane lands it too afterwards.
func TestEngine_a_down_sink_does_not_pace_the_other_lanes(t *testing.T) {
	e := newEnv(t, true, "in", "out-a", "out-b", "dlq")
	const n = 6000
	e.produce(t, "in", n, func(int) eventgen.Kind { return eventgen.Valid }, nil)
	var down atomic.Bool
	down.Store(true)
	start := time.Now()
	_, m := e.startWith(t, paceConfig, wrapSink(0, &down))
	waitFor(t, time.Minute, "the healthy sink to land every event", func() bool { return e.count(t, "out-a") == n })
	took := time.Since(start)
	if b := e.count(t, "out-b"); b != 0 {
		t.Fatalf("out-b holds %d events while its sink is down", b)
	}
	paced := value(t, m.PaceSeconds.WithLabelValues("p", "a"))
	if paced <= 0 {
		t.Fatal("lane a never waited for lane b, so this test does not show that the wait ends")
	}
	down.Store(false)
	waitFor(t, 2*time.Minute, "the recovered sink to land every event", func() bool { return e.count(t, "out-b") == n })
	if again := value(t, m.PaceSeconds.WithLabelValues("p", "a")); again != paced {
		t.Fatalf("lane a waited %vs more after it had landed everything", again-paced)
	}
	t.Logf("healthy lane landed %d events in %v with the other sink down (%.1fs of batch waits)", n, took, paced)
}

// valuesList reads every record value of topic, partition after partition.
func (e *env) valuesList(t *testing.T, topic string) [][]byte {
	t.Helper()
	n := e.count(t, topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out [][]byte
	for int64(len(out)) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records of %s: %v", len(out), n, topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r.Value) })
	}
	return out
}

// values counts the record values of topic.
func (e *env) values(t *testing.T, topic string) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, v := range e.valuesList(t, topic) {
		m[string(v)]++
	}
	return m
}

// A lane whose route has a condition reads decoded messages: it never skips a decode, and
// still shares verdicts with the other lane.
func TestEngine_a_conditional_route_decodes_what_it_matches(t *testing.T) {
	e := newEnv(t, true, "in", "out-a", "out-b", "dlq")
	const n = 2000
	e.produce(t, "in", n, func(int) eventgen.Kind { return eventgen.Valid }, nil)
	cfg := strings.Replace(twoLaneConfig, "{sink: b, pii: raw, pii_reason: test}", "{sink: b, pii: raw, pii_reason: test, when: 'event.amount.units >= 0'}", 1)
	_, m := e.start(t, cfg)
	waitFor(t, time.Minute, "both sinks to land every event", func() bool {
		return e.count(t, "out-a") == n && e.count(t, "out-b") == n
	})
	if s := value(t, m.DecodesSkipped.WithLabelValues("p", "b")); s != 0 {
		t.Fatalf("lane b with a route condition skipped %v decodes", s)
	}
	if s := value(t, m.SharedValidations.WithLabelValues("p")); s <= 0 {
		t.Fatalf("switchyard_validations_shared_total = %v of %d: lane b no longer shares verdicts", s, n)
	}
}

// Two lanes that both read decoded messages (their sinks re-encode them as JSON) decode each
// event about once between them: a lane that finds another's valid verdict reads that lane's
// decoded message while it is still held. Every valid event lands in both outputs as the
// message it was (each output JSON, parsed back, is an input body), invalid ones in neither.
func TestEngine_lanes_share_decoded_messages(t *testing.T) {
	e := newEnv(t, true, "in", "out-a", "out-b", "dlq")
	const n = 3000
	e.produceTenthInvalid(t, n)
	cfg := jsonLanesConfig
	_, m := e.start(t, cfg)
	const valid = n - n/10
	waitFor(t, time.Minute, "both sinks to land every valid event", func() bool {
		return e.count(t, "out-a") == valid && e.count(t, "out-b") == valid && e.count(t, "dlq") == n/10
	})
	borrowed := value(t, m.SharedDecodes.WithLabelValues("p"))
	if borrowed <= 0 || borrowed > valid {
		t.Fatalf("switchyard_decodes_shared_total = %v, want in (0, %d]", borrowed, valid)
	}
	ct, err := e.reg.Lookup(eventgen.BidPlaced)
	if err != nil {
		t.Fatal(err)
	}
	canon := func(m proto.Message) string {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	want := map[string]int{}
	raw := ct.NewDecoder(contract.Raw)
	for _, v := range e.valuesList(t, "in") {
		_, _, body, err := contract.SplitConfluent(v)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := raw.Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		if ct.Validate(msg) == nil {
			want[canon(msg.Interface())]++
		}
	}
	raw.Release()
	for _, topic := range []string{"out-a", "out-b"} {
		got := map[string]int{}
		dec := ct.NewDecoder(contract.JSON)
		for _, v := range e.valuesList(t, topic) {
			msg, err := dec.Decode(v)
			if err != nil {
				t.Fatalf("%s: %v", topic, err)
			}
			got[canon(msg.Interface())]++
		}
		if !maps.Equal(got, want) {
			t.Fatalf("%s holds %d distinct events, want the %d valid inputs once each", topic, len(got), len(want))
		}
	}
	t.Logf("%v of %d decodes shared", borrowed, valid)
}

// A lane trails the decoding lane behind it, to borrow its messages; when that lane's sink is
// down the trailing lane stops waiting for it after the patience and lands everything on its
// own, and the recovered sink lands everything too.
func TestEngine_a_down_sink_ahead_in_line_does_not_hold_back_the_lane_trailing_it(t *testing.T) {
	e := newEnv(t, true, "in", "out-a", "out-b", "dlq")
	const n = 6000
	e.produce(t, "in", n, func(int) eventgen.Kind { return eventgen.Valid }, nil)
	cfg := jsonLanesConfig
	var down atomic.Bool
	down.Store(true)
	_, m := e.startWith(t, cfg, wrapNamed("a", 0, &down)) // lane a goes first on a tie
	waitFor(t, time.Minute, "the healthy sink to land every event", func() bool { return e.count(t, "out-b") == n })
	if a := e.count(t, "out-a"); a != 0 {
		t.Fatalf("out-a holds %d events while its sink is down", a)
	}
	if paced := value(t, m.PaceSeconds.WithLabelValues("p", "b")); paced <= 0 {
		t.Fatal("lane b never waited for lane a, so this test does not show that the wait ends")
	}
	down.Store(false)
	waitFor(t, 2*time.Minute, "the recovered sink to land every event", func() bool { return e.count(t, "out-a") == n })
}
