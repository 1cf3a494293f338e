package bigquery

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/bigquery/bqfake"
	"github.com/switchyard-dev/switchyard/sinks/sinktest"
)

var modes = []struct {
	name        string
	exactlyOnce bool
}{{"at_least_once", false}, {"exactly_once", true}}

// openMode opens a sink on a fresh table in the given mode and tells it its partitions.
func openMode(t *testing.T, e *fakeEnv, exactlyOnce bool, topic string, partitions int, edit func(*Config)) (*Sink, string) {
	t.Helper()
	table := e.table("faults")
	s := newSink(t, e, table, sinktest.Schema, func(c *Config) {
		c.ExactlyOnce = exactlyOnce
		if edit != nil {
			edit(c)
		}
	})
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	var tps []event.TopicPartition
	for p := range partitions {
		tps = append(tps, event.TopicPartition{Topic: topic, Partition: int32(p)})
	}
	if err := s.Assigned(context.Background(), tps); err != nil {
		t.Fatal(err)
	}
	return s, table
}

// deliver writes recs the way the engine does: transient errors are retried with backoff,
// records in a BatchError's Failed are dropped (dead-lettered), those in Retry (and, when
// Landed is false, all others) are written again. It returns the dead-lettered records' ids
// and the number of attempts.
func deliver(t *testing.T, s *Sink, recs []*event.Record) (dead []string, attempts int) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	pending := recs
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("records did not land in 45s")
		}
		attempts++
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := s.Write(ctx, pending)
		cancel()
		var be *sinks.BatchError
		switch {
		case err == nil:
			return dead, attempts
		case errors.As(err, &be):
			var rest []*event.Record
			for i, r := range pending {
				if _, ok := be.Failed[i]; ok {
					dead = append(dead, sinktest.ID(r))
					continue
				}
				if _, ok := be.Retry[i]; ok || !be.Landed {
					rest = append(rest, r)
				}
			}
			pending = rest
		case sinks.IsPermanent(err):
			t.Fatalf("permanent error: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return dead, attempts
}

func idsOf(recs []*event.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = sinktest.ID(r)
	}
	return out
}

// checkLanded compares landed ids with the written ones: each must be there, exactly once
// when exact.
func checkLanded(t *testing.T, got, want []string, exact bool) {
	t.Helper()
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	var missing, dup []string
	for _, id := range want {
		switch n := count[id]; {
		case n == 0:
			missing = append(missing, id)
		case n > 1 && exact:
			dup = append(dup, id)
		}
		delete(count, id)
	}
	var extra []string
	for id := range count {
		extra = append(extra, id)
	}
	sort.Strings(extra)
	if len(missing)+len(dup)+len(extra) > 0 {
		t.Fatalf("%d written, %d landed: missing %v, duplicated %v, unexpected %v", len(want), len(got), missing, dup, extra)
	}
}

// TestSink_unavailable_bursts_lose_nothing: bursts of UNAVAILABLE, some after the write took
// effect, some longer than the client library retries: every record lands (exactly once in
// exactly_once mode).
func TestSink_unavailable_bursts_lose_nothing(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			e := newFakeEnv(t)
			s, table := openMode(t, e, mode.exactlyOnce, "src-burst", 2, nil)
			recs := sinktest.Records("src-burst", "burst", 240, 2)
			bursts := []struct {
				n     int
				fault bqfake.Fault
			}{
				{1, bqfake.Fault{Code: codes.Unavailable}},
				{1, bqfake.Fault{Code: codes.Unavailable, AfterWrite: true}},
				{8, bqfake.Fault{Code: codes.Unavailable, InBand: true}}, // more than the library retries (per stream)
				{2, bqfake.Fault{Code: codes.Unavailable, AfterWrite: true}},
			}
			totalAttempts := 0
			for i := 0; i < len(recs); i += 60 {
				b := bursts[(i/60)%len(bursts)]
				e.fake.FailAppends(b.n, b.fault)
				dead, attempts := deliver(t, s, recs[i:i+60])
				if len(dead) > 0 {
					t.Fatalf("dead-lettered %v", dead)
				}
				totalAttempts += attempts
			}
			if totalAttempts <= len(recs)/60 {
				t.Errorf("no Write needed a retry (%d attempts): the faults did not bite", totalAttempts)
			}
			checkLanded(t, e.ids(t, table), idsOf(recs), mode.exactlyOnce)
		})
	}
}

