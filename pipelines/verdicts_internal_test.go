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
	r.store(5, h, at)
	if got, ok := r.valid(5, h); !ok || !got.Equal(at) {
		t.Fatalf("stored verdict: %v %v, want valid at %v", got, ok, at)
	}
	if valid(5, r.hash([]byte("other"), ct1)) || valid(5, r.hash([]byte("payload"), ct2)) {
		t.Fatal("another value or contract at the same offset must miss")
	}
	if _, ok := v.ring("t", 1).valid(5, h); ok || valid(5+1024, h) {
		t.Fatal("another offset in the same slot, or another partition, must miss")
	}
	r.store(5+1024, h, time.Time{}) // a window further on overwrites the slot
	if valid(5, h) || !valid(5+1024, h) {
		t.Fatal("an overwritten slot must miss for its old offset")
	}
	if got, _ := r.valid(5+1024, h); !got.IsZero() {
		t.Fatalf("no event time stored, read %v", got)
	}
}

func TestVerdicts_pace(t *testing.T) {
	const patience = 200 * time.Millisecond
	v := newVerdicts(3, 1024, patience)
	r := v.ring("t", 0)
	ctx := context.Background()
	if w := r.pace(ctx, 0, 5000); w != 0 {
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
	if w := r.pace(ctx, 0, 5000); w <= 0 || w >= patience {
		t.Fatalf("waited %v, want until lane 1 came within half a ring (well below %v)", w, patience)
	}
	r.advance(2, 4000) // lane 2 stops there
	if w := r.pace(ctx, 0, 5000); w < patience || w > 10*patience {
		t.Fatalf("waited %v for a lane that does not move, want the patience %v", w, patience)
	}
	time.Sleep(patience)
	if r.behind(0, 5000) {
		t.Fatal("a lane that has not moved for the patience is still waited for")
	}
	cctx, cancel := context.WithCancel(ctx)
	r.advance(2, 4001) // live again
	cancel()
	if w := r.pace(cctx, 0, 5000); w >= patience {
		t.Fatalf("waited %v after the batch's context was canceled", w)
	}
}
