package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/switchyard-dev/switchyard/internal/backoff"
	"github.com/switchyard-dev/switchyard/internal/event"
)

// RunnerOptions configures the engine-side machinery wrapped around one sink.
type RunnerOptions struct {
	MaxRows        int           // flush when a batch holds this many records
	MaxBytes       int64         // flush when a batch holds this many payload bytes
	Interval       time.Duration // flush when the oldest record has waited this long
	MaxInFlight    int           // most batches being written at once
	MaxAttempts    int           // write attempts per batch before its callers get the error; 0: until it lands
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Guard, when set, is called before every write attempt; an error fails the attempt as a
	// transient one without calling the sink. The engine uses it to write only while its
	// consumer-group membership is confirmed (source.Source.Confirm), so that a process that
	// was paused past the session timeout does not write for partitions it no longer owns.
	Guard func(ctx context.Context) error
	// Observer is told about every write; nil for none.
	Observer Observer
	Logger   *slog.Logger
}

// Observer receives the runner's telemetry. Implementations must be goroutine-safe.
type Observer interface {
	// Landed is called after records landed in one write attempt.
	Landed(records []*event.Record, took time.Duration)
	// WriteFailed is called after an attempt failed with a transient error.
	WriteFailed(n int, attempt int, err error)
}

// Failure is a record that can never land, and why.
type Failure struct {
	Record *event.Record
	Err    error
}

// Runner batches records from many concurrent callers into writes to one sink, retries
// transient errors with jittered exponential backoff, and limits writes in flight.
//
// Write may be called from any number of goroutines. Close flushes what is pending.
type Runner struct {
	sink Sink
	opt  RunnerOptions

	reqs    chan *request
	slots   chan struct{}
	closing chan struct{}
	done    chan struct{}
	writes  sync.WaitGroup
	once    sync.Once

	busyMu sync.Mutex
	busyCh chan struct{}                // closed and replaced whenever an attempt ends
	busy   map[event.TopicPartition]int // write attempts under way, by partition of their records
}

type request struct {
	ctx     context.Context
	records []*event.Record
	bytes   int64

	mu        sync.Mutex
	remaining int
	failures  []Failure
	err       error
	done      chan struct{}
}

func (r *request) resolve(n int, fails []Failure, err error) {
	r.mu.Lock()
	r.failures = append(r.failures, fails...)
	if err != nil && r.err == nil {
		r.err = err
	}
	r.remaining -= n
	last := r.remaining == 0
	r.mu.Unlock()
	if last {
		close(r.done)
	}
}