// TestSink_lost_response_exactly_once: a write that took effect but whose response was
// lost, even when the client library gives up retrying it, lands once.
func TestSink_lost_response_exactly_once(t *testing.T) {
	t.Parallel()
	e := newFakeEnv(t)
	s, table := openMode(t, e, true, "src-lost", 1, nil)
	recs := sinktest.Records("src-lost", "lost", 60, 1)
	ctx := context.Background()

	// Retried by the library: ALREADY_EXISTS counts as landed.
	e.fake.FailAppends(1, bqfake.Fault{Code: codes.Unavailable, AfterWrite: true})
	if err := s.Write(ctx, recs[:20]); err != nil {
		t.Fatalf("write with a lost response: %v", err)
	}

	// The library gives up: Write reports a transient error; the retry settles the doubt by
	// finalizing the stream and continues on a new one.
	e.fake.FailAppends(1, bqfake.Fault{Code: codes.Unavailable, AfterWrite: true})
	e.fake.FailAppends(4, bqfake.Fault{Code: codes.Unavailable})
	err := s.Write(ctx, recs[20:40])
	var be *sinks.BatchError
	if err == nil || errors.As(err, &be) || sinks.IsPermanent(err) {
		t.Fatalf("write whose outcome is unknown: got %v, want a transient error", err)
	}
	if err := s.Write(ctx, recs[20:60]); err != nil {
		t.Fatalf("retried write: %v", err)
	}
	checkLanded(t, e.ids(t, table), idsOf(recs), true)
	streams := e.fake.Streams(testProject, testDataset, table)
	if len(streams) != 2 || !e.fake.StreamFinalized(streams[0]) {
		t.Fatalf("streams %v: want the first finalized and a second one", streams)
	}
}

// TestSink_canceled_append_exactly_once: Write gives up (its context ends) while the append
// is still on its way; the append lands later or not at all, never twice.
func TestSink_canceled_append_exactly_once(t *testing.T) {
	t.Parallel()
	e := newFakeEnv(t)
	s, table := openMode(t, e, true, "src-cancel", 1, nil)
	recs := sinktest.Records("src-cancel", "cancel", 30, 1)
	e.fake.SetLatency(500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err := s.Write(ctx, recs)
	cancel()
	if err == nil {
		t.Fatal("write with an expired context succeeded")
	}
	e.fake.SetLatency(0)
	if dead, _ := deliver(t, s, recs); len(dead) > 0 {
		t.Fatalf("dead-lettered %v", dead)
	}
	// Let the delayed append reach its (finalized) stream before counting.
	for deadline := time.Now().Add(10 * time.Second); e.fake.InFlight() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the delayed append was not answered within 10s")
		}
	}
	checkLanded(t, e.ids(t, table), idsOf(recs), true)
}

// TestSink_row_errors_fail_only_those_rows: rows BigQuery rejects are reported in Failed;
// the rest of the batch lands, once.
func TestSink_row_errors_fail_only_those_rows(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			e := newFakeEnv(t)
			s, table := openMode(t, e, mode.exactlyOnce, "src-rows", 2, func(c *Config) { c.MaxRequestBytes = 4096 })
			recs := sinktest.Records("src-rows", "rows", 100, 2)
			bad := map[string]bool{"rows-3": true, "rows-17": true, "rows-90": true}
			e.fake.RejectRows(func(_ string, r bqfake.Row) string {
				if bad[r["id"].(string)] {
					return "value rejected by a check constraint"
				}
				return ""
			})
			// And one event that cannot become a row: its timestamp is past year 9999.
			m := recs[50].Message.(*dynamicpb.Message)
			m.Set(sinktest.Schema.Fields().ByName("occurred_at"), protoreflectValue(timestamppb.New(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))))
			err := s.Write(context.Background(), recs)
			var be *sinks.BatchError
			if !errors.As(err, &be) {
				t.Fatalf("write: got %v, want a *sinks.BatchError", err)
			}
			var failed []string
			for i, ferr := range be.Failed {
				failed = append(failed, sinktest.ID(recs[i]))
				if !strings.Contains(ferr.Error(), "check constraint") && !strings.Contains(ferr.Error(), "TIMESTAMP range") {
					t.Errorf("record %d: unexpected reason %v", i, ferr)
				}
			}
			sort.Strings(failed)
			if got := strings.Join(failed, ","); got != "rows-17,rows-3,rows-50,rows-90" || !be.Landed {
				t.Fatalf("failed %s (landed %v); want rows-17,rows-3,rows-50,rows-90 and the rest landed", got, be.Landed)
			}
			var want []string
			for _, r := range recs {
				if id := sinktest.ID(r); !bad[id] && id != "rows-50" {
					want = append(want, id)
				}
			}
			checkLanded(t, e.ids(t, table), want, true)
			if e.fake.Appends() < 4 {
				t.Errorf("%d appends: the 4KiB request limit should have split the batch", e.fake.Appends())
			}
		})
	}
}

