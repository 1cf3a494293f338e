package source

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// pollLoop moves fetched records into their partitions' pending queues. The client blocks
// rebalances from a poll until AllowRebalance, so a fetch is always queued into the state of
// the assignment it was fetched for, never into a later assignment of the same partition.
func (s *Source) pollLoop(ctx context.Context, cl *kgo.Client) {
	defer close(s.pollDone)
	for {
		// With a tap, a poll ends early when a partition detached from it needs its fetching
		// moved (requestSeek), which is done below while rebalances are still blocked.
		pctx, wake := ctx, context.CancelFunc(func() {})
		if s.tap != nil {
			pctx, wake = context.WithCancel(ctx)
			s.seekMu.Lock()
			s.pollWake = wake
			if len(s.seeks) > 0 {
				wake()
			}
			s.seekMu.Unlock()
		}
		fetches := cl.PollRecords(pctx, 0)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			cl.AllowRebalance()
			wake()
			return
		}
		for i := range fetches {
			f := &fetches[i]
			for ti := range f.Topics {
				ft := &f.Topics[ti]
				for pi := range ft.Partitions {
					s.queueFetched(ft.Topic, &ft.Partitions[pi])
				}
			}
		}
		if s.tap != nil {
			s.applySeeks(cl)
		}
		cl.AllowRebalance()
		wake()
		s.wakeEmitter()
	}
}

func (s *Source) queueFetched(topic string, fp *kgo.FetchPartition) {
	if fp.Err != nil {
		var session *kgo.ErrGroupSession
		switch {
		case errors.Is(fp.Err, context.Canceled), errors.Is(fp.Err, kgo.ErrClientClosed):
		case errors.As(fp.Err, &session):
			// The client logs group errors itself, and onLost handles the partitions.
		default:
			s.log.Warn("fetch failed", "topic", topic, "partition", fp.Partition, "error", fp.Err)
		}
	}
	if len(fp.Records) == 0 {
		return
	}
	s.mu.RLock()
	p := s.parts[tpKey{topic, fp.Partition}]
	s.mu.RUnlock()
	if p == nil {
		// Cannot happen while rebalances are blocked during a poll; dropping is safe anyway,
		// since nothing of these records was emitted or committed.
		s.log.Warn("dropped records of an unassigned partition", "topic", topic, "partition", fp.Partition, "records", len(fp.Records))
		return
	}
	if recs := p.addPending(fp.Records); len(recs) > 0 && s.tap != nil {
		s.tap.fetched(p, recs)
	}
}

// emitLoop hands batches to the output channel, one batch per ready partition per pass, until
// no partition has anything to emit; then it sleeps until woken by a poll, an ack or an
// assignment becoming ready.
func (s *Source) emitLoop() {
	defer close(s.emitDone)
	var parts []*partition
	for {
		select {
		case <-s.wake:
		case <-s.closing:
			return
		}
		for {
			s.mu.RLock()
			parts = append(parts[:0], s.order...)
			s.mu.RUnlock()
			sent := false
			for _, p := range parts {
				b := p.nextBatch()
				if b == nil {
					continue
				}
				sent = true
				select {
				case s.out <- b.msg:
				case <-p.revokeCh:
					p.undeliver(b)
				case <-s.closing:
					p.undeliver(b)
					return
				}
			}
			if !sent {
				break
			}
		}
		clear(parts)
	}
}

// commitLoop commits acked offsets every CommitInterval until Close begins.
func (s *Source) commitLoop() {
	defer close(s.commitDone)
	t := time.NewTicker(s.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
			if err := s.commit(ctx, nil); err != nil {
				s.commitFailed(err)
			}
			cancel()
		case <-s.closing:
			return
		}
	}
}

type commitEntry struct {
	p      *partition
	offset int64
	err    error
}

// commit synchronously commits the acked prefix of parts (nil: every owned partition) where it
// advanced. Commits are serialized, so a revoke's final commit is the last one for its
// partitions: a periodic commit that collected them finishes first.
func (s *Source) commit(ctx context.Context, parts []*partition) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if parts == nil {
		s.mu.RLock()
		parts = append(parts, s.order...)
		s.mu.RUnlock()
	}
	var (
		entries []commitEntry
		offsets map[string]map[int32]kgo.EpochOffset
	)
	for _, p := range parts {
		p.mu.Lock()
		if !p.lost && p.ackNext > p.committed {
			if offsets == nil {
				offsets = make(map[string]map[int32]kgo.EpochOffset)
			}
			if offsets[p.tp.Topic] == nil {
				offsets[p.tp.Topic] = make(map[int32]kgo.EpochOffset)
			}
			offsets[p.tp.Topic][p.tp.Partition] = kgo.EpochOffset{Epoch: p.ackEpoch, Offset: p.ackNext}
			entries = append(entries, commitEntry{p: p, offset: p.ackNext})
		}
		p.mu.Unlock()
	}
	if len(entries) == 0 {
		return nil
	}
	if s.cfg.ExternalCommit {
		// Acked batches were committed in their transactions (see Fence) before their acks.
		for _, e := range entries {
			e.p.mu.Lock()
			e.p.committed = max(e.p.committed, e.offset)
			e.p.mu.Unlock()
		}
		return nil
	}
	var reqErr error
	partErrs := make(map[tpKey]error)
	s.client.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			reqErr = err
			return
		}
		for _, t := range resp.Topics {
			for _, pr := range t.Partitions {
				if err := kerr.ErrorForCode(pr.ErrorCode); err != nil {
					partErrs[tpKey{t.Topic, pr.Partition}] = err
				}
			}
		}
	})
	var errs []error
	for _, e := range entries {
		err := reqErr
		if err == nil {
			err = partErrs[tpKey{e.p.tp.Topic, e.p.tp.Partition}]
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("commit %s/%d at %d: %w", e.p.tp.Topic, e.p.tp.Partition, e.offset, err))
			continue
		}
		e.p.mu.Lock()
		e.p.committed = max(e.p.committed, e.offset)
		e.p.mu.Unlock()
	}
	if reqErr != nil {
		return fmt.Errorf("commit offsets of %d partitions: %w", len(entries), reqErr)
	}
	return errors.Join(errs...)
}

// commitFailed reports a failed offset commit: to OnCommitFailed, else to the log.
func (s *Source) commitFailed(err error) {
	if s.cfg.OnCommitFailed != nil {
		s.cfg.OnCommitFailed(err)
		return
	}
	s.log.Warn("offset commit failed", "error", err)
}
