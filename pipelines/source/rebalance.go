package source

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/internal/event"
)

// onAssigned is franz-go's OnPartitionsAssigned, called before fetching of the new partitions
// begins. With an OnAssigned hook the partitions start paused and not ready; the hook runs on
// its own goroutine (so a failing hook cannot stall the group) and readies them.
func (s *Source) onAssigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	if len(assigned) == 0 {
		return
	}
	ready := s.cfg.OnAssigned == nil
	var added []*partition
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	for topic, ps := range assigned {
		for _, n := range ps {
			key := tpKey{topic, n}
			if _, ok := s.parts[key]; ok {
				s.log.Warn("partition assigned twice; keeping the first assignment", "topic", topic, "partition", n)
				continue
			}
			s.seq++
			p := s.newPartition(cl, topic, n, s.seq, ready)
			s.parts[key] = p
			s.order = append(s.order, p)
			added = append(added, p)
		}
	}
	s.nparts.Store(int32(len(s.parts)))
	s.mu.Unlock()
	if len(added) == 0 {
		return
	}
	if !ready {
		pause := make(map[string][]int32)
		for _, p := range added {
			pause[p.tp.Topic] = append(pause[p.tp.Topic], p.tp.Partition)
		}
		cl.PauseFetchPartitions(pause)
	}
	for _, p := range added {
		if s.tap != nil {
			s.tap.join(p)
		}
		s.wg.Add(1)
		go p.track()
	}
	s.log.Info("partitions assigned", "partitions", names(added))
	if !ready {
		s.startHookRun(added)
	}
}

// onRevoked is franz-go's OnPartitionsRevoked. It returns once the partitions are drained,
// committed and dropped, so the next owner starts after our last commit.
func (s *Source) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	parts := s.lookup(revoked)
	if len(parts) == 0 {
		return
	}
	s.log.Info("partitions revoked", "partitions", names(parts))
	s.release(parts, true)
}

// onLost is franz-go's OnPartitionsLost: the group session ended without a clean revoke, so
// another member may already own the partitions. Nothing is committed.
func (s *Source) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	parts := s.lookup(lost)
	if len(parts) == 0 {
		return
	}
	s.log.Warn("partitions lost; dropping them without committing", "partitions", names(parts))
	// A transaction committing a batch of these partitions (Fence) finishes first; none
	// starts after.
	s.fenceMu.Lock()
	for _, p := range parts {
		p.mu.Lock()
		p.lost = true
		p.mu.Unlock()
	}
	s.fenceMu.Unlock()
	s.release(parts, false)
}

func (s *Source) lookup(tps map[string][]int32) []*partition {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var parts []*partition
	for topic, ps := range tps {
		for _, n := range ps {
			if p := s.parts[tpKey{topic, n}]; p != nil {
				parts = append(parts, p)
			}
		}
	}
	return parts
}

// release gives partitions up: it stops emitting and redelivering them and drops their pending
// records; then, if commit is set, it waits up to DrainTimeout for their in-flight batches and
// commits their acked prefix; then it calls OnRevoked and drops them. A partition already being
// released by another caller is waited for instead. It returns the partitions it released with
// emitted records left uncommitted (with commit unset: none).
func (s *Source) release(parts []*partition, commit bool) []Unfinished {
	var mine, others []*partition
	for _, p := range parts {
		p.mu.Lock()
		if p.releasing {
			others = append(others, p)
		} else {
			p.releasing, p.revoking, p.ready = true, true, false
			p.lost = !commit
			p.pending.reset()
			p.pendingN = 0
			p.pendingB = 0
			close(p.revokeCh)
			mine = append(mine, p)
		}
		p.mu.Unlock()
	}
	if s.tap != nil {
		for _, p := range mine {
			s.tap.leave(p)
		}
	}
	var unfinished []Unfinished
	if len(mine) > 0 {
		s.settleHooks(mine)
		if commit {
			s.drain(mine)
		}
		for _, p := range mine {
			p.kill()
			<-p.trackerDone
		}
		if commit {
			ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
			if err := s.commit(ctx, mine); err != nil {
				s.commitFailed(fmt.Errorf("final commit of %s: %w", names(mine), err))
			}
			cancel()
			for _, p := range mine {
				if u, ok := p.unfinished(); ok {
					unfinished = append(unfinished, u)
				}
			}
		}
		var gone []event.TopicPartition
		for _, p := range mine {
			p.mu.Lock()
			if p.hooked {
				gone = append(gone, p.tp)
			}
			p.mu.Unlock()
		}
		// Cancel the batches' contexts before OnRevoked, so that a sink writer that drops
		// canceled records (sinks.Runner) starts no write of them from here on, and OnRevoked
		// can wait for the writes already under way before the partitions go to their next
		// owner.
		for _, p := range mine {
			p.cancel()
		}
		if len(gone) > 0 && s.cfg.OnRevoked != nil {
			ctx, cancel := context.WithTimeout(s.base, s.cfg.DrainTimeout)
			s.cfg.OnRevoked(ctx, gone)
			cancel()
		}
		s.drop(mine)
	}
	for _, p := range others {
		<-p.released
	}
	return unfinished
}

