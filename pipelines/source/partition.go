package source

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/internal/backoff"
	"github.com/switchyard-dev/switchyard/internal/event"
)

// Redelivery backoff after a nack: doubling per consecutive nack of the partition, jittered.
const (
	nackBackoffMin = 100 * time.Millisecond
	nackBackoffMax = 5 * time.Second
)

// partition is the state of one assigned partition, from assignment until it is released.
//
// Records move pending (fetched, not emitted) -> inflight (emitted, not acked) -> acked. The
// emitter carves batches off pending; the tracker goroutine waits for the head of inflight and
// advances ackNext, the offset to commit.
type partition struct {
	s        *Source
	cl       pauser
	tp       event.TopicPartition
	seq      uint64             // distinguishes assignments of the same partition in message ids
	pauseArg map[string][]int32 // this partition, as Pause/ResumeFetchPartitions want it

	ctx    context.Context // parent of message contexts; canceled when released
	cancel context.CancelFunc

	notify      chan struct{} // wakes the tracker: a batch was emitted; capacity 1
	revokeCh    chan struct{} // closed when the partition starts being released
	killCh      chan struct{} // closed when the tracker must stop at once
	killOnce    sync.Once
	trackerDone chan struct{}
	released    chan struct{} // closed when the partition is dropped

	mu        sync.Mutex
	ready     bool // OnAssigned succeeded (or there is none) and not revoking
	hooked    bool // OnAssigned succeeded: OnRevoked is owed
	run       *hookRun
	revoking  bool // being released: nothing more is emitted or redelivered
	releasing bool // a release has claimed this partition
	lost      bool // lost: never commit
	paused    bool
	pending   fifo[[]*kgo.Record]
	pendingN  int
	inflight  fifo[*batch]
	inflightN int
	pendingB  int64 // bytes of pending records (recordBytes)
	inflightB int64 // bytes of inflight records
	ackNext   int64 // next offset to commit: last contiguous acked offset + 1, or -1
	ackEpoch  int32
	committed int64 // last committed offset, or -1
	nacks     int   // consecutive nacks

	firstFetched int64 // offset of the first record fetched, or -1
	nextFetch    int64 // offset after the last record fetched, or -1

	// The Tap (tap.go). tapped: a follower taking the leader's fetches. tapHold: the client's
	// fetching of the partition is paused for the tap, from attaching until detaching, or,
	// when it took records from the tap, until the poll loop has moved the client to
	// nextFetch; meanwhile the partition's own fetches may repeat records it took from the
	// tap, and those are dropped.
	tapped   bool
	tapHold  bool
	tapTook  bool        // took records from the tap since attaching: the client is behind
	tapLast  time.Time   // when the tap last brought records
	tapTimer *time.Timer // checks whether the leader is stuck

	// Owned by the lag loop (and drop, under Source.lagMu).
	base       int64 // group's committed offset at assignment; -1 unknown, -2 none
	stallMark  int64 // Committed at the last report that saw it move
	stallSince time.Time
	stalled    bool
	reported   bool // OnLag was called: the Released report is owed
	lagGone    bool // dropped: report nothing more
}

// batch is one emitted Batch with its current delivery.
type batch struct {
	Batch
	p       *partition
	msg     *message.Message
	cancel  context.CancelFunc // cancels msg's context
	attempt int
	bytes   int64 // recordBytes of Records, when the source has a byte budget
}

// pauser is the part of *kgo.Client that pauses and resumes fetching.
type pauser interface {
	PauseFetchPartitions(map[string][]int32) map[string][]int32
	ResumeFetchPartitions(map[string][]int32)
}

