package pipelines

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/switchyard-dev/switchyard/contract"
)

// verdicts shares "this record is valid" between the lanes of one pipeline, so that while the
// lanes move together each event is validated once rather than once per sink
// (docs/ARCHITECTURE.md, Validate once across lanes). Validation is most of a lane's CPU
// (protovalidate: about 5.5 µs of a BidPlaced), decoding a small part (hyperpb: about 0.5 µs),
// so lanes still decode for themselves and keep their own consumers, offsets and sink
// batches: a lane that falls behind (its sink is down) only stops finding its records here
// and validates them itself, and nothing it holds is tied to another lane.
//
// Each partition has a ring of slots indexed by offset; a slot holds the offset (plus one)
// and a hash of the record's value and contract. A lane looks its record up before
// validating and stores it after a successful validation. Only valid verdicts are shared:
// an invalid event (rare) is validated again by each lane, so that no lane ever reads
// another lane's validation error, which may point into that lane's decoded message.
// Slots are written and read with atomics and never locked; a slot overwritten by a record
// a window further on, or torn between its two words, just reads as a miss. The hash
// guards against a topic deleted and created again under the same name.
type verdicts struct {
	seed   maphash.Seed
	window int64
	mu     sync.Mutex
	rings  map[verdictKey]*verdictRing
}

type verdictKey struct {
	topic     string
	partition int32
}

type verdictRing struct {
	seed  maphash.Seed
	slots []verdictSlot
}

type verdictSlot struct {
	off  atomic.Int64 // offset + 1; 0 when empty
	hash atomic.Uint64
}

// newVerdicts returns a cache of window slots per partition, or nil for a pipeline with a
// single lane (nothing to share).
func newVerdicts(lanes int, window int) *verdicts {
	if lanes < 2 {
		return nil
	}
	return &verdicts{seed: maphash.MakeSeed(), window: int64(max(window, 1024)), rings: map[verdictKey]*verdictRing{}}
}

// ring returns the partition's ring, created on first use; nil on a nil cache.
func (v *verdicts) ring(topic string, partition int32) *verdictRing {
	if v == nil {
		return nil
	}
	k := verdictKey{topic, partition}
	v.mu.Lock()
	defer v.mu.Unlock()
	r := v.rings[k]
	if r == nil {
		r = &verdictRing{seed: v.seed, slots: make([]verdictSlot, v.window)}
		v.rings[k] = r
	}
	return r
}

func (r *verdictRing) hash(value []byte, ct *contract.Contract) uint64 {
	return maphash.Bytes(r.seed, value) ^ maphash.Comparable(r.seed, ct)
}

// valid reports whether a lane stored the record at off with this hash as valid.
func (r *verdictRing) valid(off int64, h uint64) bool {
	s := &r.slots[off%int64(len(r.slots))]
	return s.off.Load() == off+1 && s.hash.Load() == h
}

// store records that the record at off with this hash is valid.
func (r *verdictRing) store(off int64, h uint64) {
	s := &r.slots[off%int64(len(r.slots))]
	// Empty the slot first, so that a reader never pairs the new hash with the old offset.
	s.off.Store(0)
	s.hash.Store(h)
	s.off.Store(off + 1)
}
