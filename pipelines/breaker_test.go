package pipelines

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/status"
	"github.com/switchyard-dev/switchyard/internal/telemetry"
)

// fakeClock is a settable clock whose After channels fire when Advance passes their deadline.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{c.t.Add(d), ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.t) {
			w.ch <- c.t
			continue
		}
		kept = append(kept, w)
	}
	c.waiters = kept
}

type breakerEnv struct {
	b     *breaker
	clock *fakeClock
	m     *telemetry.Metrics
	logs  *logLines
}

// logLines is a goroutine-safe log sink.
type logLines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logLines) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), sub)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newTestBreaker is a breaker of pipeline p with lanes a and b: max 50% over 1m with at least
// 100 events, cooldown 5m, on a fake clock.
func newTestBreaker(t *testing.T) *breakerEnv {
	t.Helper()
	cfg := config.Breaker{Enabled: true, MaxRatio: 0.5, Window: time.Minute, MinEvents: 100, Cooldown: 5 * time.Minute}
	m := telemetry.New()
	logs := &logLines{}
	b := newBreaker("p", cfg, []string{"a", "b"}, slog.New(slog.NewTextHandler(logs, nil)), m)
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	b.now, b.after = clock.Now, clock.After
	return &breakerEnv{b: b, clock: clock, m: m, logs: logs}
}

func (e *breakerEnv) state() int {
	return int(metricValue(e.m.BreakerState.WithLabelValues("p")))
}

func (e *breakerEnv) trips() int {
	return int(metricValue(e.m.BreakerTrips.WithLabelValues("p")))
}

func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Gauge != nil {
		return d.GetGauge().GetValue()
	}
	return d.GetCounter().GetValue()
}

// dead returns n dead letters of reason at offsets from off on.
func dead(reason Reason, n int, off int64) []deadLetter {
	out := make([]deadLetter, n)
	for i := range out {
		out[i] = deadLetter{rec: &kgo.Record{Topic: "in", Partition: 1, Offset: off + int64(i)}, reason: reason}
	}
	return out
}

// admitNow calls admit and fails unless it returns at once.
func (e *breakerEnv) admitNow(t *testing.T, sink string) (bool, uint64) {
	t.Helper()
	type res struct {
		probe bool
		gen   uint64
		err   error
	}
	ch := make(chan res, 1)
	go func() {
		p, g, err := e.b.admit(context.Background(), sink, nil, nil)
		ch <- res{p, g, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("admit: %v", r.err)
		}
		return r.probe, r.gen
	case <-time.After(5 * time.Second):
		t.Fatal("admit did not return although the breaker lets batches through")
	}
	return false, 0
}

// admitAsync starts admit and returns its result channel.
func (e *breakerEnv) admitAsync(ctx context.Context, sink string, stop, released <-chan struct{}) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, _, err := e.b.admit(ctx, sink, stop, released)
		ch <- err
	}()
	return ch
}

func blocked(t *testing.T, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("a batch was let through (err %v) while the breaker is open", err)
	case <-time.After(50 * time.Millisecond):
	}
}

func released(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("a held batch was not let go")
	}
	return nil
}

func TestBreaker_trips_only_above_max_ratio_with_min_events(t *testing.T) {
	for _, tc := range []struct {
		name        string
		dead, total int
		trip        bool
	}{
		{"all dead but fewer than min_events", 99, 99, false},
		{"exactly max_ratio", 100, 200, false},
		{"just above max_ratio", 101, 200, true},
		{"all dead at min_events", 100, 100, true},
		{"healthy", 1, 1000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestBreaker(t)
			// In two batches, the dead ones spread evenly.
			h := tc.total / 2
			e.b.observe("a", tc.dead/2, h, dead(ReasonValidate, tc.dead/2, 0))
			e.b.observe("a", tc.dead-tc.dead/2, tc.total-h, dead(ReasonValidate, tc.dead-tc.dead/2, int64(h)))
			if got := e.state() == telemetry.BreakerOpen; got != tc.trip {
				t.Fatalf("%d of %d dead-lettered: tripped %v, want %v", tc.dead, tc.total, got, tc.trip)
			}
			if tc.trip && e.trips() != 1 {
				t.Fatalf("trips_total = %d, want 1", e.trips())
			}
		})
	}
}

