package kafkaconn

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Member is a consumer group member as the group coordinator knows it: what a transactional
// offset commit must carry so that a member that lost its partitions (a zombie) is refused.
type Member struct {
	Group      string
	MemberID   string
	Generation int32
	InstanceID string // static membership, or ""
}

// Offsets are the next offsets to consume, by topic and partition.
type Offsets map[string]map[int32]int64

// Transactional producers (ProducerOptions.TransactionalID set) produce between Begin and
// Commit or Abort. One transaction runs at a time: callers serialize Begin … Commit/Abort.
//
// Commit adds the consumed offsets of another client's consumer group to the transaction
// (consume-transform-produce: the records and the offsets commit atomically). The group
// coordinator checks member and generation (KIP-447), so a member that has been replaced
// cannot commit, and its records are aborted: read_committed readers never see them.

// Begin starts a transaction.
func (p *Producer) Begin() error {
	if err := p.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	return nil
}

// Commit flushes the transaction's records, adds offsets for m's group to it and commits it.
// On any error the transaction is aborted (nothing of it is visible to read_committed
// readers) and the error is returned; ErrFenced is wrapped when another member or producer
// has taken over.
func (p *Producer) Commit(ctx context.Context, m Member, offsets Offsets) error {
	if err := p.cl.Flush(ctx); err != nil {
		return p.abortWith(ctx, fmt.Errorf("flush transaction: %w", err))
	}
	if len(offsets) > 0 {
		if err := p.commitOffsets(ctx, m, offsets); err != nil {
			return p.abortWith(ctx, err)
		}
	}
	if err := p.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return p.abortWith(ctx, classify(fmt.Errorf("commit transaction: %w", err)))
	}
	return nil
}

// Abort aborts the transaction, dropping records not yet flushed.
func (p *Producer) Abort(ctx context.Context) error {
	if err := p.cl.AbortBufferedRecords(ctx); err != nil {
		return fmt.Errorf("abort buffered records: %w", err)
	}
	if err := p.cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		return fmt.Errorf("abort transaction: %w", err)
	}
	return nil
}

func (p *Producer) abortWith(ctx context.Context, err error) error {
	if aerr := p.Abort(ctx); aerr != nil {
		return errors.Join(err, aerr)
	}
	return err
}

// ErrFenced is wrapped by transaction errors that mean this member or producer was replaced:
// retrying is pointless until the group settles; the batch is handed back.
var ErrFenced = errors.New("fenced: another member owns the partition")

func classify(err error) error {
	switch {
	case errors.Is(err, kerr.IllegalGeneration), errors.Is(err, kerr.UnknownMemberID),
		errors.Is(err, kerr.FencedInstanceID), errors.Is(err, kerr.ProducerFenced),
		errors.Is(err, kerr.InvalidProducerEpoch), errors.Is(err, kerr.RebalanceInProgress),
		errors.Is(err, kerr.StaleMemberEpoch):
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return err
}

// commitOffsets sends AddOffsetsToTxn and TxnOffsetCommit for m's group.
func (p *Producer) commitOffsets(ctx context.Context, m Member, offsets Offsets) error {
	id, epoch, err := p.cl.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("producer id: %w", err)
	}
	txnID, _ := p.cl.OptValue(kgo.TransactionalID).(string)

	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txnID, id, epoch, m.Group
	addResp, err := add.RequestWith(ctx, p.cl)
	if err == nil {
		err = kerr.ErrorForCode(addResp.ErrorCode)
	}
	if err != nil {
		return classify(fmt.Errorf("add offsets of group %s to transaction: %w", m.Group, err))
	}

	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = txnID, m.Group, id, epoch
	req.Generation, req.MemberID = m.Generation, m.MemberID
	if m.InstanceID != "" {
		req.InstanceID = &m.InstanceID
	}
	for topic, parts := range offsets {
		t := kmsg.NewTxnOffsetCommitRequestTopic()
		t.Topic = topic
		for part, off := range parts {
			pr := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			pr.Partition, pr.Offset, pr.LeaderEpoch = part, off, -1
			t.Partitions = append(t.Partitions, pr)
		}
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, p.cl)
	if err != nil {
		return classify(fmt.Errorf("commit offsets in transaction: %w", err))
	}
	var errs []error
	for _, t := range resp.Topics {
		for _, pr := range t.Partitions {
			if err := kerr.ErrorForCode(pr.ErrorCode); err != nil {
				errs = append(errs, classify(fmt.Errorf("commit offset of %s/%d in transaction: %w", t.Topic, pr.Partition, err)))
			}
		}
	}
	return errors.Join(errs...)
}
