package telemetry

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SLO names, the slo label of the switchyard_slo_* metrics.
const (
	SLOFreshness    = "freshness"
	SLOCompleteness = "completeness"
)

// BurnWindows are the windows of switchyard_slo_burn_rate, the window label, shortest first.
var BurnWindows = []struct {
	Name string
	D    time.Duration
}{{"5m", 5 * time.Minute}, {"30m", 30 * time.Minute}, {"1h", time.Hour}, {"6h", 6 * time.Hour}}

// Ring buckets: 10s buckets over the longest burn window.
const (
	ringBucket = 10 * time.Second
	ringSpan   = 6 * time.Hour
	ringLen    = int(ringSpan / ringBucket)
)

// Ring counts events in 10-second buckets over the last 6 hours, so that sums over recent
// windows (5m ... 6h) can be taken in process. The zero value is not usable; use NewRing. It is
// safe for concurrent use.
type Ring struct {
	now func() time.Time

	mu      sync.Mutex
	buckets [ringLen]ringSlot
}

type ringSlot struct {
	at    int64 // bucket number (unix time / ringBucket) the counts belong to
	n     [2]int64
	valid bool
}

// NewRing returns an empty ring reading the time from now (time.Now when nil).
func NewRing(now func() time.Time) *Ring {
	if now == nil {
		now = time.Now
	}
	return &Ring{now: now}
}

func bucketOf(t time.Time) int64 { return t.UnixNano() / int64(ringBucket) }

// add adds a and b to the current bucket's two counts.
func (r *Ring) add(a, b int64) {
	at := bucketOf(r.now())
	r.mu.Lock()
	s := &r.buckets[int(at%int64(ringLen))]
	if !s.valid || s.at != at {
		*s = ringSlot{at: at, valid: true}
	}
	s.n[0] += a
	s.n[1] += b
	r.mu.Unlock()
}

// sum is the two counts over the last d (whole buckets, the current one included).
func (r *Ring) sum(d time.Duration) (a, b int64) {
	now := bucketOf(r.now())
	oldest := now - int64(d/ringBucket) + 1
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.buckets {
		s := &r.buckets[i]
		if s.valid && s.at >= oldest && s.at <= now {
			a += s.n[0]
			b += s.n[1]
		}
	}
	return a, b
}

// Add counts n events now.
func (r *Ring) Add(n int64) { r.add(n, 0) }

// Sum is the number of events counted over the last d (at most 6h, in 10s steps).
func (r *Ring) Sum(d time.Duration) int64 { a, _ := r.sum(d); return a }

// BurnRate is how fast an error budget burns: the bad share of total (1 - good/total) divided
// by the budget (1 - objective). 1 spends the budget exactly over the SLO window; 0 when total
// is 0.
func BurnRate(good, total int64, objective float64) float64 {
	if total <= 0 || objective >= 1 {
		return 0
	}
	return (1 - float64(good)/float64(total)) / (1 - objective)
}

// SLO is one objective of one sink: it counts good and total events in
// switchyard_slo_good_events_total and switchyard_slo_events_total and keeps them in a Ring
// for the burn rates. It is safe for concurrent use.
type SLO struct {
	Pipeline, Sink, Name string
	Objective            float64 // ratio, e.g. 0.999

	good, total prometheus.Counter
	ring        *Ring

	mu                sync.Mutex
	sumGood, sumTotal int64 // since start
}

// NewSLO registers the objective name (SLOFreshness or SLOCompleteness) of a sink at
// objective (a ratio). Its objective and burn-rate gauges are exported from then on; now
// is the clock of the burn rates (time.Now when nil).
func (m *Metrics) NewSLO(pipeline, sink, name string, objective float64, now func() time.Time) *SLO {
	s := &SLO{Pipeline: pipeline, Sink: sink, Name: name, Objective: objective,
		good:  m.SLOGood.WithLabelValues(pipeline, sink, name),
		total: m.SLOEvents.WithLabelValues(pipeline, sink, name),
		ring:  NewRing(now)}
	m.slos.add(s)
	return s
}

// Add counts total events of which good met the objective.
func (s *SLO) Add(good, total int) {
	if total <= 0 {
		return
	}
	s.good.Add(float64(good))
	s.total.Add(float64(total))
	s.ring.add(int64(good), int64(total))
	s.mu.Lock()
	s.sumGood += int64(good)
	s.sumTotal += int64(total)
	s.mu.Unlock()
}

// Window is the good and total events over the last d (at most 6h).
func (s *SLO) Window(d time.Duration) (good, total int64) { return s.ring.sum(d) }

// Since is the good and total events since the SLO was registered (process start).
func (s *SLO) Since() (good, total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sumGood, s.sumTotal
}

// BurnRate is the burn rate over the last d.
func (s *SLO) BurnRate(d time.Duration) float64 {
	g, t := s.Window(d)
	return BurnRate(g, t, s.Objective)
}

// BudgetRemaining is the share of the error budget left, counted since process start: 1 with
// no bad events, 0 when spent, negative when overspent.
func (s *SLO) BudgetRemaining() float64 {
	g, t := s.Since()
	return 1 - BurnRate(g, t, s.Objective)
}

// sloCollector exports switchyard_slo_objective and switchyard_slo_burn_rate of every
// registered SLO, computed at scrape time.
type sloCollector struct {
	objective, burn *prometheus.Desc

	mu   sync.Mutex
	list []*SLO
}

func newSLOCollector() *sloCollector {
	return &sloCollector{
		objective: prometheus.NewDesc("switchyard_slo_objective",
			"Objective of the SLO as a ratio (0.999 for 99.9%), per sink.", []string{"pipeline", "sink", "slo"}, nil),
		burn: prometheus.NewDesc("switchyard_slo_burn_rate",
			"Error-budget burn rate over the window, computed in process: (1 - good/total) / (1 - objective); 1 spends the budget exactly over the SLO window, 0 without events.",
			[]string{"pipeline", "sink", "slo", "window"}, nil),
	}
}

func (c *sloCollector) add(s *SLO) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, o := range c.list {
		if o.Pipeline == s.Pipeline && o.Sink == s.Sink && o.Name == s.Name {
			c.list[i] = s // a lane started again: the newest wins
			return
		}
	}
	c.list = append(c.list, s)
}

// SLOs returns every registered SLO, in registration order.
func (m *Metrics) SLOs() []*SLO {
	m.slos.mu.Lock()
	defer m.slos.mu.Unlock()
	return append([]*SLO(nil), m.slos.list...)
}

func (c *sloCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.objective
	ch <- c.burn
}

func (c *sloCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	list := append([]*SLO(nil), c.list...)
	c.mu.Unlock()
	for _, s := range list {
		ch <- prometheus.MustNewConstMetric(c.objective, prometheus.GaugeValue, s.Objective, s.Pipeline, s.Sink, s.Name)
		for _, w := range BurnWindows {
			ch <- prometheus.MustNewConstMetric(c.burn, prometheus.GaugeValue, s.BurnRate(w.D), s.Pipeline, s.Sink, s.Name, w.Name)
		}
	}
}
