package pipelines

import (
	"testing"

	"github.com/switchyard-dev/switchyard/contract"
)

func TestVerdicts_ring(t *testing.T) {
	if newVerdicts(1, 10) != nil {
		t.Fatal("a single lane has nothing to share")
	}
	v := newVerdicts(2, 1024)
	r := v.ring("t", 0)
	if r != v.ring("t", 0) || r == v.ring("t", 1) {
		t.Fatal("one ring per partition")
	}
	ct1, ct2 := &contract.Contract{}, &contract.Contract{}
	h := r.hash([]byte("payload"), ct1)
	if r.valid(5, h) {
		t.Fatal("empty slot reads valid")
	}
	r.store(5, h)
	if !r.valid(5, h) {
		t.Fatal("stored verdict not found")
	}
	if r.valid(5, r.hash([]byte("other"), ct1)) || r.valid(5, r.hash([]byte("payload"), ct2)) {
		t.Fatal("another value or contract at the same offset must miss")
	}
	if r.valid(5+1024, h) || v.ring("t", 1).valid(5, h) {
		t.Fatal("another offset in the same slot, or another partition, must miss")
	}
	r.store(5+1024, h) // a window further on overwrites the slot
	if r.valid(5, h) || !r.valid(5+1024, h) {
		t.Fatal("an overwritten slot must miss for its old offset")
	}
}