// TestSink_transient_codes: UNAVAILABLE, RESOURCE_EXHAUSTED, INTERNAL and ABORTED that
// outlast the client library's retries come back as transient errors, and nothing is lost.
func TestSink_transient_codes(t *testing.T) {
	t.Parallel()
	e := newFakeEnv(t)
	s, table := openMode(t, e, false, "src-codes", 1, nil)
	recs := sinktest.Records("src-codes", "codes", 40, 1)
	for i, f := range []bqfake.Fault{
		{Code: codes.ResourceExhausted, Message: "Exceeds 'Concurrent connections' quota", InBand: true}, // not retried by the library
		{Code: codes.Unavailable, InBand: true},
		{Code: codes.Internal, InBand: true},
		{Code: codes.Aborted, InBand: true},
	} {
		e.fake.FailAppends(4, f)
		batch := recs[i*10 : i*10+10]
		err := s.Write(context.Background(), batch)
		var be *sinks.BatchError
		if err == nil || errors.As(err, &be) || sinks.IsPermanent(err) || !strings.Contains(err.Error(), f.Code.String()) {
			t.Fatalf("%s: got %v, want a transient error", f.Code, err)
		}
		for e.fake.PendingFaults() > 0 { // drain what the library did not use
			_ = s.Write(context.Background(), batch)
		}
		if dead, _ := deliver(t, s, batch); len(dead) > 0 {
			t.Fatalf("dead-lettered %v", dead)
		}
	}
	checkLanded(t, e.ids(t, table), idsOf(recs), false)
}

// TestSink_exactly_once_resumes_after_restart: a new sink instance (a restart, or another
// owner after a rebalance) skips what the table already holds.
func TestSink_exactly_once_resumes_after_restart(t *testing.T) {
	e := newFakeEnv(t)
	a, table := openMode(t, e, true, "src-restart", 2, nil)
	recs := sinktest.Records("src-restart", "restart", 300, 2) // offsets 0..149 per partition
	ctx := context.Background()
	if err := a.Write(ctx, recs[:200]); err != nil {
		t.Fatal(err)
	}
	// A rebalance takes partition 0 away from a: its stream is finalized.
	a.Revoked(ctx, []event.TopicPartition{{Topic: "src-restart", Partition: 0}})
	streams := e.fake.Streams(testProject, testDataset, table)
	finalized := 0
	for _, name := range streams {
		if e.fake.StreamFinalized(name) {
			finalized++
		}
	}
	if len(streams) != 2 || finalized != 1 {
		t.Fatalf("after revoking one partition: %d streams, %d finalized; want 2 and 1", len(streams), finalized)
	}

	// b starts without a's memory (a crashed, say) and is handed records from before the
	// last commit: 100..299, of which 100..199 landed already.
	b := newSink(t, e, table, sinktest.Schema, func(c *Config) { c.ExactlyOnce = true })
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	queries := e.fake.Queries()
	if err := b.Assigned(ctx, []event.TopicPartition{{Topic: "src-restart", Partition: 0}, {Topic: "src-restart", Partition: 1}}); err != nil {
		t.Fatal(err)
	}
	if e.fake.Queries() != queries+1 {
		t.Fatalf("assigning two partitions of one topic ran %d queries, want 1", e.fake.Queries()-queries)
	}
	if err := b.Write(ctx, recs[100:]); err != nil {
		t.Fatal(err)
	}
	checkLanded(t, e.ids(t, table), idsOf(recs), true)
}

