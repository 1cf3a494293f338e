package pipelines

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/internal/telemetry"
	"github.com/switchyard-dev/switchyard/sinks"
)

// laneSLO measures a lane's SLOs (see docs/slo.md) and keeps what the status page shows of it.
type laneSLO struct {
	cfg       config.SLO
	fresh     *telemetry.SLO
	complete  *telemetry.SLO
	freshHist prometheus.Observer

	mu         sync.Mutex
	started    bool
	startErr   string
	lastLanded time.Time
	lastErr    string
	lastErrAt  time.Time
}

// newLaneSLO registers the SLOs of sink sc of pipeline pc.
func newLaneSLO(m *telemetry.Metrics, pc *config.Pipeline, sc *config.Sink) laneSLO {
	s := pc.SLOFor(sc)
	return laneSLO{
		cfg:       s,
		fresh:     m.NewSLO(pc.Name, sc.Name, telemetry.SLOFreshness, s.Freshness.Objective.Ratio(), nil),
		complete:  m.NewSLO(pc.Name, sc.Name, telemetry.SLOCompleteness, s.Completeness.Objective.Ratio(), nil),
		freshHist: m.Freshness.WithLabelValues(pc.Name, sc.Name),
	}
}

// sloScratch is a batch's per-record SLO bookkeeping, reused with its laneState.
type sloScratch struct {
	evTime  time.Time   // set by process: the event time of the record being processed
	times   []time.Time // event time per batch index
	bad     []bool      // dead-lettered (by any lane) per batch index
	landed  []bool      // landed in this lane's sink per batch index
	failing map[*event.Record]bool
}

// reset sizes the scratch for a batch of n records.
func (sc *sloScratch) reset(n int) {
	if cap(sc.times) < n {
		sc.times, sc.bad, sc.landed = make([]time.Time, n), make([]bool, n), make([]bool, n)
	}
	sc.times, sc.bad, sc.landed = sc.times[:n], sc.bad[:n], sc.landed[:n]
	clear(sc.bad)
	clear(sc.landed)
}

// account records the SLO outcomes of a batch whose every record reached one: landed are the
// records of the batch that landed in the lane's sink, dead the dead letters written for it.
// A record is bad for completeness when it was dead-lettered (here, or by the primary lane
// for a decode or validation failure: it never reaches any sink); every other outcome (landed,
// filtered, unrouted) is good. Freshness counts each record that landed at least once.
func (l *lane) account(recs []event.Record, st *laneState, landed []*event.Record, dead []deadLetter) {
	sc := &st.slo
	n := len(recs)
	if n == 0 {
		return
	}
	deadN := 0 // records of the batch this lane dead-lettered, for the breaker
	for j := range dead {
		if i := offsetIndex(recs, dead[j].rec.Offset); i >= 0 && !sc.bad[i] {
			sc.bad[i] = true
			deadN++
		}
	}
	for i := range recs {
		if recs[i].Contract == "" { // not decoded or not valid: the primary lane dead-letters it
			sc.bad[i] = true
		}
	}
	for _, r := range landed {
		if i := offsetIndex(recs, r.Offset); i >= 0 {
			sc.landed[i] = true
		}
	}
	now := time.Now()
	good, fresh, nLanded := 0, 0, 0
	for i := range n {
		if !sc.bad[i] {
			good++
		}
		if !sc.landed[i] || sc.times[i].IsZero() {
			continue
		}
		age := now.Sub(sc.times[i])
		nLanded++
		l.slo.freshHist.Observe(max(age, 0).Seconds())
		if age <= l.slo.cfg.Freshness.Threshold {
			fresh++
		}
	}
	l.slo.complete.Add(good, n)
	l.slo.fresh.Add(fresh, nLanded)
	l.p.brk.observe(l.sink, deadN, n, dead)
}

// landedNonFailing is ptrs without the records that failed permanently.
func (sc *sloScratch) landedNonFailing(ptrs []*event.Record, failures []sinks.Failure) []*event.Record {
	if len(failures) == 0 {
		return ptrs
	}
	if sc.failing == nil {
		sc.failing = map[*event.Record]bool{}
	}
	clear(sc.failing)
	for _, f := range failures {
		sc.failing[f.Record] = true
	}
	out := make([]*event.Record, 0, len(ptrs))
	for _, r := range ptrs {
		if !sc.failing[r] {
			out = append(out, r)
		}
	}
	return out
}

func (s *laneSLO) setStarted(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = err == nil
	s.startErr = ""
	if err != nil {
		s.startErr = err.Error()
	}
}

func (s *laneSLO) setLanded(t time.Time) {
	s.mu.Lock()
	s.lastLanded = t
	s.mu.Unlock()
}

func (s *laneSLO) setFailed(err error, t time.Time) {
	s.mu.Lock()
	s.lastErr, s.lastErrAt = err.Error(), t
	s.mu.Unlock()
}

// recentDeadLetters counts a pipeline's dead letters per reason over the last hours.
type recentDeadLetters struct {
	mu       sync.Mutex
	byReason map[string]*telemetry.Ring
}

func (r *recentDeadLetters) add(reason string) {
	r.mu.Lock()
	ring := r.byReason[reason]
	if ring == nil {
		if r.byReason == nil {
			r.byReason = map[string]*telemetry.Ring{}
		}
		ring = telemetry.NewRing(nil)
		r.byReason[reason] = ring
	}
	r.mu.Unlock()
	ring.Add(1)
}

// last is the count per reason over the last d; reasons without any are left out.
func (r *recentDeadLetters) last(d time.Duration) map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int64{}
	for reason, ring := range r.byReason {
		if n := ring.Sum(d); n > 0 {
			out[reason] = n
		}
	}
	return out
}
