package sinks_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
)

// A caller that gave up (its partition was revoked or lost, so its context was canceled)
// while its records waited for a retry: the runner drops them instead of writing them.
func TestRunner_drops_records_whose_caller_gave_up(t *testing.T) {
	fail := func([]*event.Record) error { return errors.New("connection refused") }
	s := &scriptSink{script: []func([]*event.Record) error{fail}}
	opt := fast(sinks.RunnerOptions{MaxRows: 10, Interval: time.Millisecond, MaxAttempts: 0})
	opt.InitialBackoff, opt.MaxBackoff = 100*time.Millisecond, 100*time.Millisecond
	r := sinks.NewRunner(s, opt)
	defer r.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := r.Write(ctx, records(0, 10)); done <- err }()
	waitCalls(t, s, 1)
	cancel() // during the backoff
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Write returned %v, want context.Canceled", err)
	}
	if err := r.WaitIdle(context.Background(), []event.TopicPartition{{Topic: "t"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // past the backoff
	if got := s.landed(); len(got) != 0 {
		t.Fatalf("records of a caller that gave up were written: %v", got)
	}
	// The runner still writes for others.
	if _, err := r.Write(context.Background(), records(10, 3)); err != nil {
		t.Fatal(err)
	}
	if got := s.landed(); len(got) != 3 {
		t.Fatalf("landed %v, want offsets 10..12", got)
	}
}

// Guard runs before every attempt; while it fails the sink is not called, and the attempt
// counts as a transient failure that is retried.
func TestRunner_guard_holds_writes(t *testing.T) {
	s := &scriptSink{}
	var calls atomic.Int32
	opt := fast(sinks.RunnerOptions{MaxRows: 10, Interval: time.Millisecond})
	opt.Guard = func(context.Context) error {
		if calls.Add(1) <= 2 {
			return errors.New("membership not confirmed")
		}
		return nil
	}
	r := sinks.NewRunner(s, opt)
	defer r.Close(context.Background())
	if _, err := r.Write(context.Background(), records(0, 10)); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || s.calls != 1 || len(s.landed()) != 10 {
		t.Fatalf("guard calls %d, sink calls %d, landed %d; want 3, 1, 10", calls.Load(), s.calls, len(s.landed()))
	}
}

// WaitIdle returns only once the write attempt under way for the partition has ended.
func TestRunner_wait_idle_waits_for_the_write_under_way(t *testing.T) {
	s := &scriptSink{delay: 150 * time.Millisecond}
	r := sinks.NewRunner(s, fast(sinks.RunnerOptions{MaxRows: 10, Interval: time.Millisecond}))
	defer r.Close(context.Background())
	go func() { _, _ = r.Write(context.Background(), records(0, 10)) }()
	waitFor := time.Now().Add(5 * time.Second)
	for s.inFlight.Load() == 0 {
		if time.Now().After(waitFor) {
			t.Fatal("the write never started")
		}
		time.Sleep(time.Millisecond)
	}
	if err := r.WaitIdle(context.Background(), []event.TopicPartition{{Topic: "other"}}); err != nil {
		t.Fatalf("another partition is idle: %v", err)
	}
	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := r.WaitIdle(short, []event.TopicPartition{{Topic: "t"}}); err == nil {
		t.Fatal("WaitIdle returned while the write was under way")
	}
	if err := r.WaitIdle(context.Background(), []event.TopicPartition{{Topic: "t"}}); err != nil {
		t.Fatal(err)
	}
	if got := s.landed(); len(got) != 10 {
		t.Fatalf("WaitIdle returned before the write ended: landed %d", len(got))
	}
}

func waitCalls(t *testing.T, s *scriptSink, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		c := s.calls
		s.mu.Unlock()
		if c >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink called %d times, want %d", c, n)
		}
		time.Sleep(time.Millisecond)
	}
}