// unfinished reports the emitted records of a released partition past its committed offset:
// batches still in flight (unacked or nacked) and, if the final commit failed, acked ones.
// The tracker must have stopped.
func (p *partition) unfinished() (Unfinished, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := int64(p.inflightN)
	if p.ackNext > p.committed {
		from := p.committed
		if from < 0 {
			from = p.firstFetched
		}
		n += p.ackNext - from
	}
	if n <= 0 {
		return Unfinished{}, false
	}
	return Unfinished{TopicPartition: p.tp, Committed: p.committed, Records: n}, true
}

// drain waits up to DrainTimeout for the trackers of parts to finish, that is, for every
// in-flight batch to be acked or for the partition's acked prefix to end at a nack.
func (s *Source) drain(parts []*partition) {
	t := time.NewTimer(s.cfg.DrainTimeout)
	defer t.Stop()
	for i, p := range parts {
		select {
		case <-p.trackerDone:
		case <-t.C:
			unacked := 0
			for _, q := range parts[i:] {
				q.mu.Lock()
				unacked += q.inflightN
				q.mu.Unlock()
			}
			s.log.Warn("drain timed out; committing what was acked", "timeout", s.cfg.DrainTimeout,
				"partitions", names(parts), "unacked_records", unacked)
			return
		}
	}
}

// drop forgets released partitions and cancels their message contexts.
func (s *Source) drop(parts []*partition) {
	s.mu.Lock()
	for _, p := range parts {
		delete(s.parts, tpKey{p.tp.Topic, p.tp.Partition})
	}
	s.order = slices.DeleteFunc(s.order, func(q *partition) bool { return slices.Contains(parts, q) })
	s.nparts.Store(int32(len(s.parts)))
	s.mu.Unlock()
	s.lagMu.Lock()
	for _, p := range parts {
		p.lagGone = true
		if p.reported {
			s.cfg.OnLag(PartitionLag{TopicPartition: p.tp, Released: true})
		}
	}
	s.lagMu.Unlock()
	for _, p := range parts {
		p.cancel()
		p.mu.Lock()
		if p.paused {
			// Pauses outlive assignments in the client; do not leave one behind.
			p.paused = false
			p.cl.ResumeFetchPartitions(p.pauseArg)
		}
		p.mu.Unlock()
		close(p.released)
	}
}

// hookRun calls OnAssigned for a set of partitions until it succeeds.
type hookRun struct {
	parts  []*partition
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Source) startHookRun(parts []*partition) {
	ctx, cancel := context.WithCancel(s.hookCtx)
	r := &hookRun{parts: parts, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	for _, p := range parts {
		p.mu.Lock()
		p.run = r
		p.mu.Unlock()
	}
	s.wg.Add(1)
	go s.runHook(r)
}

func (s *Source) runHook(r *hookRun) {
	defer s.wg.Done()
	defer close(r.done)
	defer r.cancel()
	for attempt := 1; ; attempt++ {
		var live []*partition
		for _, p := range r.parts {
			p.mu.Lock()
			if !p.revoking {
				live = append(live, p)
			}
			p.mu.Unlock()
		}
		if len(live) == 0 {
			return
		}
		tps := make([]event.TopicPartition, len(live))
		for i, p := range live {
			tps[i] = p.tp
		}
		err := s.cfg.OnAssigned(r.ctx, tps)
		if err == nil {
			for _, p := range live {
				p.mu.Lock()
				p.hooked = true
				if !p.revoking {
					p.ready = true
					p.maybeResumeLocked()
				}
				p.mu.Unlock()
			}
			s.wakeEmitter()
			return
		}
		if r.ctx.Err() != nil {
			return
		}
		wait := nackBackoff(attempt)
		s.log.Warn("partition assignment hook failed; retrying", "partitions", names(live),
			"attempt", attempt, "retry_in", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			return
		}
	}
}

// settleHooks stops the OnAssigned runs still working on any of parts, so that whether each
// partition was hooked is final, and restarts them for their partitions that stay.
func (s *Source) settleHooks(parts []*partition) {
	var runs []*hookRun
	for _, p := range parts {
		p.mu.Lock()
		if !p.hooked && p.run != nil && !slices.Contains(runs, p.run) {
			runs = append(runs, p.run)
		}
		p.mu.Unlock()
	}
	for _, r := range runs {
		r.cancel()
		<-r.done
	}
	for _, r := range runs {
		var rest []*partition
		for _, p := range r.parts {
			p.mu.Lock()
			if !p.revoking && !p.hooked {
				rest = append(rest, p)
			}
			p.mu.Unlock()
		}
		if len(rest) > 0 && !s.isClosing() {
			s.startHookRun(rest)
		}
	}
}

// names lists partitions as topic/partition, for logs.
func names(parts []*partition) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = p.tp.Topic + "/" + strconv.Itoa(int(p.tp.Partition))
	}
	return out
}