// NewRunner starts a runner around s.
func NewRunner(s Sink, opt RunnerOptions) *Runner {
	if opt.MaxRows <= 0 {
		opt.MaxRows = 5000
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = 4 << 20
	}
	if opt.Interval <= 0 {
		opt.Interval = 200 * time.Millisecond
	}
	if opt.MaxInFlight <= 0 {
		opt.MaxInFlight = 1
	}
	if opt.InitialBackoff <= 0 {
		opt.InitialBackoff = 100 * time.Millisecond
	}
	if opt.MaxBackoff < opt.InitialBackoff {
		opt.MaxBackoff = opt.InitialBackoff
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{
		sink:    s,
		opt:     opt,
		reqs:    make(chan *request),
		slots:   make(chan struct{}, opt.MaxInFlight),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		busyCh:  make(chan struct{}),
		busy:    map[event.TopicPartition]int{},
	}
	go r.loop()
	return r
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("sink runner closed")

// Write hands records to the sink and blocks until each has landed or failed permanently.
// It returns the records that can never land (the caller dead-letters them), or an error if
// some records could not be written after every attempt (the caller must not commit them;
// some of the others may have landed). Records must not be modified until Write returns.
func (r *Runner) Write(ctx context.Context, records []*event.Record) ([]Failure, error) {
	if len(records) == 0 {
		return nil, nil
	}
	req := &request{ctx: ctx, records: records, remaining: len(records), done: make(chan struct{})}
	for _, rec := range records {
		req.bytes += int64(len(rec.Value))
	}
	select {
	case r.reqs <- req:
	case <-r.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-req.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return req.failures, req.err
}

// batch is records on their way to one Write, with the request each came from.
type batch struct {
	records []*event.Record
	owners  []*request
	bytes   int64
}

func (r *Runner) loop() {
	defer close(r.done)
	var cur batch
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		timer.Stop()
		if len(cur.records) == 0 {
			return
		}
		b := cur
		// The next batch starts with the capacity of this one rather than growing by
		// appends, which allocated about twice a batch.
		cur = batch{records: make([]*event.Record, 0, len(b.records)), owners: make([]*request, 0, len(b.records))}
		r.slots <- struct{}{} // backpressure: the loop (and so every caller) waits for a slot
		r.writes.Add(1)
		go func() {
			defer func() { <-r.slots; r.writes.Done() }()
			r.write(b)
		}()
	}
	for {
		select {
		case req := <-r.reqs:
			if len(cur.records) == 0 {
				timer.Reset(r.opt.Interval)
			}
			// A request larger than a batch is split across batches.
			for i, rec := range req.records {
				cur.records = append(cur.records, rec)
				cur.owners = append(cur.owners, req)
				cur.bytes += int64(len(rec.Value))
				if len(cur.records) >= r.opt.MaxRows || cur.bytes >= r.opt.MaxBytes {
					flush()
					if i < len(req.records)-1 {
						timer.Reset(r.opt.Interval)
					}
				}
			}
		case <-timer.C:
			flush()
		case <-r.closing:
			flush()
			r.writes.Wait()
			return
		}
	}
}

// write lands one batch, retrying transient errors, and resolves its owners. Records whose
// caller's context ended are dropped before each attempt, never written: the source cancels a
// batch's context when its partition is revoked (after the drain) or lost, and the partition's
// new owner starts from the last committed offset, so a late write would only duplicate it.
func (r *Runner) write(b batch) {
	recs, owners := b.records, b.owners
	ctx := context.Background()
	for attempt := 1; ; attempt++ {
		// Marked busy before the abandoned records are dropped: WaitIdle, called after the
		// contexts were canceled, then either sees this attempt or it sees the cancellation.
		parts := r.markBusy(recs)
		recs, owners = dropAbandoned(recs, owners)
		if len(recs) == 0 {
			r.markIdle(parts)
			return
		}
		start := time.Now()
		var err error
		if r.opt.Guard != nil {
			err = r.opt.Guard(ctx)
		}
		if err == nil {
			err = r.safeWrite(ctx, recs)
		}
		r.markIdle(parts)
		if err == nil {
			r.observeLanded(recs, time.Since(start))
			resolveAll(recs, owners, nil)
			return
		}
		var be *BatchError
		switch {
		case errors.As(err, &be):
			failed := make(map[*request][]Failure)
			var keepR []*event.Record
			var keepO []*request
			var landed []*event.Record
			for i, rec := range recs {
				if ferr, bad := be.Failed[i]; bad {
					failed[owners[i]] = append(failed[owners[i]], Failure{Record: rec, Err: ferr})
					continue
				}
				if _, retry := be.Retry[i]; !retry && be.Landed {
					landed = append(landed, rec)
					owners[i].resolve(1, nil, nil)
					continue
				}
				keepR = append(keepR, rec)
				keepO = append(keepO, owners[i])
			}
			for req, f := range failed {
				req.resolve(len(f), f, nil)
			}
			if len(landed) > 0 {
				r.observeLanded(landed, time.Since(start))
			}
			recs, owners = keepR, keepO
			if len(recs) == 0 {
				return
			}
			if len(be.Retry) == 0 && len(be.Failed) > 0 {
				// The rest did not land only because of the failed rows: retry them now.
				attempt--
				continue
			}
			// Some records failed transiently: back off, then retry only those.
		case IsPermanent(err):
			for i, rec := range recs {
				owners[i].resolve(1, []Failure{{Record: rec, Err: err}}, nil)
			}
			return
		}
		if r.opt.Observer != nil {
			r.opt.Observer.WriteFailed(len(recs), attempt, err)
		}
		if r.opt.MaxAttempts > 0 && attempt >= r.opt.MaxAttempts {
			err = fmt.Errorf("write %d records: giving up after %d attempts: %w", len(recs), attempt, err)
			resolveAll(recs, owners, err)
			return
		}
		if r.opt.Observer == nil {
			r.opt.Logger.Warn("sink write failed, retrying", "records", len(recs), "attempt", attempt, "error", err)
		}
		select {
		case <-time.After(backoff.Wait(attempt, r.opt.InitialBackoff, r.opt.MaxBackoff)):
		case <-r.closing:
			// Shutting down: hand the records back instead of waiting out the backoff.
			resolveAll(recs, owners, fmt.Errorf("write %d records: shutting down: %w", len(recs), err))
			return
		}
	}
}

// WaitIdle waits until no write attempt holding records of partitions is under way, or ctx
// ends (then it returns ctx's error). Together with dropping records whose caller's context
// ended, it lets the engine hand a revoked partition over only once nothing of it can still
// land: cancel the partition's batches, then WaitIdle.
func (r *Runner) WaitIdle(ctx context.Context, partitions []event.TopicPartition) error {
	for {
		r.busyMu.Lock()
		n := 0
		for _, tp := range partitions {
			n += r.busy[tp]
		}
		ch := r.busyCh
		r.busyMu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d write attempts of revoked partitions: %w", n, ctx.Err())
		}
	}
}

// markBusy counts an attempt under way for each partition of recs and returns them.
func (r *Runner) markBusy(recs []*event.Record) []event.TopicPartition {
	var parts []event.TopicPartition
	for _, rec := range recs {
		tp := event.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}
		if !slices.Contains(parts, tp) {
			parts = append(parts, tp)
		}
	}
	r.busyMu.Lock()
	for _, tp := range parts {
		r.busy[tp]++
	}
	r.busyMu.Unlock()
	return parts
}