func TestBreaker_window_forgets_old_events(t *testing.T) {
	e := newTestBreaker(t)
	e.b.observe("a", 90, 90, dead(ReasonDecode, 90, 0))
	// A minute later those are gone: 90 more dead of 90 are still below min_events.
	e.clock.Advance(time.Minute + time.Second)
	e.b.observe("a", 90, 90, dead(ReasonDecode, 90, 90))
	if e.state() != telemetry.BreakerClosed {
		t.Fatal("tripped on events older than the window")
	}
	// Within the window they add up.
	e.clock.Advance(10 * time.Second)
	e.b.observe("a", 10, 10, dead(ReasonDecode, 10, 180))
	if e.state() != telemetry.BreakerOpen {
		t.Fatal("100 dead of 100 within the window did not trip")
	}
}

func TestBreaker_lanes_have_their_own_windows(t *testing.T) {
	e := newTestBreaker(t)
	// Lane a dead-letters everything, lane b lands everything: lane a trips the pipeline even
	// though the pipeline-wide ratio is 50%.
	e.b.observe("b", 0, 100, nil)
	e.b.observe("a", 60, 60, dead(ReasonSink, 60, 0))
	if e.state() != telemetry.BreakerClosed {
		t.Fatal("tripped below min_events of lane a")
	}
	e.b.observe("a", 40, 40, dead(ReasonSink, 40, 60))
	if e.state() != telemetry.BreakerOpen {
		t.Fatal("lane a: 100 dead of 100 did not trip")
	}
	st := e.b.status()
	if st.State != status.BreakerTripped || !strings.Contains(st.Reason, "in sink lane a") || !strings.Contains(st.Reason, "sink=100") {
		t.Fatalf("status %+v, want tripped naming lane a and reason sink=100", st)
	}
}

func TestBreaker_trip_logs_one_error_with_top_reasons_and_examples(t *testing.T) {
	e := newTestBreaker(t)
	e.b.observe("b", 0, 0, nil) // nothing
	e.b.observe("a", 3, 50, dead(ReasonFraming, 3, 0))
	e.b.observe("a", 50, 50, append(dead(ReasonValidate, 40, 50), dead(ReasonDecode, 10, 90)...))
	if e.state() != telemetry.BreakerOpen {
		t.Fatal("53 of 100 dead did not trip")
	}
	// Batches that were being processed when it tripped finish afterwards: no second line.
	e.b.observe("a", 50, 50, dead(ReasonValidate, 50, 100))
	e.b.observe("b", 50, 50, nil)
	if n := e.logs.count("level=ERROR"); n != 1 {
		t.Fatalf("%d ERROR lines, want 1:\n%s", n, e.logs)
	}
	want := `level=ERROR msg="dead-letter breaker tripped: pipeline stopped consuming" pipeline=p sink=a dead_letter_ratio=0.53 dead_lettered=53 events=100 max_ratio=0.5 window=1m0s cooldown=5m0s top_reasons="validate=40 decode=10 framing=3" examples="validate in/1@50, decode in/1@90, framing in/1@0"`
	if !strings.Contains(e.logs.String(), want) {
		t.Fatalf("log lacks\n%s\ngot:\n%s", want, e.logs)
	}
	if lines := e.b.tripped(); !strings.Contains(lines, "pipeline p: dead-letter breaker tripped 0s ago, probe in 5m0s: 53% of 100 events dead-lettered over 1m0s in sink lane a (max 50%); top reasons validate=40 decode=10 framing=3") {
		t.Fatalf("/readyz line %q", lines)
	}
}

