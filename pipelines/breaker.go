package pipelines

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/status"
	"github.com/switchyard-dev/switchyard/internal/telemetry"
	"github.com/switchyard-dev/switchyard/pipelines/source"
)

// breakerSteps is how many steps a breaker's sliding window moves in: a window of 1m forgets
// its events 3s at a time, so the ratio is measured over between 57s and 1m.
const breakerSteps = 20

// breakerTopReasons is how many reasons (each with one example) a trip line names.
const breakerTopReasons = 3

// errHeld is a held batch's answer when its partition is released or the engine stops while
// the breaker is tripped: the batch is handed back, uncommitted, for the next owner.
var errHeld = errors.New("batch held by the tripped dead-letter breaker")

// breaker is a pipeline's dead-letter breaker (dead_letter.breaker). Each lane reports every
// batch it finished (observe, from lane.account): how many of its events it dead-lettered.
// The primary lane (the first sink's) dead-letters decode and validation failures for the
// whole pipeline, so a storm of those is measured there; every lane dead-letters its own
// route, transform and sink failures. When one lane's sliding window holds at least
// min_events of which more than max_ratio were dead-lettered, the breaker trips (open): every
// lane of the pipeline holds the batches it is handed (gate) without processing, acking or
// nacking them, so nothing further is committed and fetching stops at source.max_in_flight;
// batches that were already being processed finish as usual, so every committed offset is
// still landed or dead-lettered. After cooldown, the next batch of the lane that tripped it
// is processed as the probe (half-open): at most max_ratio dead-lettered and the breaker
// closes and every lane resumes; more and it trips again for another cooldown.
//
// A nil *breaker is a disabled one: every method does nothing. Its methods are safe for
// concurrent use.
type breaker struct {
	pipeline string
	cfg      config.Breaker
	maxRatio float64
	width    int64 // nanoseconds per window step
	log      *slog.Logger
	metrics  *telemetry.Metrics
	now      func() time.Time
	after    func(time.Duration) <-chan time.Time // time.After; a fake clock's in tests

	mu       sync.Mutex
	state    int                     // telemetry.BreakerClosed, BreakerOpen or BreakerHalfOpen
	lanes    map[string]*breakerRing // by sink
	since    time.Time               // when it tripped (first trip of the episode)
	until    time.Time               // end of the cooldown, while open
	probing  bool                    // half-open: the probe batch is in a lane's handler
	probeGen uint64                  // counts probes, so a late probeDone cannot free a newer one
	trips    int64
	last     telemetry.BreakerTrip // the latest trip
	change   chan struct{}         // closed and replaced at every state change
}

// newBreaker returns the breaker of pipeline with lanes for sinks, or nil when cfg disables it.
func newBreaker(pipeline string, cfg config.Breaker, sinks []string, log *slog.Logger, m *telemetry.Metrics) *breaker {
	if !cfg.Enabled || cfg.Window <= 0 || cfg.MaxRatio <= 0 {
		return nil
	}
	b := &breaker{pipeline: pipeline, cfg: cfg, maxRatio: float64(cfg.MaxRatio), width: max(int64(cfg.Window)/breakerSteps, 1),
		log: log, metrics: m, now: time.Now, after: time.After, lanes: map[string]*breakerRing{}, change: make(chan struct{})}
	for _, s := range sinks {
		b.lanes[s] = &breakerRing{}
	}
	if m != nil {
		m.BreakerState.WithLabelValues(pipeline).Set(telemetry.BreakerClosed)
		m.BreakerTrips.WithLabelValues(pipeline).Add(0)
	}
	return b
}

// gate wraps the handler of sink's lane: while the breaker is open a batch waits before h
// until the cooldown ends (then it may be the probe), its partition is released, its context
// ends or stop is closed (then it is handed back with errHeld, unprocessed).
func (b *breaker) gate(sink string, stop <-chan struct{}, h message.NoPublishHandlerFunc) message.NoPublishHandlerFunc {
	if b == nil {
		return h
	}
	return func(msg *message.Message) error {
		var released <-chan struct{}
		if bt := source.BatchOf(msg); bt != nil {
			released = bt.Released()
		}
		probe, gen, err := b.admit(msg.Context(), sink, stop, released)
		if err != nil {
			return err
		}
		if probe {
			defer b.probeDone(gen)
		}
		return h(msg)
	}
}

