// Package sinktest is the conformance suite every sink must pass.
//
// A sink package calls Run from its tests with a constructor that opens a sink on a fresh
// destination (its own topic or table) of a real server, and a ReadBack that queries that
// server for what landed.
//
// A sink may run the suite in an external mode too: against a server it did not write
// (an emulator, or a real service), with the endpoints from environment variables and
// ReadBack querying the server the way a user would (for BigQuery, SQL through jobs.query;
// see TestSink_conformance_external in sinks/bigquery).
package sinktest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
)

// Features says which optional guarantees a sink claims; the suite checks each claimed one.
type Features struct {
	// Dedup: a record written again (a retried batch whose first attempt landed) lands once.
	Dedup bool
	// Targets: the sink honours Record.Target (e.g. a kafka topic per route). The suite sets
	// Target to the values returned by Target(t, i) for i in 0..1.
	Targets bool
	// ConcurrentWrites: Write may be called from several goroutines at once.
	ConcurrentWrites bool
}

// Env is one fresh destination under test.
type Env struct {
	// Sink writes to the fresh destination. The suite opens it (if it is a sinks.Opener) and
	// closes it.
	Sink sinks.Sink
	// ReadBack returns the id of every landed record (see ID), one entry per landed copy,
	// for records written with Target == target ("" for the default destination). It may be
	// called several times; it must return once everything written so far is visible.
	ReadBack func(t *testing.T, target string) []string
	// Target returns the i-th alternative target for Features.Targets.
	Target func(i int) string
}

// Run runs the conformance suite. newEnv is called once per sub-test and must return a sink
// on a destination no other sub-test uses, for records of Schema.
func Run(t *testing.T, f Features, newEnv func(t *testing.T, deps sinks.Deps) Env) {
	t.Helper()
	deps := func(t *testing.T) sinks.Deps {
		return sinks.Deps{Pipeline: "sinktest", Sink: "under-test", Schema: Schema, Logger: testLogger(t)}
	}
	open := func(t *testing.T) Env {
		env := newEnv(t, deps(t))
		if o, ok := env.Sink.(sinks.Opener); ok {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := o.Open(ctx); err != nil {
				t.Fatalf("open sink: %v", err)
			}
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := env.Sink.Close(ctx); err != nil {
				t.Errorf("close sink: %v", err)
			}
		})
		return env
	}
	assign := func(t *testing.T, s sinks.Sink, topic string, partitions int) {
		if l, ok := s.(sinks.AssignmentListener); ok {
			var tps []event.TopicPartition
			for p := range partitions {
				tps = append(tps, event.TopicPartition{Topic: topic, Partition: int32(p)})
			}
			if err := l.Assigned(context.Background(), tps); err != nil {
				t.Fatalf("assigned: %v", err)
			}
		}
	}

	t.Run("lands_every_record", func(t *testing.T) {
		env := open(t)
		recs := Records("src-land", "land", 300, 3)
		assign(t, env.Sink, "src-land", 3)
		for i := 0; i < len(recs); i += 100 {
			mustWrite(t, env.Sink, recs[i:i+100])
		}
		expectExactly(t, env.ReadBack(t, ""), ids(recs))
	})

	t.Run("empty_batch_is_a_no_op", func(t *testing.T) {
		env := open(t)
		mustWrite(t, env.Sink, nil)
		recs := Records("src-empty", "empty", 5, 1)
		assign(t, env.Sink, "src-empty", 1)
		mustWrite(t, env.Sink, recs)
		expectExactly(t, env.ReadBack(t, ""), ids(recs))
	})

	t.Run("retried_batch_lands_at_least_once", func(t *testing.T) {
		env := open(t)
		recs := Records("src-retry", "retry", 50, 2)
		assign(t, env.Sink, "src-retry", 2)
		mustWrite(t, env.Sink, recs)
		mustWrite(t, env.Sink, recs) // as if the first response was lost
		got := env.ReadBack(t, "")
		if f.Dedup {
			expectExactly(t, got, ids(recs))
			return
		}
		expectAtLeastOnce(t, got, ids(recs))
	})

	if f.ConcurrentWrites {
		t.Run("concurrent_writes", func(t *testing.T) {
			env := open(t)
			recs := Records("src-conc", "conc", 400, 4)
			assign(t, env.Sink, "src-conc", 4)
			byPart := map[int32][]*event.Record{}
			for _, r := range recs {
				byPart[r.Partition] = append(byPart[r.Partition], r)
			}
			var wg sync.WaitGroup
			errs := make(chan error, len(byPart))
			for _, part := range byPart {
				wg.Go(func() {
					for i := 0; i < len(part); i += 25 {
						if err := env.Sink.Write(context.Background(), part[i:min(i+25, len(part))]); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("concurrent write: %v", err)
			}
			expectExactly(t, env.ReadBack(t, ""), ids(recs))
		})
	}

	if f.Targets {
		t.Run("per_record_targets", func(t *testing.T) {
			env := open(t)
			recs := Records("src-target", "target", 30, 1)
			assign(t, env.Sink, "src-target", 1)
			want := map[string][]string{}
			for i, r := range recs {
				tgt := ""
				if i%3 != 0 {
					tgt = env.Target(i % 3)
				}
				r.Target = tgt
				want[tgt] = append(want[tgt], ID(r))
			}
			mustWrite(t, env.Sink, recs)
			for tgt, w := range want {
				expectExactly(t, env.ReadBack(t, tgt), w)
			}
		})
	}

	t.Run("canceled_context_does_not_hang", func(t *testing.T) {
		env := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = env.Sink.Write(ctx, Records("src-cancel", "cancel", 10, 1))
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Write with a canceled context did not return within 30s")
		}
	})
}

func mustWrite(t *testing.T, s sinks.Sink, recs []*event.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Write(ctx, recs); err != nil {
		t.Fatalf("write %d records: %v", len(recs), err)
	}
}

func ids(recs []*event.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = ID(r)
	}
	return out
}

func expectExactly(t *testing.T, got, want []string) {
	t.Helper()
	if diff := compare(got, want, true); diff != "" {
		t.Fatalf("landed records differ from written ones: %s", diff)
	}
}

func expectAtLeastOnce(t *testing.T, got, want []string) {
	t.Helper()
	if diff := compare(got, want, false); diff != "" {
		t.Fatalf("landed records differ from written ones: %s", diff)
	}
}

func compare(got, want []string, exact bool) string {
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	var missing, dup, extra []string
	for _, id := range want {
		switch n := count[id]; {
		case n == 0:
			missing = append(missing, id)
		case n > 1 && exact:
			dup = append(dup, id)
		}
		delete(count, id)
	}
	for id := range count {
		extra = append(extra, id)
	}
	if len(missing)+len(dup)+len(extra) == 0 {
		return ""
	}
	sort.Strings(missing)
	sort.Strings(dup)
	sort.Strings(extra)
	return fmt.Sprintf("%d written, %d landed; missing %v; duplicated %v; unexpected %v",
		len(want), len(got), head(missing), head(dup), head(extra))
}

func head(s []string) []string {
	if len(s) > 10 {
		return append(s[:10:10], fmt.Sprintf("... (%d more)", len(s)-10))
	}
	return s
}
