package sinks_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
)

// scriptSink records every Write and answers from a script of errors (nil once it runs out).
type scriptSink struct {
	mu       sync.Mutex
	batches  [][]int64 // offsets per successful write
	script   []func(recs []*event.Record) error
	calls    int
	inFlight atomic.Int32
	maxSeen  atomic.Int32
	delay    time.Duration
}

func (s *scriptSink) Write(_ context.Context, recs []*event.Record) error {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.script) > 0 {
		f := s.script[0]
		s.script = s.script[1:]
		if err := f(recs); err != nil {
			var be *sinks.BatchError
			if errors.As(err, &be) && be.Landed {
				skip := map[int]error{}
				for i, e := range be.Failed {
					skip[i] = e
				}
				for i, e := range be.Retry {
					skip[i] = e
				}
				s.record(recs, skip)
			}
			return err
		}
	}
	s.record(recs, nil)
	return nil
}

func (s *scriptSink) record(recs []*event.Record, skip map[int]error) {
	var offs []int64
	for i, r := range recs {
		if _, bad := skip[i]; !bad {
			offs = append(offs, r.Offset)
		}
	}
	s.batches = append(s.batches, offs)
}

func (s *scriptSink) Close(context.Context) error { return nil }

func (s *scriptSink) landed() map[int64]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int64]int{}
	for _, b := range s.batches {
		for _, o := range b {
			out[o]++
		}
	}
	return out
}

func records(from, n int) []*event.Record {
	out := make([]*event.Record, n)
	for i := range out {
		out[i] = &event.Record{Topic: "t", Offset: int64(from + i), Value: make([]byte, 10)}
	}
	return out
}

func fast(o sinks.RunnerOptions) sinks.RunnerOptions {
	o.InitialBackoff, o.MaxBackoff = time.Millisecond, 5*time.Millisecond
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 5
	}
	return o
}

func TestRunner_batches_concurrent_callers_by_rows(t *testing.T) {
	s := &scriptSink{}
	r := sinks.NewRunner(s, fast(sinks.RunnerOptions{MaxRows: 100, Interval: time.Hour, MaxInFlight: 1}))
	defer r.Close(context.Background())
	var wg sync.WaitGroup
	for c := range 10 {
		wg.Go(func() {
			fails, err := r.Write(context.Background(), records(c*10, 10))
			if err != nil || len(fails) > 0 {
				t.Errorf("write: %v %v", fails, err)
			}
		})
	}
	wg.Wait()
	if len(s.batches) != 1 || len(s.batches[0]) != 100 {
		t.Fatalf("want one batch of 100, got %d batches", len(s.batches))
	}
}

func TestRunner_flushes_on_interval(t *testing.T) {
	s := &scriptSink{}
	r := sinks.NewRunner(s, fast(sinks.RunnerOptions{MaxRows: 1000, Interval: 20 * time.Millisecond}))
	defer r.Close(context.Background())
	if _, err := r.Write(context.Background(), records(0, 3)); err != nil {
		t.Fatal(err)
	}
	if got := s.landed(); len(got) != 3 {
		t.Fatalf("landed %v", got)
	}
}

func TestRunner_splits_large_requests_and_bytes(t *testing.T) {
	s := &scriptSink{}
	r := sinks.NewRunner(s, fast(sinks.RunnerOptions{MaxRows: 40, MaxBytes: 200, Interval: time.Hour}))
	defer r.Close(context.Background())
	if _, err := r.Write(context.Background(), records(0, 100)); err == nil {
		// 100 records of 10 bytes with a 200-byte limit: 5 batches of 20.
		if len(s.batches) != 5 {
			t.Fatalf("want 5 batches, got %d", len(s.batches))
		}
	} else {
		t.Fatal(err)
	}
}

func TestRunner_retries_transient_errors(t *testing.T) {
	fail := func([]*event.Record) error { return errors.New("connection refused") }
	s := &scriptSink{script: []func([]*event.Record) error{fail, fail}}
	r := sinks.NewRunner(s, fast(sinks.RunnerOptions{MaxRows: 10, Interval: time.Millisecond}))
	defer r.Close(context.Background())
	fails, err := r.Write(context.Background(), records(0, 10))
	if err != nil || len(fails) != 0 {
		t.Fatalf("fails=%v err=%v", fails, err)
	}
	if s.calls != 3 || len(s.landed()) != 10 {
		t.Fatalf("calls=%d landed=%d", s.calls, len(s.landed()))
	}
}