func (s *Source) newPartition(cl pauser, topic string, n int32, seq uint64, ready bool) *partition {
	p := &partition{
		s:           s,
		cl:          cl,
		tp:          event.TopicPartition{Topic: topic, Partition: n},
		seq:         seq,
		pauseArg:    map[string][]int32{topic: {n}},
		notify:      make(chan struct{}, 1),
		revokeCh:    make(chan struct{}),
		killCh:      make(chan struct{}),
		trackerDone: make(chan struct{}),
		released:    make(chan struct{}),
		ready:       ready,
		hooked:      ready, // without an OnAssigned hook there is nothing to wait for
		paused:      !ready,
		ackNext:     -1,
		committed:   -1,

		firstFetched: -1,
		nextFetch:    -1,
		base:         -1,
		stallMark:    -1,
	}
	p.ctx, p.cancel = context.WithCancel(s.base)
	return p
}

// addPending queues fetched records, pausing the partition at the in-flight limit, and returns
// the records it queued. It is called by the polling goroutine only.
func (p *partition) addPending(recs []*kgo.Record) []*kgo.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revoking {
		return nil
	}
	if p.tapHold && p.nextFetch >= 0 {
		// What the client fetches until the poll loop has moved it may repeat records taken
		// from the tap.
		if recs = from(recs, p.nextFetch); len(recs) == 0 {
			return nil
		}
	}
	p.pushLocked(recs)
	if !p.paused && p.fullLocked() {
		p.paused = true
		p.cl.PauseFetchPartitions(p.pauseArg)
	}
	return recs
}

// from returns the records of recs (in offset order) at or after offset off.
func from(recs []*kgo.Record, off int64) []*kgo.Record {
	i, _ := slices.BinarySearchFunc(recs, off, func(r *kgo.Record, off int64) int { return cmp.Compare(r.Offset, off) })
	return recs[i:]
}

// pushLocked queues records that follow the partition's position.
func (p *partition) pushLocked(recs []*kgo.Record) {
	p.pending.push(recs)
	p.pendingN += len(recs)
	if p.s.cfg.MaxInFlightBytes > 0 {
		p.pendingB += p.s.fetchedBytes(recs)
	}
	if p.firstFetched < 0 {
		p.firstFetched = recs[0].Offset
	}
	p.nextFetch = recs[len(recs)-1].Offset + 1
}

// fetchedBytes is what the in-flight byte budget counts for fetched records: keys and
// values, and RecordOverhead each.
func (s *Source) fetchedBytes(recs []*kgo.Record) int64 {
	n := int64(len(recs)) * RecordOverhead
	for _, r := range recs {
		n += int64(len(r.Key) + len(r.Value))
	}
	return n
}

// decodedBytes is what the budget counts besides, once recs are handed out: the decoded
// messages, DecodedFactor times the values.
func (s *Source) decodedBytes(recs []*kgo.Record) int64 {
	if s.cfg.DecodedFactor <= 0 {
		return 0
	}
	var n int64
	for _, r := range recs {
		n += int64(len(r.Value))
	}
	return n * int64(s.cfg.DecodedFactor)
}

// bytesShareLocked is the partition's share of MaxInFlightBytes, or 0 without a budget.
func (p *partition) bytesShareLocked() int64 {
	b := p.s.cfg.MaxInFlightBytes
	if b <= 0 {
		return 0
	}
	return max(b/int64(max(1, p.s.nparts.Load())), MinPartitionBytes)
}

// overBytesLocked reports whether the partition holds its share of the byte budget.
func (p *partition) overBytesLocked() bool {
	share := p.bytesShareLocked()
	return share > 0 && p.pendingB+p.inflightB >= share
}

// underBytesLocked reports whether the partition holds at most half its byte share.
func (p *partition) underBytesLocked() bool {
	share := p.bytesShareLocked()
	return share == 0 || p.pendingB+p.inflightB <= share/2
}

// maybeResumeLocked resumes fetching a paused partition that is ready and below the limit.
// Pausing and resuming happen under p.mu so the client sees them in the order we decide them.
func (p *partition) maybeResumeLocked() {
	if p.paused && p.ready && !p.revoking && !p.tapHold && p.pendingN+p.inflightN <= p.s.resumeAt && p.underBytesLocked() {
		p.paused = false
		p.cl.ResumeFetchPartitions(p.pauseArg)
	}
}

