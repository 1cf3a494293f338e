package pipelines

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/contract"
)

func TestVerdicts_ring(t *testing.T) {
	if newVerdicts(1, 10, time.Second) != nil {
		t.Fatal("a single lane has nothing to share")
	}
	v := newVerdicts(2, 1024, time.Second)
	r := v.ring("t", 0)
	if r != v.ring("t", 0) || r == v.ring("t", 1) {
		t.Fatal("one ring per partition")
	}
	ct1, ct2 := &contract.Contract{}, &contract.Contract{}
	h := r.hash([]byte("payload"), ct1)
	valid := func(off int64, h uint64) bool {
		_, ok := r.valid(off, h)
		return ok
	}
	if valid(5, h) {
		t.Fatal("empty slot reads valid")
	}
	at := time.Unix(1700000000, 123)
	lease := contract.Lease{Arena: new(contract.Arena), Gen: 7}
	r.store(5, h, at, lease)
	if got, ok := r.valid(5, h); !ok || !got.at.Equal(at) || got.lease != lease {
		t.Fatalf("stored verdict: %+v %v, want valid at %v with %+v", got, ok, at, lease)
	}
	if valid(5, r.hash([]byte("other"), ct1)) || valid(5, r.hash([]byte("payload"), ct2)) {
		t.Fatal("another value or contract at the same offset must miss")
	}
	if _, ok := v.ring("t", 1).valid(5, h); ok || valid(5+1024, h) {
		t.Fatal("another offset in the same slot, or another partition, must miss")
	}
	r.store(5+1024, h, time.Time{}, contract.Lease{}) // a window further on overwrites the slot
	if valid(5, h) || !valid(5+1024, h) {
		t.Fatal("an overwritten slot must miss for its old offset")
	}
	if got, _ := r.valid(5+1024, h); !got.at.IsZero() || got.lease.Arena != nil {
		t.Fatalf("no event time or lease stored, read %+v", got)
	}
}

func TestVerdicts_pace(t *testing.T) {
	const patience = 200 * time.Millisecond
	v := newVerdicts(3, 1024, patience)
	r := v.ring("t", 0)
	ctx := context.Background()
	if w := r.pace(ctx, nil, 0, 5000, 5000); w != 0 {
		t.Fatalf("waited %v with no other lane on the partition", w)
	}
	r.advance(1, 4000) // lane 1 is 1000 behind: more than half the ring, within it
	r.advance(1, 3000) // a redelivered batch never moves a mark back
	if !r.behind(0, 5000) || r.behind(0, 4400) || r.behind(1, 4000) {
		t.Fatal("only a lane between half a ring and a ring behind is waited for")
	}
	if r.behind(0, 4000+1025) {
		t.Fatal("a lane more than a ring behind is not waited for")
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		r.advance(1, 4600)
	}()
	if w := r.pace(ctx, nil, 0, 5000, 5000); w <= 0 || w >= patience {
		t.Fatalf("waited %v, want until lane 1 came within half a ring (well below %v)", w, patience)
	}
	r.advance(2, 4000) // lane 2 stops there
	if w := r.pace(ctx, nil, 0, 5000, 5000); w < patience || w > 10*patience {
		t.Fatalf("waited %v for a lane that does not move, want the patience %v", w, patience)
	}
	time.Sleep(patience)
	if r.behind(0, 5000) {
		t.Fatal("a lane that has not moved for the patience is still waited for")
	}
	cctx, cancel := context.WithCancel(ctx)
	r.advance(2, 4001) // live again
	cancel()
	if w := r.pace(cctx, nil, 0, 5000, 5000); w >= patience {
		t.Fatalf("waited %v after the batch's context was canceled", w)
	}
	stop := make(chan struct{})
	close(stop) // the pipeline's breaker tripped
	r.advance(2, 4002)
	if !r.waits(0, 5000, 5000) {
		t.Fatal("lane 2 is live and behind: the batch would wait")
	}
	if w := r.pace(ctx, stop, 0, 5000, 5000); w >= patience {
		t.Fatalf("waited %v after stop was closed", w)
	}
}

// Lanes trail the decoding lane furthest behind: a lane's batch waits until a live decoding
// lane with a lower mark has processed it (so its verdicts and decoded messages are there),
// and a blind lane's until any live decoding lane has, unless that lane is more than a ring
// behind or has stalled. A lane just started counts as behind everything for the patience.
func TestVerdicts_lanes_trail_the_one_behind(t *testing.T) {
	const patience = 200 * time.Millisecond
	v := newVerdicts(3, 1024, patience)
	v.started(0, false) // a blind first lane
	v.started(1, true)
	v.started(2, true)
	r := v.ring("t", 0)
	single := newVerdicts(2, 1024, patience)
	single.started(0, false)
	single.started(1, false)
	if sr := single.ring("t", 0); sr.waits(0, 0, 99) || !sr.waits(1, 0, 99) {
		t.Fatal("blind lanes only: the second trails the first like decoding lanes do")
	}
	if !r.waits(0, 100, 199) || !r.waits(2, 100, 199) || r.waits(1, 100, 199) {
		t.Fatal("while the lanes are new, the blind lane and lane 2 wait for lane 1 to go first")
	}
	r.advance(1, 150)
	r.advance(2, 150)
	if r.waits(1, 150, 249) || !r.waits(2, 150, 249) {
		t.Fatal("of two decoding lanes at one mark, the lower index goes first and the other waits for it")
	}
	if !r.waits(0, 100, 199) {
		t.Fatal("a blind lane's batch past every decoding lane's mark must wait")
	}
	r.advance(1, 250)
	if r.waits(0, 150, 249) {
		t.Fatal("a blind lane waits only until one decoding lane has processed its batch")
	}
	if !r.waits(1, 250, 349) || r.waits(2, 150, 249) {
		t.Fatal("lane 2, now behind, must go first and lane 1 wait for it")
	}
	if r.waits(0, 250+1025, 260+1025) {
		t.Fatal("waited on decoding lanes more than a ring behind the batch")
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		r.advance(2, 350)
	}()
	if w := r.pace(context.Background(), nil, 1, 250, 349); w <= 0 || w >= patience {
		t.Fatalf("waited %v, want until lane 2 had processed offset 349 (well below %v)", w, patience)
	}
	time.Sleep(patience)
	if r.waits(0, 350, 449) || r.waits(1, 350, 449) {
		t.Fatal("lanes that have not moved for the patience are still waited for")
	}
}
