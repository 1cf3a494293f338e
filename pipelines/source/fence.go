package source

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-dev/switchyard/internal/kafkaconn"
)

// ErrNotOwned is returned by Fence when the batch's partition was lost or given up since the
// batch was fetched: another member may own it, so nothing of the batch may be committed.
var ErrNotOwned = errors.New("partition no longer owned")

// Fence runs commit with the group membership that the batches were fetched under, unless
// the partition of one of them was lost or released since, and keeps partitions from being
// marked lost until commit returns. commit is what makes the batches' results and offsets
// durable in one transaction (kafkaconn.Producer.Commit): the coordinator refuses the
// membership of a member that was replaced, and a loss noticed by this member first stops the
// commit here. If a batch is no longer owned, commit is not run: lost marks those batches and
// the error wraps ErrNotOwned.
func (s *Source) Fence(batches []*Batch, commit func(kafkaconn.Member) error) (lost []bool, err error) {
	s.fenceMu.RLock()
	defer s.fenceMu.RUnlock()
	var errs []error
	for i, b := range batches {
		if err := s.owns(b); err != nil {
			if lost == nil {
				lost = make([]bool, len(batches))
			}
			lost[i] = true
			errs = append(errs, err)
		}
	}
	if lost != nil {
		return lost, errors.Join(errs...)
	}
	member, gen := s.client.GroupMetadata()
	m := kafkaconn.Member{Group: s.cfg.Group, MemberID: member, Generation: gen, InstanceID: instanceID(s.client)}
	return nil, commit(m)
}

// CommitBatch commits the offset after b through the consumer group, outside any transaction,
// for batches whose processing produced nothing. Call it under the same serialization as the
// transactions (see Fence).
func (s *Source) CommitBatch(ctx context.Context, b *Batch) error {
	s.fenceMu.RLock()
	defer s.fenceMu.RUnlock()
	if err := s.owns(b); err != nil {
		return err
	}
	last := b.Records[len(b.Records)-1]
	offsets := map[string]map[int32]kgo.EpochOffset{b.Topic: {b.Partition: {Epoch: last.LeaderEpoch, Offset: last.Offset + 1}}}
	var err error
	s.client.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, rerr error) {
		if rerr != nil {
			err = rerr
			return
		}
		for _, t := range resp.Topics {
			for _, pr := range t.Partitions {
				if e := kerr.ErrorForCode(pr.ErrorCode); e != nil {
					err = e
				}
			}
		}
	})
	if err != nil {
		return fmt.Errorf("commit %s/%d at %d: %w", b.Topic, b.Partition, last.Offset+1, err)
	}
	return nil
}

func (s *Source) owns(b *Batch) error {
	p := b.p
	if p == nil {
		return fmt.Errorf("%w: batch of %s/%d has no assignment", ErrNotOwned, b.Topic, b.Partition)
	}
	s.mu.RLock()
	cur := s.parts[tpKey{b.Topic, b.Partition}]
	s.mu.RUnlock()
	p.mu.Lock()
	lost := p.lost
	p.mu.Unlock()
	if cur != p || lost {
		return fmt.Errorf("%w: %s/%d", ErrNotOwned, b.Topic, b.Partition)
	}
	return nil
}