func TestRunner_gives_up_after_max_attempts(t *testing.T) {
	fail := func([]*event.Record) error { return errors.New("timeout") }
	s := &scriptSink{script: []func([]*event.Record) error{fail, fail, fail}}
	r := sinks.NewRunner(s, fast(sinks.RunnerOptions{MaxRows: 10, Interval: time.Millisecond, MaxAttempts: 3}))
	defer r.Close(context.Background())
	_, err := r.Write(context.Background(), records(0, 10))
	if err == nil {
		t.Fatal("want an error after 3 failed attempts")
	}
	if s.calls != 3 {
		t.Fatalf("calls=%d", s.calls)
	}
}

func TestRunner_permanent_error_fails_every_record(t *testing.T) {
	perm := func([]*event.Record) error { return sinks.Permanent(errors.New("table schema mismatch")) }
	s := &scriptSink{script: []func([]*event.Record) error{perm}}
	r := sinks.NewRunner(s, fast(sinks.RunnerOptions{MaxRows: 5, Interval: time.Millisecond}))
	defer r.Close(context.Background())
	fails, err := r.Write(context.Background(), records(0, 5))
	if err != nil || len(fails) != 5 {
		t.Fatalf("fails=%d err=%v", len(fails), err)
	}
}

func TestRunner_batch_error_fails_only_those_rows(t *testing.T) {
	for _, landed := range []bool{true, false} {
		rowErr := func(recs []*event.Record) error {
			return &sinks.BatchError{Failed: map[int]error{1: errors.New("out of range"), 3: errors.New("bad")}, Landed: landed}
		}
		s := &scriptSink{script: []func([]*event.Record) error{rowErr}}
		r := sinks.NewRunner(s, fast(sinks.RunnerOptions{MaxRows: 5, Interval: time.Millisecond}))
		fails, err := r.Write(context.Background(), records(0, 5))
		r.Close(context.Background())
		if err != nil || len(fails) != 2 {
			t.Fatalf("landed=%v: fails=%d err=%v", landed, len(fails), err)
		}
		got := s.landed()
		for _, off := range []int64{0, 2, 4} {
			if got[off] != 1 {
				t.Fatalf("landed=%v: offset %d landed %d times (%v)", landed, off, got[off], got)
			}
		}
		if got[1]+got[3] != 0 {
			t.Fatalf("landed=%v: failed rows landed: %v", landed, got)
		}
	}
}

func TestRunner_limits_writes_in_flight(t *testing.T) {
	s := &scriptSink{delay: 5 * time.Millisecond}
	r := sinks.NewRunner(s, fast(sinks.RunnerOptions{MaxRows: 2, Interval: time.Millisecond, MaxInFlight: 3}))
	defer r.Close(context.Background())
	var wg sync.WaitGroup
	for c := range 20 {
		wg.Go(func() { _, _ = r.Write(context.Background(), records(c*2, 2)) })
	}
	wg.Wait()
	if m := s.maxSeen.Load(); m > 3 || m < 2 {
		t.Fatalf("max writes in flight %d, want 2..3", m)
	}
	if len(s.landed()) != 40 {
		t.Fatalf("landed %d", len(s.landed()))
	}
}

func TestRunner_close_flushes_pending(t *testing.T) {
	s := &scriptSink{}
	r := sinks.NewRunner(s, fast(sinks.RunnerOptions{MaxRows: 1000, Interval: time.Hour}))
	done := make(chan error)
	go func() { _, err := r.Write(context.Background(), records(0, 7)); done <- err }()
	time.Sleep(10 * time.Millisecond)
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(s.landed()) != 7 {
		t.Fatalf("landed %d", len(s.landed()))
	}
	if _, err := r.Write(context.Background(), records(0, 1)); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestRunner_retries_only_records_that_failed_transiently(t *testing.T) {
	partial := func(recs []*event.Record) error {
		return &sinks.BatchError{Retry: map[int]error{0: errors.New("not leader"), 4: errors.New("not leader")}, Landed: true}
	}
	s := &scriptSink{script: []func([]*event.Record) error{partial}}
	r := sinks.NewRunner(s, fast(sinks.RunnerOptions{MaxRows: 5, Interval: time.Millisecond}))
	defer r.Close(context.Background())
	fails, err := r.Write(context.Background(), records(0, 5))
	if err != nil || len(fails) != 0 {
		t.Fatalf("fails=%v err=%v", fails, err)
	}
	got := s.landed()
	// The first write landed 1..3 (it reports 0 and 4 as not landed); the retry lands 0 and 4.
	for off := int64(0); off < 5; off++ {
		if got[off] != 1 {
			t.Fatalf("offset %d landed %d times", off, got[off])
		}
	}
	if len(s.batches) != 2 || len(s.batches[1]) != 2 {
		t.Fatalf("want a retry of exactly the 2 failed records, got batches %v", s.batches)
	}
}
