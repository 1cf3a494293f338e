package contract

import (
	"sync"
	"sync/atomic"

	"buf.build/go/hyperpb"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// An Arena holds one binary-decoded message: the hyperpb arena it was parsed into, and how
// many Decoders hold it. The Decoder that parsed it holds it until its Release or Discard;
// another Decoder of the same contract may Borrow it while it is still held (Lease), so that
// a message decoded by one lane of a pipeline is read by the others instead of decoded again.
// The last holder to let go frees it for reuse. Arenas are recycled through a process-wide
// pool; a generation, bumped at every free, tells a Lease of a freed (or reused) arena apart.
type Arena struct {
	// state is gen<<refBits | refs.
	state  atomic.Uint64
	shared hyperpb.Shared
	// c and msg are written by the Decoder that takes the arena from the pool, before it
	// publishes a Lease, and read by a borrower only once it holds a reference.
	c   *Contract
	msg protoreflect.Message
}

const (
	refBits = 20
	refMask = 1<<refBits - 1
)

// A Lease names the message an Arena held when the Lease was taken (Decoder.Lease); the zero
// Lease names none. It stays safe to hand to Borrow after the message is freed: Borrow then
// reports false.
type Lease struct {
	Arena *Arena
	Gen   uint64
}

// arenas holds the arenas no Decoder is using (freed); an arena keeps its memory for the next
// parse, and the pool lets the garbage collector trim what a burst left.
var arenas = sync.Pool{New: func() any { return new(Arena) }}

// takeArena returns a free arena from the pool, held once (by the caller).
func takeArena() *Arena {
	a := arenas.Get().(*Arena)
	a.state.Add(1)
	return a
}

// borrow takes a reference to a's message if a still holds the message of generation gen.
func (a *Arena) borrow(gen uint64) bool {
	for {
		s := a.state.Load()
		if s>>refBits != gen || s&refMask == 0 {
			return false
		}
		if a.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// release drops one reference; the last one frees the arena's memory for reuse and puts it
// back in the pool under the next generation.
func (a *Arena) release() {
	s := a.state.Add(^uint64(0))
	if s&refMask != 0 {
		return
	}
	a.c, a.msg = nil, nil
	a.shared.Free()
	// Nobody holds the arena: a borrower of the old generation fails on refs == 0 until
	// this store, and on the generation after it.
	a.state.Store((s>>refBits + 1) << refBits)
	arenas.Put(a)
}

// Lease returns a Lease of the message the last Decode returned, for other Decoders of the
// contract to Borrow while this Decoder still holds it (until its next Release, or a Discard
// of that message). The zero Lease when that Decode failed, took no arena (JSON), or its
// message was discarded.
func (d *Decoder) Lease() Lease {
	if !d.last {
		return Lease{}
	}
	a := d.shared[len(d.shared)-1]
	if a.msg == nil {
		return Lease{} // the parse failed
	}
	return Lease{Arena: a, Gen: a.state.Load() >> refBits}
}

// Borrow returns the message of l if it is still alive and of this Decoder's contract,
// holding it as if this Decoder had decoded it: it stays valid until the next Release, or
// a Discard right after Borrow. It reports false, and holds nothing, otherwise.
//
// A borrowed message is read concurrently by the Decoders that hold it; none may mutate it
// (binary-decoded messages are read-only).
func (d *Decoder) Borrow(l Lease) (protoreflect.Message, bool) {
	d.last = false
	if l.Arena == nil || !l.Arena.borrow(l.Gen) {
		return nil, false
	}
	if l.Arena.c != d.c {
		l.Arena.release()
		return nil, false
	}
	d.shared = append(d.shared, l.Arena)
	d.last = true
	return l.Arena.msg, true
}
