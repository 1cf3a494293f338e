package pipelines

import (
	"context"
	"errors"
	"fmt"
	"time"

	"switchyard/internal/kafkaconn"
	"switchyard/pipelines/source"
	"switchyard/sinks"
)

// transact lands one batch of an exactly-once lane: its records, its dead letters and the
// offset after it commit in one Kafka transaction, or none of them does. A failed attempt is
// aborted and retried with backoff (like the runner's retries); a partition that is no longer
// ours hands the batch back at once (its new owner starts from the last committed offset).
func (l *lane) transact(ctx context.Context, b *source.Batch, st *laneState, recs []sinks.Record) error {
	refused := map[*sinks.Record]error{} // records the sink refused permanently, dead-lettered
	for attempt := 1; ; {
		start := time.Now()
		landed, dead, err := l.transactOnce(ctx, b, st, recs, refused)
		switch {
		case err == nil:
			if len(landed) > 0 {
				observer{l}.Landed(landed, time.Since(start))
			}
			l.p.dlq.written(dead)
			l.account(recs, st, landed, dead)
			return nil
		case errors.Is(err, errRefused):
			continue // aborted to write the refused records as dead letters instead
		case errors.Is(err, source.ErrNotOwned), errors.Is(err, kafkaconn.ErrFenced), ctx.Err() != nil:
			return fmt.Errorf("pipeline %q sink %q: %w", l.p.name, l.sink, err)
		}
		observer{l}.WriteFailed(len(st.ptrs)+len(st.dead), attempt, err)
		if l.retry.MaxAttempts > 0 && attempt >= l.retry.MaxAttempts {
			return fmt.Errorf("pipeline %q sink %q: %w", l.p.name, l.sink, err)
		}
		select {
		case <-time.After(sinks.Backoff(attempt, l.retry.InitialBackoff, l.retry.MaxBackoff)):
		case <-ctx.Done():
			return ctx.Err()
		}
		attempt++
	}
}

// errRefused: the sink refused some records permanently inside a transaction, which was
// aborted so that they are dead-lettered in the next attempt.
var errRefused = errors.New("records refused")

// transactOnce runs one transaction. It returns the records that landed and the dead letters
// written, once the transaction committed.
func (l *lane) transactOnce(ctx context.Context, b *source.Batch, st *laneState, recs []sinks.Record, refused map[*sinks.Record]error) ([]*sinks.Record, []deadLetter, error) {
	l.txnMu.Lock()
	defer l.txnMu.Unlock()
	dead := append([]deadLetter(nil), st.dead...)
	var out []*sinks.Record
	for _, r := range st.ptrs {
		if err, ok := refused[r]; ok {
			i, found := indexOf(recs, r)
			if !found {
				return nil, nil, fmt.Errorf("refused record %s/%d@%d is not in its batch", r.Topic, r.Partition, r.Offset)
			}
			dead = append(dead, deadLetter{rec: b.Records[i], reason: ReasonSink, err: err, contract: r.Contract, sink: l.sink, attempts: 1})
			continue
		}
		out = append(out, r)
	}
	if len(out) == 0 && len(dead) == 0 {
		// Nothing to produce: a transaction holding only offsets would never be ended by the
		// client, so commit them plainly.
		return nil, nil, l.src.CommitBatch(ctx, b)
	}
	if err := l.txn.Begin(); err != nil {
		return nil, nil, err
	}
	abort := func(err error) ([]*sinks.Record, []deadLetter, error) {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if aerr := l.txn.Abort(actx); aerr != nil {
			return nil, nil, errors.Join(err, aerr)
		}
		return nil, nil, err
	}
	if len(out) > 0 {
		err := l.sinkW.Write(ctx, out)
		var be *sinks.BatchError
		switch {
		case err == nil:
		case errors.As(err, &be) && len(be.Failed) > 0:
			for i, ferr := range be.Failed {
				refused[out[i]] = ferr
			}
			return abort(errRefused)
		case sinks.IsPermanent(err):
			for _, r := range out {
				refused[r] = err
			}
			return abort(errRefused)
		default:
			return abort(err)
		}
	}
	if err := l.p.dlq.produce(ctx, l.txn, dead); err != nil {
		return abort(err)
	}
	last := b.Records[len(b.Records)-1]
	err := l.src.Fence(b, func(m kafkaconn.Member) error {
		return l.txn.Commit(ctx, m, kafkaconn.Offsets{b.Topic: {b.Partition: last.Offset + 1}})
	})
	if errors.Is(err, source.ErrNotOwned) {
		return abort(err)
	}
	if err != nil {
		return nil, nil, err // Commit aborted
	}
	return out, dead, nil
}
