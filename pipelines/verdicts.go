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
// lanes move together each event is decoded and validated once rather than once per sink
// (docs/ARCHITECTURE.md, Validate once across lanes, and move together). A lane that finds a
// valid verdict skips validation and reads the storing lane's decoded message (a
// contract.Lease) if that lane still holds it, else decodes the record itself; a lane that
// reads no decoded message routes the record from its bytes (lane.routeVerdict). Every lane
// keeps its own consumer, offsets and sink batches: a lane that falls behind (its sink is
// down) only stops finding its records here and decodes and validates them itself, and a
// borrowed message lives only as long as the batches of the lanes that read it.
//
// Each partition has a ring of slots indexed by offset; a slot holds the offset (plus one),
// a hash of the record's value and contract, the event time and the lease. A lane looks its
// record up before decoding and stores it after a successful validation. Only valid verdicts
// are shared: an invalid event (rare) is validated again by each lane, so that no lane ever
// reads another lane's validation error, which may point into that lane's decoded message.
// Slots are written and read with atomics and never locked; a slot overwritten by a record
// a window further on, or torn between its words, just reads as a miss (a torn lease fails
// to borrow). The hash guards against a topic deleted and created again under the same name.
//
// Lanes pace each other so that they do move together (pace, waits): over a backlog the lane
// of the fastest sink would otherwise run past the ring at once and every lane would validate
// every event, and a lane that reaches a record only after the one that decoded it has
// written its batch finds the message gone. A lane waits before a batch while another live
// lane is more than half a window behind, or while a live decoding lane behind it has yet to
// process the batch; a lane that is further behind, or stalled (its sink is down, the
// partition moved to another instance), is not waited for, and a wait never lasts longer
// than patience.
type verdicts struct {
	seed     maphash.Seed
	window   int64
	lanes    int
	patience time.Duration
	// decodes[i] is set once lane i has started and reads decoded messages (not lane.blind);
	// startAt[i] is when it started (since() + 1; 0 before).
	decodes []atomic.Bool
	startAt []atomic.Int64
	epoch   time.Time // marks' clock: monotonic nanoseconds since epoch
	mu      sync.Mutex
	rings   map[verdictKey]*verdictRing
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
	// The storing lane's decoded message (contract.Lease), for other lanes to borrow while
	// that lane still holds it; nil when it was not decoded as binary.
	arena atomic.Pointer[contract.Arena]
	gen   atomic.Uint64
}

// verdict is what a lane finds in a slot.
type verdict struct {
	at    time.Time // the event time the storing lane found; zero for none
	lease contract.Lease
}

// newVerdicts returns a cache of window slots per partition, or nil for a pipeline with a
// single lane (nothing to share). Lanes wait at most patience for one another (pace).
func newVerdicts(lanes int, window int, patience time.Duration) *verdicts {
	if lanes < 2 {
		return nil
	}
	return &verdicts{seed: maphash.MakeSeed(), window: int64(max(window, 1024)), lanes: lanes, patience: patience,
		decodes: make([]atomic.Bool, lanes), startAt: make([]atomic.Int64, lanes), epoch: time.Now(), rings: map[verdictKey]*verdictRing{}}
}

