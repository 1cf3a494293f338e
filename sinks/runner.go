package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
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
		cur = batch{}
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

// write lands one batch, retrying transient errors, and resolves its owners.
func (r *Runner) write(b batch) {
	recs, owners := b.records, b.owners
	ctx := context.Background()
	for attempt := 1; ; attempt++ {
		if len(recs) == 0 {
			return
		}
		start := time.Now()
		err := r.safeWrite(ctx, recs)
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
