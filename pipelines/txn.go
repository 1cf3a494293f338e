package pipelines

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchyard-dev/switchyard/internal/backoff"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/internal/kafkaconn"
	"github.com/switchyard-dev/switchyard/pipelines/source"
	"github.com/switchyard-dev/switchyard/sinks"
)

// transact lands one batch of an exactly-once lane: its records, its dead letters and the
// offset after it commit in one Kafka transaction, or none of them does. A failed attempt is
// aborted and retried with backoff (like the runner's retries); a partition that is no longer
// ours hands the batch back at once (its new owner starts from the last committed offset).
//
// Batches of other partitions waiting at the same time share the transaction (group
// commit): a lane runs one transaction at a time, and each carries every batch that was
// ready when it began.
func (l *lane) transact(ctx context.Context, b *source.Batch, st *laneState, recs []event.Record) error {
	job := &txnJob{b: b, st: st, recs: recs, refused: map[*event.Record]error{}}
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := l.txns.run(ctx, l, job)
		switch {
		case err == nil:
			if len(job.landed) > 0 {
				observer{l}.Landed(job.landed, time.Since(start))
			}
			l.p.dlq.written(job.dead)
			l.account(job.recs, job.st, job.landed, job.dead)
			return nil
		case errors.Is(err, source.ErrNotOwned), errors.Is(err, kafkaconn.ErrFenced), ctx.Err() != nil:
			return fmt.Errorf("pipeline %q sink %q: %w", l.p.name, l.sink, err)
		}
		observer{l}.WriteFailed(len(st.ptrs)+len(st.dead), attempt, err)
		if l.retry.MaxAttempts > 0 && attempt >= l.retry.MaxAttempts {
			return fmt.Errorf("pipeline %q sink %q: %w", l.p.name, l.sink, err)
		}
		select {
		case <-time.After(backoff.Wait(attempt, l.retry.InitialBackoff, l.retry.MaxBackoff)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// txnJob is one batch on its way into a transaction.
type txnJob struct {
	b       *source.Batch
	st      *laneState
	recs    []event.Record
	refused map[*event.Record]error // records the sink refused permanently: dead-lettered

	// Set by the transaction that took the job.
	out    []*event.Record // records given to the sink
	dead   []deadLetter    // dead letters written
	landed []*event.Record
	err    error
	done   chan struct{}
}

// txnGroup runs a lane's transactions one at a time, each over every job waiting.
type txnGroup struct {
	run1    sync.Mutex // held while a transaction runs
	mu      sync.Mutex
	pending []*txnJob
}

// run queues job and returns once a transaction carried it (committed or not).
func (g *txnGroup) run(ctx context.Context, l *lane, job *txnJob) error {
	job.done = make(chan struct{})
	job.out, job.dead, job.landed, job.err = nil, nil, nil, nil
	g.mu.Lock()
	g.pending = append(g.pending, job)
	g.mu.Unlock()
	g.run1.Lock()
	g.mu.Lock()
	jobs := g.pending
	g.pending = nil
	g.mu.Unlock()
	if len(jobs) > 0 {
		l.transactJobs(ctx, jobs)
	}
	g.run1.Unlock()
	select {
	case <-job.done:
		return job.err
	case <-ctx.Done():
		// Another caller's transaction still carries the job; it finishes the job, and the
		// batch, whose context is gone, is redelivered.
		return ctx.Err()
	}
}

// transactTimeout bounds one transaction's produce, flush and commit, so that a broker that
// stops answering cannot hold the lane: the attempt fails, is aborted and retried.
const transactTimeout = 2 * time.Minute

// transactJobs runs transactions until every job is committed or failed. Jobs whose sink
// refused records permanently are retried at once with those records dead-lettered instead;
// jobs whose partition is no longer owned fail with source.ErrNotOwned and the others are
// retried without them; any other failure fails every job (each retries with backoff).
func (l *lane) transactJobs(parent context.Context, jobs []*txnJob) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), transactTimeout)
	defer cancel()
	finish := func(js []*txnJob, err error) {
		for _, j := range js {
			j.err = err
			close(j.done)
		}
	}
	for len(jobs) > 0 {
		var out []*event.Record
		owner := map[*event.Record]*txnJob{}
		var empty, busy []*txnJob
		for _, j := range jobs {
			if err := j.prepare(l); err != nil {
				finish([]*txnJob{j}, err)
				continue
			}
			if len(j.out) == 0 && len(j.dead) == 0 {
				empty = append(empty, j)
				continue
			}
			for _, r := range j.out {
				owner[r] = j
			}
			out = append(out, j.out...)
			busy = append(busy, j)
		}
		// Nothing to produce: a transaction holding only offsets would never be ended by the
		// client, so commit them plainly.
		for _, j := range empty {
			finish([]*txnJob{j}, l.src.CommitBatch(ctx, j.b))
		}
		if len(busy) == 0 {
			return
		}
		jobs = busy
		retry, err := l.transactOnce(ctx, jobs, out, owner)
		switch {
		case err == nil:
			for _, j := range jobs {
				j.landed = j.out
			}
			finish(jobs, nil)
			return
		case errors.Is(err, errRefused):
			continue // retry with the refused records dead-lettered
		case retry != nil:
			finish(without(jobs, retry), err) // not owned
			jobs = retry
			continue
		default:
			finish(jobs, err)
			return
		}
	}
}

