package telemetry

import (
	"sync"
	"time"
)

// LogInterval is how often a repeating failure is logged per key by the events that rate-limit
// their lines (their counters count every occurrence).
const LogInterval = 30 * time.Second

// Limiter rate-limits a repeating log line per key (for example pipeline/sink/partition): the
// first occurrence of a key passes, then at most one per interval, which reports how many were
// suppressed since the last one that passed. It is safe for concurrent use. Keys are never
// forgotten; use a bounded set (partitions, not offsets).
type Limiter struct {
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	keys map[string]*limitState
}

type limitState struct {
	last       time.Time
	suppressed int
}

// NewLimiter returns a Limiter that passes one line per key per interval.
func NewLimiter(interval time.Duration) *Limiter {
	return &Limiter{interval: interval, now: time.Now, keys: make(map[string]*limitState)}
}

// Allow reports whether a line for key may be logged now and, if so, how many lines for key
// were suppressed since the last one allowed. A nil Limiter allows everything.
func (l *Limiter) Allow(key string) (ok bool, suppressed int) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.keys[key]
	if st == nil {
		l.keys[key] = &limitState{last: now}
		return true, 0
	}
	if now.Sub(st.last) < l.interval {
		st.suppressed++
		return false, 0
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	return true, n
}

// Flush calls fn, outside the lock, for every key with lines suppressed whose interval has
// passed since its last line, and counts that as its line: a burst that stopped still gets
// its count reported once. A nil Limiter has nothing to flush.
func (l *Limiter) Flush(fn func(key string, suppressed int)) {
	if l == nil {
		return
	}
	now := l.now()
	type due struct {
		key string
		n   int
	}
	var out []due
	l.mu.Lock()
	for k, st := range l.keys {
		if st.suppressed > 0 && now.Sub(st.last) >= l.interval {
			out = append(out, due{k, st.suppressed})
			st.last, st.suppressed = now, 0
		}
	}
	l.mu.Unlock()
	for _, d := range out {
		fn(d.key, d.n)
	}
}