// admit returns once a batch of sink's lane may be processed: at once while closed; after
// the cooldown while open, as the probe (probe set, gen naming it for probeDone) if sink's
// lane is the one that tripped and no other batch is probing. Only that lane's batches probe:
// another lane may never dead-letter what tripped it (decode and validation failures are the
// primary lane's), so its batches would always look healthy. It returns errHeld when ctx ends or stop or released is closed first.
func (b *breaker) admit(ctx context.Context, sink string, stop, released <-chan struct{}) (probe bool, gen uint64, err error) {
	for {
		b.mu.Lock()
		var wait time.Duration
		switch b.state {
		case telemetry.BreakerClosed:
			b.mu.Unlock()
			return false, 0, nil
		case telemetry.BreakerOpen:
			now := b.now()
			if now.Before(b.until) {
				wait = b.until.Sub(now)
			} else if sink == b.last.Sink {
				b.setState(telemetry.BreakerHalfOpen)
				b.probing = true
				b.probeGen++
				gen = b.probeGen
				b.mu.Unlock()
				telemetry.BreakerProbing(b.log, b.metrics, b.pipeline, sink)
				return true, gen, nil
			}
		case telemetry.BreakerHalfOpen:
			if !b.probing && sink == b.last.Sink {
				b.probing = true
				b.probeGen++
				gen = b.probeGen
				b.mu.Unlock()
				return true, gen, nil
			}
		}
		change := b.change
		b.mu.Unlock()
		var fire <-chan time.Time
		if wait > 0 {
			fire = b.after(wait)
		}
		select {
		case <-change:
		case <-fire:
		case <-ctx.Done():
			return false, 0, errHeld
		case <-stop:
			return false, 0, errHeld
		case <-released:
			return false, 0, errHeld
		}
	}
}

// probeDone is called when the probe batch gen left its handler. If it reached no verdict
// (its batch failed and is redelivered), the next batch handed to a lane probes instead.
func (b *breaker) probeDone(gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == telemetry.BreakerHalfOpen && b.probing && b.probeGen == gen {
		b.probing = false
		b.signal()
	}
}

