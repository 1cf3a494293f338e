package backoff_test

import (
	"math"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/backoff"
)

func TestWait_is_bounded_and_jittered(t *testing.T) {
	seen := map[time.Duration]bool{}
	for attempt := 1; attempt < 40; attempt++ {
		d := backoff.Wait(attempt, 100*time.Millisecond, 2*time.Second)
		if d > 2*time.Second || d < 50*time.Millisecond {
			t.Fatalf("attempt %d: backoff %v out of bounds", attempt, d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("backoff is not jittered: %v", seen)
	}
}

// TestWait_equal_jitter: each wait lies in [step/2, step] of its doubling step.
func TestWait_equal_jitter(t *testing.T) {
	for _, tt := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{6, 1600 * time.Millisecond, 3200 * time.Millisecond},
		{7, 2500 * time.Millisecond, 5 * time.Second},
		{100, 2500 * time.Millisecond, 5 * time.Second},
		{math.MaxInt, 2500 * time.Millisecond, 5 * time.Second},
	} {
		for range 100 {
			if d := backoff.Wait(tt.attempt, 100*time.Millisecond, 5*time.Second); d < tt.min || d > tt.max {
				t.Fatalf("Wait(%d) = %v, want within [%v, %v]", tt.attempt, d, tt.min, tt.max)
			}
		}
	}
}

func TestStep_never_overflows(t *testing.T) {
	if got := backoff.Step(80, time.Hour, time.Duration(math.MaxInt64)); got != time.Duration(math.MaxInt64) {
		t.Errorf("Step(80, 1h, max) = %v, want the cap", got)
	}
	if got := backoff.Step(3, time.Second, 500*time.Millisecond); got != 500*time.Millisecond {
		t.Errorf("max below initial: %v, want 500ms", got)
	}
	if got := backoff.Wait(5, 0, 0); got != 0 {
		t.Errorf("zero policy: %v, want 0", got)
	}
}
