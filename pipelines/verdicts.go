package pipelines

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-dev/switchyard/contract"
)

// verdicts shares "this record is valid" between the lanes of one pipeline, so that while the
// lanes move together each event is validated once rather than once per sink
// (docs/ARCHITECTURE.md, Validate once across lanes, and move together). Validation is most
// of a lane's CPU (protovalidate: about 5.5 µs of a BidPlaced), decoding a small part
// (hyperpb: about 0.5 µs), so lanes whose sinks read fields still decode for themselves
// (a lane that reads no decoded message routes a valid verdict from the record's bytes:
// lane.routeVerdict), and every lane keeps its own consumer, offsets and sink batches: a lane
// that falls behind (its sink is down) only stops finding its records here and validates
// them itself, and nothing it holds is tied to another lane.
//
// Each partition has a ring of slots indexed by offset; a slot holds the offset (plus one)
// and a hash of the record's value and contract. A lane looks its record up before
// validating and stores it after a successful validation. Only valid verdicts are shared:
// an invalid event (rare) is validated again by each lane, so that no lane ever reads
// another lane's validation error, which may point into that lane's decoded message.
// Slots are written and read with atomics and never locked; a slot overwritten by a record
// a window further on, or torn between its two words, just reads as a miss. The hash
// guards against a topic deleted and created again under the same name.
//
// Lanes pace each other so that they do move together (pace): over a backlog the lane of the
// fastest sink would otherwise run past the ring at once and every lane would validate every
// event. A lane waits before a batch while another lane that is live (it advanced on the
// partition within patience) is more than half a window behind but still within the window;
// a lane that is further behind, or stalled (its sink is down, the partition moved to
// another instance), is not waited for, and a wait never lasts longer than patience.
type verdicts struct {
	seed     maphash.Seed
	window   int64
	lanes    int
	patience time.Duration
	epoch    time.Time // marks' clock: monotonic nanoseconds since epoch
	mu       sync.Mutex
	rings    map[verdictKey]*verdictRing
}

type verdictKey struct {
	topic     string
	partition int32
}

type verdictRing struct {
	v     *verdicts
	seed  maphash.Seed
	slots []verdictSlot
	marks []laneMark // by lane index

	mu    sync.Mutex
	moved chan struct{} // closed when a mark moves, for lanes waiting in pace; nil when none waits
}

// laneMark is how far one lane has processed a partition.
type laneMark struct {
	next atomic.Int64 // offset after the last record processed; 0 before the first
	at   atomic.Int64 // when next last moved (verdicts.since)
}

type verdictSlot struct {
	off  atomic.Int64 // offset + 1; 0 when empty
	hash atomic.Uint64
	at   atomic.Int64 // the event time found by the lane that stored it (Unix nanoseconds, 0 for none)
}

// newVerdicts returns a cache of window slots per partition, or nil for a pipeline with a
// single lane (nothing to share). Lanes wait at most patience for one another (pace).
func newVerdicts(lanes int, window int, patience time.Duration) *verdicts {
	if lanes < 2 {
		return nil
	}
	return &verdicts{seed: maphash.MakeSeed(), window: int64(max(window, 1024)), lanes: lanes, patience: patience,
		epoch: time.Now(), rings: map[verdictKey]*verdictRing{}}
}

func (v *verdicts) since() int64 { return int64(time.Since(v.epoch)) }

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
		r = &verdictRing{v: v, seed: v.seed, slots: make([]verdictSlot, v.window), marks: make([]laneMark, v.lanes)}
		v.rings[k] = r
	}
	return r
}

func (r *verdictRing) hash(value []byte, ct *contract.Contract) uint64 {
	return maphash.Bytes(r.seed, value) ^ maphash.Comparable(r.seed, ct)
}

// valid reports whether a lane stored the record at off with this hash as valid, and the
// event time that lane found in it.
func (r *verdictRing) valid(off int64, h uint64) (time.Time, bool) {
	s := &r.slots[off%int64(len(r.slots))]
	if s.off.Load() != off+1 || s.hash.Load() != h {
		return time.Time{}, false
	}
	at := s.at.Load()
	// A writer empties the slot before it changes anything: the same offset again after the
	// reads means they all belong to this record.
	if s.off.Load() != off+1 {
		return time.Time{}, false
	}
	if at == 0 {
		return time.Time{}, true
	}
	return time.Unix(0, at), true
}

// store records that the record at off with this hash is valid, with its event time.
func (r *verdictRing) store(off int64, h uint64, eventTime time.Time) {
	s := &r.slots[off%int64(len(r.slots))]
	at := int64(0)
	if !eventTime.IsZero() {
		at = eventTime.UnixNano()
	}
	// Empty the slot first, so that a reader never pairs the new hash with the old offset.
	s.off.Store(0)
	s.hash.Store(h)
	s.at.Store(at)
	s.off.Store(off + 1)
}

// pace waits, before lane processes a batch starting at first, while another live lane is
// more than half a window behind first and within the window (so that it finds the verdicts
// lane is about to store), for at most patience or until ctx is done. The lane furthest
// behind never waits, so lanes cannot wait on each other in a circle. It returns how long
// it waited.
func (r *verdictRing) pace(ctx context.Context, lane int, first int64) time.Duration {
	if !r.behind(lane, first) {
		return 0
	}
	start := time.Now()
	t := time.NewTimer(r.v.patience)
	defer t.Stop()
	for {
		moved := r.movedChan()
		// Look again once subscribed, so that a move just before is not missed.
		if !r.behind(lane, first) {
			return time.Since(start)
		}
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-t.C:
			return time.Since(start)
		case <-moved:
		}
	}
}

// movedChan returns the channel that the next move of a mark closes.
func (r *verdictRing) movedChan() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.moved == nil {
		r.moved = make(chan struct{})
	}
	return r.moved
}

// behind reports whether a live lane other than lane is between half a window and a window
// behind first.
func (r *verdictRing) behind(lane int, first int64) bool {
	now := r.v.since()
	for i := range r.marks {
		m := &r.marks[i]
		next := m.next.Load()
		if i == lane || next == 0 {
			continue
		}
		lead := first - next
		if lead > r.v.window/2 && lead <= r.v.window && now-m.at.Load() < int64(r.v.patience) {
			return true
		}
	}
	return false
}

// advance records that lane has processed the partition up to next (exclusive).
func (r *verdictRing) advance(lane int, next int64) {
	m := &r.marks[lane]
	for {
		cur := m.next.Load()
		if next <= cur {
			return
		}
		if m.next.CompareAndSwap(cur, next) {
			m.at.Store(r.v.since())
			r.mu.Lock()
			if r.moved != nil {
				close(r.moved)
				r.moved = nil
			}
			r.mu.Unlock()
			return
		}
	}
}