func TestBreaker_holds_batches_until_cooldown_then_one_probe_closes_it(t *testing.T) {
	e := newTestBreaker(t)
	if probe, _ := e.admitNow(t, "a"); probe {
		t.Fatal("a closed breaker made a probe")
	}
	e.b.observe("a", 100, 100, dead(ReasonValidate, 100, 0))
	if e.state() != telemetry.BreakerOpen {
		t.Fatal("did not trip")
	}
	heldA := e.admitAsync(context.Background(), "a", nil, nil)
	heldB := e.admitAsync(context.Background(), "b", nil, nil)
	blocked(t, heldA)
	blocked(t, heldB)
	e.clock.Advance(4 * time.Minute)
	blocked(t, heldA)
	blocked(t, heldB)

	// After the cooldown the batch of lane a, which tripped it, is let through as the probe;
	// lane b's waits: it never dead-letters what tripped lane a, so it proves nothing.
	e.clock.Advance(time.Minute)
	if err := released(t, heldA); err != nil {
		t.Fatal(err)
	}
	second := heldB
	blocked(t, second)
	if e.state() != telemetry.BreakerHalfOpen || e.b.status().State != status.BreakerProbing {
		t.Fatalf("state %d during the probe, want half-open", e.state())
	}
	// A batch of lane b admitted before the trip and finishing now is not the verdict.
	e.b.observe("b", 0, 100, nil)
	if e.state() != telemetry.BreakerHalfOpen {
		t.Fatal("another lane's batch decided the probe")
	}
	// A healthy probe closes it: the other batch goes, and the window starts afresh.
	e.b.observe("a", 1, 10, dead(ReasonValidate, 1, 100))
	if err := released(t, second); err != nil {
		t.Fatal(err)
	}
	if e.state() != telemetry.BreakerClosed || e.b.status().State != status.BreakerClosed || e.b.tripped() != "" {
		t.Fatal("a healthy probe did not close the breaker")
	}
	if !strings.Contains(e.logs.String(), `level=WARN msg="dead-letter breaker closed: probe batch healthy, pipeline resumed" pipeline=p dead_letter_ratio=0.1 events=10 tripped_for=5m0s`) {
		t.Fatalf("no resume line:\n%s", e.logs)
	}
	e.b.observe("a", 80, 80, dead(ReasonValidate, 80, 110))
	if e.state() != telemetry.BreakerClosed {
		t.Fatal("the events before the trip still count after it closed")
	}
	if probe, _ := e.admitNow(t, "b"); probe {
		t.Fatal("a closed breaker made a probe")
	}
}

func TestBreaker_poisoned_probe_trips_it_again(t *testing.T) {
	e := newTestBreaker(t)
	e.b.observe("a", 100, 100, dead(ReasonValidate, 100, 0))
	e.clock.Advance(5 * time.Minute)
	held := e.admitAsync(context.Background(), "b", nil, nil)
	blocked(t, held)
	probe, _ := e.admitNow(t, "a")
	if !probe {
		t.Fatal("the first batch of the tripped lane after the cooldown is not the probe")
	}
	blocked(t, held)
	e.b.observe("a", 6, 10, dead(ReasonDecode, 6, 100)) // the probe: 60% dead
	if e.state() != telemetry.BreakerOpen || e.trips() != 2 {
		t.Fatalf("state %d, trips %d after a poisoned probe; want open and 2 trips", e.state(), e.trips())
	}
	blocked(t, held)
	if n := e.logs.count(`level=ERROR msg="dead-letter breaker tripped again: probe batch still poisoned" pipeline=p sink=a dead_letter_ratio=0.6 dead_lettered=6 events=10 max_ratio=0.5 window=1m0s cooldown=5m0s top_reasons="decode=6" examples="decode in/1@100"`); n != 1 {
		t.Fatalf("%d re-trip lines, want 1:\n%s", n, e.logs)
	}
	if e.logs.count("level=ERROR") != 2 {
		t.Fatalf("want one ERROR line per trip:\n%s", e.logs)
	}
	// The episode keeps its start; the next probe is a cooldown after the re-trip.
	e.clock.Advance(4 * time.Minute)
	blocked(t, held)
	if st := e.b.status(); !st.TrippedAt.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) || !st.ProbeAt.Equal(time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)) {
		t.Fatalf("tripped at %v, probe at %v", st.TrippedAt, st.ProbeAt)
	}
	e.clock.Advance(time.Minute)
	blocked(t, held) // lane b still waits for lane a's probe
	if probe, _ := e.admitNow(t, "a"); !probe {
		t.Fatal("no second probe")
	}
	e.b.observe("a", 0, 10, nil)
	if err := released(t, held); err != nil {
		t.Fatal(err)
	}
	if e.state() != telemetry.BreakerClosed {
		t.Fatal("a healthy second probe did not close it")
	}
}