// without returns the jobs not in keep.
func without(jobs, keep []*txnJob) []*txnJob {
	var out []*txnJob
	for _, j := range jobs {
		found := false
		for _, k := range keep {
			found = found || j == k
		}
		if !found {
			out = append(out, j)
		}
	}
	return out
}

// prepare splits the job's routed records into those for the sink and the dead letters.
func (j *txnJob) prepare(l *lane) error {
	j.out = j.out[:0]
	j.dead = append(j.dead[:0], j.st.dead...)
	for _, r := range j.st.ptrs {
		if err, ok := j.refused[r]; ok {
			i, found := indexOf(j.recs, r)
			if !found {
				return fmt.Errorf("refused record %s/%d@%d is not in its batch", r.Topic, r.Partition, r.Offset)
			}
			j.dead = append(j.dead, deadLetter{rec: j.b.Records[i], reason: ReasonSink, err: err, contract: r.Contract, sink: l.sink, route: r.Route, attempts: j.st.attempt})
			continue
		}
		j.out = append(j.out, r)
	}
	return nil
}

// errRefused: the sink refused some records permanently inside a transaction, which was
// aborted so that they are dead-lettered in the next attempt.
var errRefused = errors.New("records refused")

// transactOnce runs one transaction over jobs (out are their records for the sink, owner
// maps each to its job). On source.ErrNotOwned it returns the jobs that are still owned, to
// be retried without the others.
func (l *lane) transactOnce(ctx context.Context, jobs []*txnJob, out []*event.Record, owner map[*event.Record]*txnJob) ([]*txnJob, error) {
	if err := l.txn.Begin(); err != nil {
		return nil, err
	}
	abort := func(err error) error {
		if aerr := l.txn.Abort(ctx); aerr != nil {
			return errors.Join(err, aerr)
		}
		return err
	}
	if len(out) > 0 {
		err := l.sinkW.Write(ctx, out)
		var be *sinks.BatchError
		switch {
		case err == nil:
		case errors.As(err, &be) && len(be.Failed) > 0:
			for i, ferr := range be.Failed {
				owner[out[i]].refused[out[i]] = ferr
			}
			return nil, abort(errRefused)
		case sinks.IsPermanent(err):
			for _, r := range out {
				owner[r].refused[r] = err
			}
			return nil, abort(errRefused)
		default:
			return nil, abort(err)
		}
	}
	var dead []deadLetter
	batches := make([]*source.Batch, len(jobs))
	offsets := kafkaconn.Offsets{}
	for i, j := range jobs {
		dead = append(dead, j.dead...)
		batches[i] = j.b
		last := j.b.Records[len(j.b.Records)-1]
		if offsets[j.b.Topic] == nil {
			offsets[j.b.Topic] = map[int32]int64{}
		}
		offsets[j.b.Topic][j.b.Partition] = last.Offset + 1
	}
	if err := l.p.dlq.produce(ctx, l.txn, dead); err != nil {
		return nil, abort(err)
	}
	lost, err := l.src.Fence(batches, func(m kafkaconn.Member) error {
		return l.txn.Commit(ctx, m, offsets)
	})
	if len(lost) > 0 {
		var owned []*txnJob
		for i, j := range jobs {
			if !lost[i] {
				owned = append(owned, j)
			}
		}
		return owned, abort(err)
	}
	return nil, err // Commit aborted on error
}