// markIdle ends an attempt that markBusy counted.
func (r *Runner) markIdle(parts []event.TopicPartition) {
	r.busyMu.Lock()
	for _, tp := range parts {
		if r.busy[tp]--; r.busy[tp] <= 0 {
			delete(r.busy, tp)
		}
	}
	close(r.busyCh)
	r.busyCh = make(chan struct{})
	r.busyMu.Unlock()
}

// dropAbandoned resolves, with their context's error, the records whose caller gave up, and
// returns the others.
func dropAbandoned(recs []*event.Record, owners []*request) ([]*event.Record, []*request) {
	n := 0
	for i, rec := range recs {
		if err := owners[i].ctx.Err(); err != nil {
			owners[i].resolve(1, nil, err)
			continue
		}
		recs[n], owners[n] = rec, owners[i]
		n++
	}
	clear(recs[n:])
	clear(owners[n:])
	return recs[:n], owners[:n]
}

// safeWrite calls the sink, turning a panic into a permanent error: the batch is
// dead-lettered with the reason instead of the process crashing.
func (r *Runner) safeWrite(ctx context.Context, recs []*event.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			r.opt.Logger.Error("sink panicked; dead-lettering its batch", "records", len(recs), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			err = Permanent(fmt.Errorf("sink panicked: %v", v))
		}
	}()
	return r.sink.Write(ctx, recs)
}

func (r *Runner) observeLanded(recs []*event.Record, took time.Duration) {
	if r.opt.Observer != nil {
		r.opt.Observer.Landed(recs, took)
	}
}

// resolveAll resolves every record with err, counting records per owner once.
func resolveAll(recs []*event.Record, owners []*request, err error) {
	var last *request
	n := 0
	for i := range recs {
		if owners[i] != last {
			if last != nil {
				last.resolve(n, nil, err)
			}
			last, n = owners[i], 0
		}
		n++
	}
	if last != nil {
		last.resolve(n, nil, err)
	}
}

// Close flushes pending records, waits for writes in flight, and closes the sink.
func (r *Runner) Close(ctx context.Context) error {
	r.once.Do(func() { close(r.closing) })
	select {
	case <-r.done:
	case <-ctx.Done():
		return fmt.Errorf("close sink runner: %w", ctx.Err())
	}
	return r.sink.Close(ctx)
}