// observe records a batch of total events that sink's lane finished, dead of them
// dead-lettered by this lane (dls are its dead letters, for the reasons): while
// closed it may trip the breaker; while half-open, from the lane that tripped it, it is the
// probe's verdict. A batch that finishes while open, or of another lane while half-open (it
// was admitted before the trip), changes nothing.
func (b *breaker) observe(sink string, dead, total int, dls []deadLetter) {
	if b == nil || total <= 0 {
		return
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	slot := now.UnixNano() / b.width
	switch b.state {
	case telemetry.BreakerClosed:
		r := b.lanes[sink]
		if r == nil {
			r = &breakerRing{}
			b.lanes[sink] = r
		}
		r.add(slot, int64(dead), int64(total), dls)
		d, t := r.sum(slot)
		if t >= int64(b.cfg.MinEvents) && float64(d) > b.maxRatio*float64(t) {
			b.trip(now, telemetry.BreakerTrip{Sink: sink, Dead: d, Events: t}, r, slot)
		}
	case telemetry.BreakerHalfOpen:
		if sink != b.last.Sink {
			return // a batch of another lane admitted before the trip: not the probe
		}
		if float64(dead) > b.maxRatio*float64(total) {
			var probe breakerRing
			probe.add(slot, int64(dead), int64(total), dls)
			b.trip(now, telemetry.BreakerTrip{Sink: sink, Probe: true, Dead: int64(dead), Events: int64(total)}, &probe, slot)
			return
		}
		trippedFor := now.Sub(b.since)
		for _, r := range b.lanes {
			*r = breakerRing{}
		}
		b.lanes[sink].add(slot, int64(dead), int64(total), dls)
		b.probing = false
		b.setState(telemetry.BreakerClosed)
		telemetry.BreakerResumed(b.log, b.metrics, b.pipeline, float64(dead)/float64(total), int64(total), trippedFor)
	}
}

// trip opens the breaker for a cooldown; reasons holds the dead letters to name. b.mu is held.
func (b *breaker) trip(now time.Time, t telemetry.BreakerTrip, reasons *breakerRing, slot int64) {
	t.Pipeline, t.MaxRatio, t.Window, t.Cooldown = b.pipeline, b.maxRatio, b.cfg.Window, b.cfg.Cooldown
	t.Ratio = float64(t.Dead) / float64(max(t.Events, 1))
	t.Reasons, t.Examples = reasons.top(slot, breakerTopReasons)
	if b.state == telemetry.BreakerClosed {
		b.since = now
	}
	b.until = now.Add(b.cfg.Cooldown)
	b.probing = false
	b.trips++
	b.last = t
	b.setState(telemetry.BreakerOpen)
	telemetry.BreakerTripped(b.log, b.metrics, t)
}

// setState changes the state and wakes every waiting batch. b.mu is held.
func (b *breaker) setState(s int) {
	b.state = s
	if b.metrics != nil {
		b.metrics.BreakerState.WithLabelValues(b.pipeline).Set(float64(s))
	}
	b.signal()
}

func (b *breaker) signal() {
	close(b.change)
	b.change = make(chan struct{})
}

// closed reports whether the breaker is closed (true for a disabled one) and returns a
// channel that its next state change closes (nil, never closed, for a disabled one): a
// batch waiting for another lane (verdictRing.pace) stops waiting when the pipeline trips.
func (b *breaker) closed() (bool, <-chan struct{}) {
	if b == nil {
		return true, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state == telemetry.BreakerClosed, b.change
}

// status is the breaker as the status report shows it; nil for a disabled breaker.
func (b *breaker) status() *status.Breaker {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &status.Breaker{State: status.BreakerClosed, Trips: b.trips, MaxRatio: b.maxRatio,
		Window: b.cfg.Window.String(), MinEvents: b.cfg.MinEvents, Cooldown: b.cfg.Cooldown.String()}
	if b.state == telemetry.BreakerClosed {
		return s
	}
	s.State = status.BreakerTripped
	if b.state == telemetry.BreakerHalfOpen {
		s.State = status.BreakerProbing
	}
	since, until := b.since.UTC(), b.until.UTC()
	s.TrippedAt, s.ProbeAt = &since, &until
	s.Reason = b.last.Summary()
	return s
}

// tripped describes the breaker for /readyz while it is not closed; "" while closed.
func (b *breaker) tripped() string {
	s := b.status()
	if s == nil || s.State == status.BreakerClosed {
		return ""
	}
	now := b.now()
	probe := "probe batch being tried"
	if s.State == status.BreakerTripped {
		probe = "probe in " + max(s.ProbeAt.Sub(now), 0).Round(time.Second).String()
	}
	return fmt.Sprintf("pipeline %s: dead-letter breaker tripped %v ago, %s: %s",
		b.pipeline, now.Sub(*s.TrippedAt).Round(time.Second), probe, s.Reason)
}

// breakerRing is one lane's sliding window: breakerSteps buckets, one per step.
type breakerRing struct {
	b [breakerSteps]breakerBucket
}

type breakerBucket struct {
	slot        int64 // the step it counts; a bucket of an older step is stale
	dead, total int64
	reasons     map[string]*reasonCount
}

// reasonCount counts one dead-letter reason and keeps the source coordinates of its first
// dead letter in the bucket.
type reasonCount struct {
	n       int64
	example string
}

func (r *breakerRing) bucket(slot int64) *breakerBucket {
	bk := &r.b[((slot%breakerSteps)+breakerSteps)%breakerSteps]
	if bk.slot != slot {
		bk.slot, bk.dead, bk.total = slot, 0, 0
		clear(bk.reasons)
	}
	return bk
}

// add counts a batch in step slot.
func (r *breakerRing) add(slot, dead, total int64, dls []deadLetter) {
	bk := r.bucket(slot)
	bk.dead += dead
	bk.total += total
	for i := range dls {
		dl := &dls[i]
		reason := dl.detail()
		rc := bk.reasons[reason]
		if rc == nil {
			if bk.reasons == nil {
				bk.reasons = map[string]*reasonCount{}
			}
			rc = &reasonCount{example: fmt.Sprintf("%s/%d@%d", dl.rec.Topic, dl.rec.Partition, dl.rec.Offset)}
			bk.reasons[reason] = rc
		}
		rc.n++
	}
}

// live reports whether bucket bk counts in the window ending at step slot.
func live(bk *breakerBucket, slot int64) bool {
	return bk.total > 0 && bk.slot <= slot && slot-bk.slot < breakerSteps
}

// sum is the window's dead-lettered and total events at step slot.
func (r *breakerRing) sum(slot int64) (dead, total int64) {
	for i := range r.b {
		if bk := &r.b[i]; live(bk, slot) {
			dead += bk.dead
			total += bk.total
		}
	}
	return dead, total
}

// top names the n most frequent reasons of the window at step slot, "validate=980 decode=20",
// and an example source coordinate of each, "validate bids/0@12, decode bids/1@7".
func (r *breakerRing) top(slot int64, n int) (reasons, examples string) {
	type rc struct {
		reason  string
		n       int64
		example string
	}
	var all []rc
	idx := map[string]int{}
	for i := range r.b {
		bk := &r.b[i]
		if !live(bk, slot) {
			continue
		}
		for reason, c := range bk.reasons {
			if j, ok := idx[reason]; ok {
				all[j].n += c.n
				continue
			}
			idx[reason] = len(all)
			all = append(all, rc{reason, c.n, c.example})
		}
	}
	slices.SortFunc(all, func(a, b rc) int { return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.reason, b.reason)) })
	var rs, ex []string
	for _, c := range all[:min(n, len(all))] {
		rs = append(rs, fmt.Sprintf("%s=%d", c.reason, c.n))
		ex = append(ex, c.reason+" "+c.example)
	}
	return strings.Join(rs, " "), strings.Join(ex, ", ")
}

// Tripped lists, one line each for /readyz, the pipelines whose dead-letter breaker is
// tripped or probing: while it lists any, /readyz answers 503.
func (e *Engine) Tripped() []string {
	var out []string
	for _, p := range e.pipelines {
		if s := p.brk.tripped(); s != "" {
			out = append(out, s)
		}
	}
	return out
}
