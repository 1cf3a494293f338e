// Package backoff is the one retry backoff of the daemon: the sink runner's write retries,
// transactional batches, lanes whose sink failed to start and the source's redeliveries
// after a nack all wait with Wait.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Wait returns the wait before retry number attempt (1 for the first retry): initial doubled
// per attempt, capped at max, with "equal jitter": half of that step is fixed and the other
// half random, so the wait is within [step/2, step]. The fixed half keeps retries from
// hammering a struggling server; the random half spreads the retries of many goroutines
// (lanes, partitions) that failed together. An attempt below 1 counts as 1; a max below
// initial caps at max. Wait is goroutine-safe.
func Wait(attempt int, initial, max time.Duration) time.Duration {
	d := Step(attempt, initial, max)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// Step is the unjittered wait of Wait: initial doubled attempt-1 times, capped at max.
func Step(attempt int, initial, max time.Duration) time.Duration {
	d := initial
	for i := 1; i < attempt && d > 0 && d < max; i++ {
		d *= 2 // overflows to a negative value, caught below
	}
	if d <= 0 || d > max {
		d = max
	}
	return d
}