// started records whether the lane that has just started reads decoded messages.
func (v *verdicts) started(lane int, decodes bool) {
	if v != nil {
		v.decodes[lane].Store(decodes)
		v.startAt[lane].Store(v.since() + 1)
	}
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

// valid reports whether a lane stored the record at off with this hash as valid, with the
// event time that lane found in it and a lease of its decoded message.
func (r *verdictRing) valid(off int64, h uint64) (verdict, bool) {
	s := &r.slots[off%int64(len(r.slots))]
	if s.off.Load() != off+1 || s.hash.Load() != h {
		return verdict{}, false
	}
	at := s.at.Load()
	l := contract.Lease{Arena: s.arena.Load(), Gen: s.gen.Load()}
	// A writer empties the slot before it changes anything: the same offset again after the
	// reads means they all belong to this record. (A lease torn anyway only fails to borrow:
	// Borrow checks the generation and the contract.)
	if s.off.Load() != off+1 {
		return verdict{}, false
	}
	v := verdict{lease: l}
	if at != 0 {
		v.at = time.Unix(0, at)
	}
	return v, true
}

// store records that the record at off with this hash is valid, with its event time and a
// lease of the storing lane's decoded message (the zero Lease for none).
func (r *verdictRing) store(off int64, h uint64, eventTime time.Time, l contract.Lease) {
	s := &r.slots[off%int64(len(r.slots))]
	at := int64(0)
	if !eventTime.IsZero() {
		at = eventTime.UnixNano()
	}
	// Empty the slot first, so that a reader never pairs the new hash with the old offset.
	s.off.Store(0)
	s.hash.Store(h)
	s.at.Store(at)
	s.arena.Store(l.Arena)
	s.gen.Store(l.Gen)
	s.off.Store(off + 1)
}

// pace waits, before lane processes a batch of offsets first to last, while another live
// lane is more than half a window behind first and within the window (so that it finds the
// verdicts lane is about to store), or while lane trails a live lane that decodes and has yet
// to process last (see waits), for at most patience or until ctx is done. It returns how long
// it waited. It also stops waiting when stop is closed (the pipeline's breaker tripped).
func (r *verdictRing) pace(ctx context.Context, stop <-chan struct{}, lane int, first, last int64) time.Duration {
	if !r.waits(lane, first, last) {
		return 0
	}
	start := time.Now()
	t := time.NewTimer(r.v.patience)
	defer t.Stop()
	for {
		moved := r.movedChan()
		// Look again once subscribed, so that a move just before is not missed.
		if !r.waits(lane, first, last) {
			return time.Since(start)
		}
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-stop:
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

// waits reports whether lane must wait before its batch of offsets first to last (pace).
//
// Lanes that decode trail the one furthest behind: a lane waits while a live decoding lane
// behind it (a lower mark; on a tie, a lower index) has yet to process last, within the
// window. That lane decodes and validates the batch first; the others then find its verdicts
// and borrow its decoded messages, which it holds until its sink has written them, so the
// slowest sink's lane does the work and the faster ones, which would wait for it anyway
// (half a window at most), reuse it. A blind lane waits until some live decoding lane has
// processed last (in a pipeline of blind lanes only, they trail each other like decoding
// ones). A lane that has started but not yet processed the partition counts as behind
// everything for patience after its start, so that over a backlog the fastest lane does
// not run a window ahead before the others begin. Each lane waits only on lanes behind it
// (lower marks, a lower index, or the half window of behind), so no two wait on each other,
// and never longer than patience on one batch.
func (r *verdictRing) waits(lane int, first, last int64) bool {
	if r.behind(lane, first) {
		return true
	}
	v := r.v
	anyDecodes := false
	for i := range v.decodes {
		anyDecodes = anyDecodes || v.decodes[i].Load()
	}
	ranked := func(i int) bool { return v.decodes[i].Load() || !anyDecodes }
	me := ranked(lane)
	self := r.marks[lane].next.Load()
	if self == 0 {
		self = first
	}
	now := v.since()
	trail, passed := false, false
	for i := range r.marks {
		if i == lane || !ranked(i) || v.startAt[i].Load() == 0 {
			continue
		}
		m := &r.marks[i]
		next := m.next.Load()
		if next == 0 {
			if now-v.startAt[i].Load() < int64(v.patience) && (!me || i < lane) {
				trail = true // it has just started: let it go first
			}
			continue
		}
		if last+1-next > v.window || now-m.at.Load() >= int64(v.patience) {
			continue // too far behind, or stalled
		}
		switch {
		case next > last:
			passed = true
		case !me || next < self || next == self && i < lane:
			trail = true
		}
	}
	if me {
		return trail
	}
	return trail && !passed
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