// nextBatch carves the next batch off pending, if the partition is ready and under its limit,
// and moves it to inflight. It is called by the emitter only.
func (p *partition) nextBatch() *batch {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ready || p.revoking || p.pendingN == 0 {
		return nil
	}
	room := p.s.cfg.MaxInFlight - p.inflightN
	if room <= 0 || p.s.cfg.ExternalCommit && p.inflightN > 0 {
		return nil // ExternalCommit: one batch at a time, each starting at the committed offset
	}
	// Records handed out are decoded and held until their sink wrote them: hand out no more
	// once those reach the partition's byte share (a fetched record batch can hold more
	// records than the share, and the broker returns a first batch whole). The first batch
	// always goes, so that a share smaller than one batch still moves.
	if share := p.bytesShareLocked(); share > 0 && p.inflightN > 0 && p.inflightB >= share {
		return nil
	}
	run := p.pending.peek()
	n := min(len(run), p.s.cfg.MaxBatch, room)
	if n == len(run) {
		p.pending.pop()
	} else {
		p.pending.setHead(run[n:])
	}
	p.pendingN -= n
	p.inflightN += n
	b := &batch{Batch: Batch{Topic: p.tp.Topic, Partition: p.tp.Partition, Records: run[:n:n], p: p}, p: p}
	if p.s.cfg.MaxInFlightBytes > 0 {
		fetched := p.s.fetchedBytes(b.Records)
		b.bytes = fetched + p.s.decodedBytes(b.Records)
		p.pendingB -= fetched
	}
	p.inflightB += b.bytes
	p.deliverLocked(b)
	p.inflight.push(b)
	select {
	case p.notify <- struct{}{}:
	default:
	}
	return b
}

// deliverLocked gives b a new message for its next delivery.
func (p *partition) deliverLocked(b *batch) {
	ctx, cancel := context.WithCancel(p.ctx)
	b.cancel = cancel
	b.msg = message.NewMessage(b.id(), nil)
	b.msg.SetContext(&msgCtx{Context: ctx, b: &b.Batch, attempt: b.attempt + 1})
}

// id is the message UUID, for logs: topic/partition/first offset.assignment[#attempt].
func (b *batch) id() string {
	var buf [128]byte
	id := append(buf[:0], b.Topic...)
	id = append(id, '/')
	id = strconv.AppendInt(id, int64(b.Partition), 10)
	id = append(id, '/')
	id = strconv.AppendInt(id, b.Records[0].Offset, 10)
	id = append(id, '.')
	id = strconv.AppendUint(id, b.p.seq, 10)
	if b.attempt > 0 {
		id = append(id, '#')
		id = strconv.AppendInt(id, int64(b.attempt), 10)
	}
	return string(id)
}

// track waits for the acks of the partition's batches in emission order, advancing the
// committable offset and redelivering nacked batches. It returns when the partition is being
// released and nothing more can be acked (inflight is empty or its head was nacked), or when
// killed.
func (p *partition) track() {
	defer p.s.wg.Done()
	defer close(p.trackerDone)
	revokeCh := p.revokeCh
	for {
		p.mu.Lock()
		var head *batch
		if p.inflight.len() > 0 {
			head = p.inflight.peek()
		}
		revoking := p.revoking
		var msg *message.Message
		if head != nil {
			msg = head.msg
		}
		p.mu.Unlock()

		if head == nil {
			if revoking {
				return
			}
			select {
			case <-p.notify:
			case <-revokeCh:
				revokeCh = nil
			case <-p.killCh:
				return
			}
			continue
		}
		select {
		case <-msg.Acked():
			p.acked(head)
		case <-msg.Nacked():
			if !p.redeliver(head) {
				return
			}
		case <-revokeCh:
			revokeCh = nil
		case <-p.killCh:
			return
		}
	}
}

// acked retires the head batch.
func (p *partition) acked(head *batch) {
	head.cancel()
	last := head.Records[len(head.Records)-1]
	p.mu.Lock()
	p.inflight.pop()
	p.inflightN -= len(head.Records)
	p.inflightB -= head.bytes
	p.ackNext = last.Offset + 1
	p.ackEpoch = last.LeaderEpoch
	p.nacks = 0
	p.maybeResumeLocked()
	p.mu.Unlock()
	p.s.wakeEmitter()
}

