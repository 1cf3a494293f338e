package telemetry

import (
	"testing"
	"time"
)

func TestLimiter_first_per_key_then_one_per_interval_with_suppressed_count(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(time.Minute)
	l.now = func() time.Time { return now }
	type step struct {
		advance    time.Duration
		key        string
		ok         bool
		suppressed int
	}
	for i, s := range []step{
		{0, "a", true, 0},                // first of a
		{0, "b", true, 0},                // first of b: keys are independent
		{time.Second, "a", false, 0},     // within the interval
		{time.Second, "a", false, 0},     // again
		{59 * time.Second, "a", true, 2}, // a minute after the last allowed: reports the two
		{time.Second, "b", true, 0},      // b's interval (61s) passed, nothing suppressed
		{time.Second, "a", false, 0},
		{time.Minute, "a", true, 1},
	} {
		now = now.Add(s.advance)
		ok, n := l.Allow(s.key)
		if ok != s.ok || n != s.suppressed {
			t.Fatalf("step %d (%s): Allow = %v, %d; want %v, %d", i, s.key, ok, n, s.ok, s.suppressed)
		}
	}
	var nilLimiter *Limiter
	if ok, _ := nilLimiter.Allow("x"); !ok {
		t.Fatal("a nil Limiter must allow")
	}
}