// TestSink_exactly_once_out_of_order_batches: batches of a partition may reach the sink out
// of order (the engine writes several at once). Nothing is skipped, and after a crash in
// the middle the table has a later batch but not an earlier one: a new sink instance lands
// the earlier one and skips the later one.
func TestSink_exactly_once_out_of_order_batches(t *testing.T) {
	e := newFakeEnv(t)
	a, table := openMode(t, e, true, "src-ooo", 1, nil)
	recs := sinktest.Records("src-ooo", "ooo", 90, 1)
	ctx := context.Background()
	if err := a.Write(ctx, recs[30:60]); err != nil {
		t.Fatal(err)
	}
	if err := a.Write(ctx, recs[:30]); err != nil { // the earlier batch, after the later one
		t.Fatal(err)
	}
	if err := a.Write(ctx, recs[60:75]); err != nil {
		t.Fatal(err)
	}
	checkLanded(t, e.ids(t, table), idsOf(recs[:75]), true)

	// Another instance with a table that holds 60..74 but none of 0..74 otherwise, as if
	// a wrote 60..74 first and crashed.
	other := e.table("ooo_crash")
	c := newSink(t, e, other, sinktest.Schema, func(c *Config) { c.ExactlyOnce = true })
	if err := c.Write(ctx, recs[60:75]); err != nil {
		t.Fatal(err)
	}
	b := newSink(t, e, other, sinktest.Schema, func(c *Config) { c.ExactlyOnce = true })
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Assigned(ctx, []event.TopicPartition{{Topic: "src-ooo", Partition: 0}}); err != nil {
		t.Fatal(err)
	}
	if dead, _ := deliver(t, b, recs); len(dead) > 0 {
		t.Fatal(dead)
	}
	checkLanded(t, e.ids(t, other), idsOf(recs), true)
}

// TestSink_partial_failure_retries_only_unlanded_rows: when one request of a batch fails
// transiently and the others land, only its records are handed back for retry.
func TestSink_partial_failure_retries_only_unlanded_rows(t *testing.T) {
	e := newFakeEnv(t)
	s, table := openMode(t, e, false, "src-partial", 1, func(c *Config) { c.MaxRequestBytes = 4096 })
	recs := sinktest.Records("src-partial", "partial", 100, 1)
	e.fake.FailAppends(1, bqfake.Fault{Code: codes.ResourceExhausted, Message: "Exceeds 'Concurrent connections' quota", InBand: true})
	err := s.Write(context.Background(), recs)
	var be *sinks.BatchError
	if !errors.As(err, &be) || !be.Landed || len(be.Failed) != 0 || len(be.Retry) == 0 || len(be.Retry) == len(recs) {
		t.Fatalf("write: got %v, want a BatchError with some records to retry and the rest landed", err)
	}
	var again []*event.Record
	for i := range be.Retry {
		again = append(again, recs[i])
	}
	if dead, _ := deliver(t, s, again); len(dead) > 0 {
		t.Fatal(dead)
	}
	checkLanded(t, e.ids(t, table), idsOf(recs), true) // exact: the landed requests were not sent again
}

func TestSink_row_larger_than_request_limit_fails(t *testing.T) {
	e := newFakeEnv(t)
	s, table := openMode(t, e, false, "src-big", 1, func(c *Config) { c.MaxRequestBytes = 2048 })
	recs := sinktest.Records("src-big", "big", 3, 1)
	m := recs[1].Message.(*dynamicpb.Message)
	tags := m.Mutable(sinktest.Schema.Fields().ByName("tags")).List()
	for range 100 {
		tags.Append(protoreflectString(strings.Repeat("t", 30)))
	}
	err := s.Write(context.Background(), recs)
	var be *sinks.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[1] == nil || !be.Landed {
		t.Fatalf("write: got %v, want record 1 failed and the rest landed", err)
	}
	if !strings.Contains(be.Failed[1].Error(), "exceeds max_request_bytes") || !errors.Is(be.Failed[1], sinks.ErrTooLarge) {
		t.Errorf("reason: %v, want an ErrTooLarge (dead-lettered as too_large)", be.Failed[1])
	}
	checkLanded(t, e.ids(t, table), []string{"big-0", "big-2"}, true)
}

func protoreflectValue(m proto.Message) protoreflect.Value {
	return protoreflect.ValueOfMessage(m.ProtoReflect())
}

func protoreflectString(s string) protoreflect.Value { return protoreflect.ValueOfString(s) }
