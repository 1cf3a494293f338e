package clickhouse

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks/sinktest"
)

func assign(t testing.TB, s *Sink, topic string, partitions ...int32) {
	t.Helper()
	var tps []event.TopicPartition
	for _, p := range partitions {
		tps = append(tps, event.TopicPartition{Topic: topic, Partition: p})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Assigned(ctx, tps); err != nil {
		t.Fatalf("assigned: %v", err)
	}
}

// byOffset returns the records of partition p with offsets in [lo, hi].
func byOffset(recs []*event.Record, p int32, lo, hi int64) []*event.Record {
	var out []*event.Record
	for _, r := range recs {
		if r.Partition == p && r.Offset >= lo && r.Offset <= hi {
			out = append(out, r)
		}
	}
	return out
}

func expectOnce(t testing.TB, table string, want int) {
	t.Helper()
	got := server.Query(t, "SELECT count(), uniqExact(_topic, _partition, _offset) FROM default."+table)[0]
	if w := strconv.Itoa(want); got[0] != w || got[1] != w {
		t.Fatalf("count, unique rows = %s, %s; want %d, %d", got[0], got[1], want, want)
	}
}

// TestSink_dedup_after_restart: a new sink instance (as after a crash or a rebalance) is handed
// records again from before the last commit; those already in the table are skipped.
func TestSink_dedup_after_restart(t *testing.T) {
	for _, announced := range []bool{true, false} {
		name := "assigned"
		if !announced {
			name = "not_assigned" // the sink loads partition state on first sight
		}
		t.Run(name, func(t *testing.T) {
			table := newTable(t)
			recs := sinktest.Records("src", "restart", 400, 2) // 200 per partition
			a := openSink(t, testConfig(table), testDeps(t, sinktest.Schema))
			assign(t, a, "src", 0, 1)
			if err := write(t, a, append(byOffset(recs, 0, 0, 99), byOffset(recs, 1, 0, 49)...)...); err != nil {
				t.Fatal(err)
			}
			a.Close(context.Background()) // "crash": nothing was committed

			b := openSink(t, testConfig(table), testDeps(t, sinktest.Schema))
			if announced {
				assign(t, b, "src", 0, 1)
			}
			// Redelivery from the committed offset (0) in batches that straddle what landed.
			for _, batch := range [][]*event.Record{
				append(byOffset(recs, 0, 0, 149), byOffset(recs, 1, 0, 24)...),
				append(byOffset(recs, 0, 150, 199), byOffset(recs, 1, 25, 199)...),
			} {
				if err := write(t, b, batch...); err != nil {
					t.Fatal(err)
				}
			}
			expectOnce(t, table, 400)
		})
	}
}

// TestSink_dedup_fills_gaps: a later batch of a partition landed while an earlier one did not
// (it failed, then the process died). After restart the earlier records must land although
// their offsets are below the partition's highest landed offset.
func TestSink_dedup_fills_gaps(t *testing.T) {
	table := newTable(t)
	recs := sinktest.Records("src", "gap", 300, 1)
	a := openSink(t, testConfig(table), testDeps(t, sinktest.Schema))
	assign(t, a, "src", 0)
	if err := write(t, a, byOffset(recs, 0, 100, 199)...); err != nil {
		t.Fatal(err)
	}
	a.Close(context.Background())

	b := openSink(t, testConfig(table), testDeps(t, sinktest.Schema))
	assign(t, b, "src", 0)
	if err := write(t, b, recs...); err != nil {
		t.Fatal(err)
	}
	expectOnce(t, table, 300)
}

// TestSink_dedup_within_batch: a record repeated in one batch lands once.
func TestSink_dedup_within_batch(t *testing.T) {
	table := newTable(t)
	recs := sinktest.Records("src", "repeat", 10, 1)
	s := openSink(t, testConfig(table), testDeps(t, sinktest.Schema))
	assign(t, s, "src", 0)
	batch := append(append([]*event.Record{}, recs...), recs[3], recs[0], recs[9])
	if err := write(t, s, batch...); err != nil {
		t.Fatal(err)
	}
	expectOnce(t, table, 10)
}

// TestSink_dedup_after_failed_insert: an insert that fails may still have landed, so its
// offsets are looked up before the retry writes them.
func TestSink_dedup_after_failed_insert(t *testing.T) {
	table := newTable(t)
	recs := sinktest.Records("src", "failed", 50, 1)
	s := openSink(t, testConfig(table), testDeps(t, sinktest.Schema))
	assign(t, s, "src", 0)
	// Land the batch through a second sink, as if this one's insert had landed but its
	// response was lost; then record the failed attempt the way Write does.
	other := openSink(t, testConfig(table), testDeps(t, sinktest.Schema))
	if err := write(t, other, recs...); err != nil {
		t.Fatal(err)
	}
	s.attempted([]*batchPart{{state: s.dedup.parts[event.TopicPartition{Topic: "src", Partition: 0}], written: 49}})
	if err := write(t, s, recs...); err != nil {
		t.Fatal(err)
	}
	expectOnce(t, table, 50)
}
