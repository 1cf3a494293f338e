package source

import (
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Tap lets the Sources of one pipeline's lanes fetch each record once while they move
// together. Each Source stays a consumer group of its own, with its own assignment, offsets,
// limits and commits; only fetching is shared. On a partition that several of the tap's
// Sources own, one of them leads (the lowest Config.TapRank): it fetches, and every record it
// fetches is also offered to the others. A follower takes the offer while it is attached: it
// attached when its own fetching had reached the leader's position (within MaxInFlight records
// ahead of it), and then paused its own fetching of the partition. It takes the records past
// its own position, so it sees every record once and in order, from whichever fetch brought
// it first.
//
// A follower detaches, and fetches for itself again from where it is, when
//   - an offer finds it holding its limits (MaxInFlight records or its byte share) in records
//     the leader has acked: its sink is slower than the leader's, which does not wait for it
//     (like its own fetching, it takes one fetch past its limits, not more);
//   - the leader has been paused (at its own limits, or not ready) for the patience while the
//     follower could take more: the leader's sink is slow or down;
//   - the leader changes: it was released, or a Source of lower rank joined.
//
// A follower's records are the leader's *kgo.Record values, shared read-only; nothing is
// copied. Nothing about commits changes: each Source commits the acked prefix of its own
// batches, so a crash loses nothing and a restarted lane resumes from its own offsets.
type Tap struct {
	patience time.Duration

	mu    sync.Mutex
	parts map[tpKey]*tapPart
}

// NewTap returns a Tap whose followers detach after the leader has been paused for patience.
func NewTap(patience time.Duration) *Tap {
	return &Tap{patience: max(patience, 100*time.Millisecond), parts: make(map[tpKey]*tapPart)}
}

// tapPart is the tap of one partition. Lock order: tapPart.mu, then one partition.mu at a
// time; no partition.mu is held while taking tapPart.mu.
type tapPart struct {
	mu      sync.Mutex
	leader  *partition
	next    int64 // the leader's nextFetch after its last offer; -1 before its first
	starved bool  // followers detached because the leader was paused; cleared by its next fetch
	members []*partition
}

func (t *Tap) part(key tpKey) *tapPart {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp := t.parts[key]
	if tp == nil {
		tp = &tapPart{next: -1}
		t.parts[key] = tp
	}
	return tp
}

// join adds p, just assigned to one of the tap's Sources.
func (t *Tap) join(p *partition) {
	tp := t.part(tpKey{p.tp.Topic, p.tp.Partition})
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.members = append(tp.members, p)
	if p.s.cfg.TapFollowOnly {
		return
	}
	if tp.leader == nil || p.s.cfg.TapRank < tp.leader.s.cfg.TapRank {
		tp.leadLocked(p)
	}
}

// leave removes p, being released.
func (t *Tap) leave(p *partition) {
	tp := t.part(tpKey{p.tp.Topic, p.tp.Partition})
	tp.mu.Lock()
	defer tp.mu.Unlock()
	i := slices.Index(tp.members, p)
	if i < 0 {
		return
	}
	tp.members = slices.Delete(tp.members, i, i+1)
	p.detach(false)
	if tp.leader != p {
		return
	}
	tp.leader = nil
	var best *partition
	for _, m := range tp.members {
		if !m.s.cfg.TapFollowOnly && (best == nil || m.s.cfg.TapRank < best.s.cfg.TapRank) {
			best = m
		}
	}
	if best != nil {
		tp.leadLocked(best)
	}
}

// leadLocked makes p the leader. Every member detaches: the followers of the former leader
// fetch for themselves until they reach p's position, and p, if it was a follower, fetches
// again.
func (tp *tapPart) leadLocked(p *partition) {
	for _, m := range tp.members {
		m.detach(true)
	}
	tp.leader, tp.starved = p, false
	p.mu.Lock()
	tp.next = p.nextFetch
	p.mu.Unlock()
}

// fetched is called with the records p accepted from its own fetch: the leader offers them
// to the members, a follower tries to attach.
func (t *Tap) fetched(p *partition, recs []*kgo.Record) {
	tp := t.part(tpKey{p.tp.Topic, p.tp.Partition})
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.leader != p {
		tp.attachLocked(t, p)
		return
	}
	at := tp.next
	tp.next = recs[len(recs)-1].Offset + 1
	tp.starved = false
	if at >= 0 && recs[0].Offset < at {
		// The leader's position went back (an offset reset): the members' positions are not
		// comparable with it any more.
		for _, m := range tp.members {
			m.detach(true)
		}
		return
	}
	p.mu.Lock()
	acked := p.ackNext
	p.mu.Unlock()
	now := time.Now()
	for _, m := range tp.members {
		if m != p {
			m.offer(recs, at, acked, now)
		}
	}
}

// attachLocked attaches follower f if its position is at the leader's or at most MaxInFlight
// records ahead of it. A follower at its limits may attach: it takes nothing until the leader
// has passed its position, and what it then takes the leader holds too.
func (tp *tapPart) attachLocked(t *Tap, f *partition) {
	if tp.leader == nil || tp.next < 0 || tp.starved {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tapped || f.tapHold || !f.ready || f.revoking || f.nextFetch < tp.next ||
		f.nextFetch-tp.next > int64(f.s.cfg.MaxInFlight) {
		return
	}
	f.tapped, f.tapHold, f.tapTook = true, true, false
	if !f.paused {
		f.paused = true
		f.cl.PauseFetchPartitions(f.pauseArg)
	}
	f.tapLast = time.Now()
	if f.tapTimer == nil {
		f.tapTimer = time.AfterFunc(t.patience, func() { tp.checkStarved(t, f) })
	} else {
		f.tapTimer.Reset(t.patience)
	}
}

// checkStarved detaches follower f when the leader has been paused while f went the patience
// without an offer it could take.
func (tp *tapPart) checkStarved(t *Tap, f *partition) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	l := tp.leader
	if l == nil || l == f {
		return
	}
	l.mu.Lock()
	stuck := l.paused
	l.mu.Unlock()
	f.mu.Lock()
	if !f.tapped {
		f.mu.Unlock()
		return
	}
	wait := t.patience - time.Since(f.tapLast)
	if wait > 0 || !stuck || f.fullLocked() {
		f.tapTimer.Reset(max(wait, t.patience/4))
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	tp.starved = true
	f.detach(true)
}

// offer hands follower f the records the leader fetched from offset at on (the leader's
// position before this fetch), lAcked being the leader's acked offset.
func (f *partition) offer(recs []*kgo.Record, at, lAcked int64, now time.Time) {
	f.mu.Lock()
	if !f.tapped || f.revoking {
		f.mu.Unlock()
		return
	}
	if f.nextFetch < at {
		// Records between f's position and the offer's would be missing; cannot happen while
		// attached, since f takes every offer.
		f.mu.Unlock()
		f.detach(true)
		return
	}
	if f.overTapLocked(lAcked) {
		// As its own fetching would have paused: it takes no more, and fetches for itself
		// from its position once it is below its limits.
		f.mu.Unlock()
		f.detach(true)
		return
	}
	took := from(recs, f.nextFetch)
	if len(took) > 0 {
		f.pushLocked(took)
		f.tapLast, f.tapTook = now, true
	}
	f.mu.Unlock()
	if len(took) > 0 {
		if f.s.cfg.OnTapped != nil {
			f.s.cfg.OnTapped(len(took))
		}
		f.s.wakeEmitter()
	}
}

// detach stops f taking offers. With seek, f fetches for itself again from its position: at
// once if it took nothing from the tap since it attached (its client is still there), else
// once its poll loop has moved the client there; until then its fetching stays paused and
// records of its own fetch before its position are dropped (they came through the tap).
func (f *partition) detach(seek bool) {
	f.mu.Lock()
	f.tapped = false
	if f.tapTimer != nil {
		f.tapTimer.Stop()
	}
	moved := f.tapHold && f.tapTook
	if seek && f.tapHold && !f.tapTook {
		f.tapHold = false
		f.maybeResumeLocked()
	}
	f.mu.Unlock()
	if seek && moved {
		f.s.requestSeek(f)
	}
}

// overTapLocked reports whether follower p holds its limits in records the leader no longer
// holds (those before lAcked, the leader's acked offset, or -1): its sink is slower than the
// leader's. The records it holds that the leader holds too are the same records, alive
// anyway, and are not counted: a fetch brings whole record batches, so a follower often
// holds more than its limits in records that its leader fetched.
func (p *partition) overTapLocked(lAcked int64) bool {
	held := p.pendingN + p.inflightN
	if lAcked < 0 || held == 0 {
		return false
	}
	extra := int64(held) - max(p.nextFetch-lAcked, 0)
	if extra <= 0 {
		return false
	}
	share := p.bytesShareLocked()
	return extra >= int64(p.s.cfg.MaxInFlight) || share > 0 && extra*((p.pendingB+p.inflightB)/int64(held)) >= share
}

// fullLocked reports whether the partition holds its limits: its fetching would pause.
func (p *partition) fullLocked() bool {
	return p.pendingN+p.inflightN >= p.s.cfg.MaxInFlight || p.overBytesLocked()
}

// requestSeek asks the poll loop to move p's fetching to p's position and resume it.
func (s *Source) requestSeek(p *partition) {
	s.seekMu.Lock()
	if !slices.Contains(s.seeks, p) {
		s.seeks = append(s.seeks, p)
	}
	wake := s.pollWake
	s.seekMu.Unlock()
	if wake != nil {
		wake()
	}
}

// applySeeks moves the fetching of detached partitions to their positions and lets them
// resume. It runs on the poll loop while rebalances are blocked, so the partitions cannot
// change hands meanwhile.
func (s *Source) applySeeks(cl *kgo.Client) {
	s.seekMu.Lock()
	seeks := s.seeks
	s.seeks = nil
	s.seekMu.Unlock()
	for _, p := range seeks {
		p.mu.Lock()
		if p.tapped || !p.tapHold || p.revoking {
			p.mu.Unlock()
			continue
		}
		next := p.nextFetch
		p.mu.Unlock()
		if next >= 0 {
			cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{p.tp.Topic: {p.tp.Partition: {Epoch: -1, Offset: next}}})
		}
		p.mu.Lock()
		p.tapHold = false
		p.maybeResumeLocked()
		p.mu.Unlock()
	}
}
