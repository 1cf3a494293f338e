package app

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestReadRanges reads offset ranges of a kfake topic without a group: exactly the records
// inside each range, in order, in batches of at most the maximum; a range whose end is a
// transaction marker (no record) ends once nothing more arrives.
func TestReadRanges(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "in", "txn"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seed := kgo.SeedBrokers(c.ListenAddrs()...)
	prod, err := kgo.NewClient(seed)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx := context.Background()
	var recs []*kgo.Record
	for i := range 40 {
		recs = append(recs, &kgo.Record{Topic: "in", Partition: int32(i % 2), Value: []byte(fmt.Sprint(i))})
	}
	cl, err := kgo.NewClient(seed, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// One transaction of 5 records on txn/0: offsets 0-4, its commit marker at 5.
	tx, err := kgo.NewClient(seed, kgo.TransactionalID("t"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := tx.ProduceSync(ctx, &kgo.Record{Topic: "txn", Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	ends, err := listed(kadm.NewClient(prod).ListEndOffsets(ctx, "txn"))
	if err != nil || ends[tp{"txn", 0}] != 6 {
		t.Fatalf("txn/0 ends at %v (%v), want 6 (5 records and a marker)", ends[tp{"txn", 0}], err)
	}

	ranges := []partRange{
		{tp: tp{"in", 0}, From: 5, To: 12},
		{tp: tp{"in", 1}, From: 0, To: 20},
		{tp: tp{"txn", 0}, From: 2, To: 6},
		{tp: tp{"txn", 1}, From: 0, To: 0}, // empty: not read
	}
	reader, err := kgo.NewClient(seed, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	got := map[tp][]int64{}
	idleEnded := map[tp]int64{}
	start := time.Now()
	next, err := readRanges(ctx, reader, ranges, 4, 300*time.Millisecond, idleEnded, func(rs []*kgo.Record) error {
		if len(rs) > 4 {
			t.Errorf("batch of %d records, want at most 4", len(rs))
		}
		for _, r := range rs {
			got[tp{r.Topic, r.Partition}] = append(got[tp{r.Topic, r.Partition}], r.Offset)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[tp][]int64{{"in", 0}: {5, 6, 7, 8, 9, 10, 11}, {"in", 1}: seq(0, 20), {"txn", 0}: {2, 3, 4}}
	for k, w := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Errorf("%s: read %v, want %v", k, got[k], w)
		}
	}
	if next[tp{"in", 0}] != 12 || next[tp{"in", 1}] != 20 || next[tp{"txn", 0}] != 5 {
		t.Errorf("next = %v, want in/0 12, in/1 20, txn/0 5", next)
	}
	if len(idleEnded) != 1 || idleEnded[tp{"txn", 0}] != 6 {
		t.Errorf("idleEnded = %v, want only txn/0 (its end is a marker)", idleEnded)
	}
	t.Logf("read in %v", time.Since(start))
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}