func TestBreaker_probe_without_verdict_hands_over_to_the_next_batch(t *testing.T) {
	e := newTestBreaker(t)
	e.b.observe("a", 100, 100, dead(ReasonValidate, 100, 0))
	e.clock.Advance(5 * time.Minute)
	probe, gen := e.admitNow(t, "a")
	if !probe {
		t.Fatal("no probe")
	}
	held := e.admitAsync(context.Background(), "a", nil, nil)
	blocked(t, held)
	// The probe's batch failed (a sink error: it is redelivered), so it reached no verdict.
	e.b.probeDone(gen)
	if err := released(t, held); err != nil {
		t.Fatal(err)
	}
	if e.state() != telemetry.BreakerHalfOpen {
		t.Fatal("not half-open while the second probe runs")
	}
	// A stale probeDone of the first probe does not free the second one's slot.
	e.b.probeDone(gen)
	third := e.admitAsync(context.Background(), "a", nil, nil)
	blocked(t, third)
}

func TestBreaker_held_batch_goes_back_when_released_stopped_or_canceled(t *testing.T) {
	e := newTestBreaker(t)
	e.b.observe("a", 100, 100, dead(ReasonValidate, 100, 0))
	rel, stop := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	byRelease := e.admitAsync(context.Background(), "a", nil, rel)
	byStop := e.admitAsync(context.Background(), "a", stop, nil)
	byCtx := e.admitAsync(ctx, "a", nil, nil)
	blocked(t, byRelease)
	close(rel)
	if err := released(t, byRelease); !errors.Is(err, errHeld) {
		t.Fatalf("released partition: %v, want errHeld", err)
	}
	close(stop)
	if err := released(t, byStop); !errors.Is(err, errHeld) {
		t.Fatalf("engine stopping: %v, want errHeld", err)
	}
	cancel()
	if err := released(t, byCtx); !errors.Is(err, errHeld) {
		t.Fatalf("context canceled: %v, want errHeld", err)
	}
}

func TestBreaker_gate_runs_the_handler_and_a_disabled_breaker_is_nil(t *testing.T) {
	if b := newBreaker("p", config.Breaker{Enabled: false, MaxRatio: 0.5, Window: time.Minute, Cooldown: time.Minute}, nil, slog.New(slog.DiscardHandler), nil); b != nil {
		t.Fatal("a disabled breaker is not nil")
	}
	var nb *breaker
	calls := 0
	h := func(*message.Message) error { calls++; return nil }
	if err := nb.gate("a", nil, h)(message.NewMessage("1", nil)); err != nil || calls != 1 {
		t.Fatalf("disabled gate: %v, %d calls", err, calls)
	}
	nb.observe("a", 10, 10, nil) // no panic
	if nb.status() != nil || nb.tripped() != "" {
		t.Fatal("a disabled breaker reports a status")
	}

	e := newTestBreaker(t)
	e.b.observe("a", 100, 100, dead(ReasonValidate, 100, 0))
	e.clock.Advance(5 * time.Minute)
	// The probe's handler fails: the gate ends the probe, so the next batch probes.
	failing := e.b.gate("a", nil, func(*message.Message) error { return errors.New("sink down") })
	if err := failing(message.NewMessage("1", nil)); err == nil {
		t.Fatal("the handler's error was lost")
	}
	if probe, _ := e.admitNow(t, "a"); !probe {
		t.Fatal("after a failed probe the next batch is not the probe")
	}
}