// undeliver takes back b, the batch nextBatch just carved, when it could not be handed to the
// reader because the partition is being revoked or the source is closing. Its records were
// never processed, so they are neither in flight nor unfinished: the partition's next owner
// consumes them again from the committed offset, as it does the pending ones. Nacking the
// message wakes a tracker waiting on it; it redelivers nothing once revoking or closing.
func (p *partition) undeliver(b *batch) {
	p.mu.Lock()
	if n := len(p.inflight.items); n > p.inflight.head && p.inflight.items[n-1] == b {
		p.inflight.items[n-1] = nil
		p.inflight.items = p.inflight.items[:n-1]
		if p.inflight.len() == 0 {
			p.inflight.reset()
		}
		p.inflightN -= len(b.Records)
		p.inflightB -= b.bytes
	}
	p.mu.Unlock()
	b.msg.Nack()
}

// redeliver sends the nacked head batch again after a backoff. It reports false if the
// partition is being released or the source is closing, in which case the batch stays unacked.
func (p *partition) redeliver(head *batch) bool {
	head.cancel()
	p.mu.Lock()
	if p.revoking || p.s.isClosing() {
		p.mu.Unlock()
		return false
	}
	p.nacks++
	wait := nackBackoff(p.nacks)
	p.mu.Unlock()

	t := time.NewTimer(wait)
	select {
	case <-t.C:
	case <-p.revokeCh:
		t.Stop()
		return false
	case <-p.killCh:
		t.Stop()
		return false
	}

	p.mu.Lock()
	if p.revoking {
		p.mu.Unlock()
		return false
	}
	// Redeliver, with the head, every later batch of the partition that was nacked too: a
	// sink that was down nacks them all, and handing them back together lets the engine
	// write them in full batches instead of one small batch per backoff.
	var msgs []*message.Message
	for i := p.inflight.head; i < len(p.inflight.items); i++ {
		b := p.inflight.items[i]
		if b != head && !nacked(b.msg) {
			continue
		}
		if b != head {
			b.cancel()
		}
		b.attempt++
		p.deliverLocked(b)
		msgs = append(msgs, b.msg)
	}
	p.mu.Unlock()

	for i, msg := range msgs {
		select {
		case p.s.out <- msg:
			continue
		case <-p.revokeCh:
		case <-p.s.closing:
		}
		for _, m := range msgs[i:] {
			m.Nack()
		}
		return false
	}
	return true
}

// nacked reports whether msg has been nacked.
func nacked(msg *message.Message) bool {
	select {
	case <-msg.Nacked():
		return true
	default:
		return false
	}
}

// kill stops the tracker without waiting for more acks.
func (p *partition) kill() { p.killOnce.Do(func() { close(p.killCh) }) }

// nackBackoff is the wait before the n-th consecutive redelivery (n >= 1): the daemon's one
// backoff (backoff.Wait) with the source's bounds.
func nackBackoff(n int) time.Duration { return backoff.Wait(n, nackBackoffMin, nackBackoffMax) }

// fifo is a slice-backed queue that reuses its array.
type fifo[T any] struct {
	items []T
	head  int
}

func (q *fifo[T]) len() int { return len(q.items) - q.head }

func (q *fifo[T]) push(v T) {
	if q.head > 0 && len(q.items) == cap(q.items) && q.head >= len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
	q.items = append(q.items, v)
}

// peek returns the head; the queue must not be empty.
func (q *fifo[T]) peek() T { return q.items[q.head] }

func (q *fifo[T]) setHead(v T) { q.items[q.head] = v }

func (q *fifo[T]) pop() T {
	v := q.items[q.head]
	var zero T
	q.items[q.head] = zero
	q.head++
	if q.head == len(q.items) {
		q.items = q.items[:0]
		q.head = 0
	}
	return v
}

func (q *fifo[T]) reset() {
	clear(q.items)
	q.items = q.items[:0]
	q.head = 0
}
