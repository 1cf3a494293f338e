package harness_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/integration/harness"
)

// TestKafka_produce_consume_restart starts a real broker, round-trips a
// record through a consumer group, then restarts the broker and reads the
// record again from the same ports and data.
func TestKafka_produce_consume_restart(t *testing.T) {
	t.Parallel()
	start := time.Now()
	k := harness.StartKafka(t)
	t.Logf("kafka start-up: %s", time.Since(start).Round(time.Millisecond))
	brokers := k.Brokers()

	topic := "harness-roundtrip"
	k.CreateTopic(t, topic, 3)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	producer := k.NewClient(t)
	rec := &kgo.Record{Topic: topic, Key: []byte("k1"), Value: []byte("hello kafka")}
	if err := producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	got := consumeOne(ctx, t, k, topic, "harness-group-1")
	if string(got.Key) != "k1" || string(got.Value) != "hello kafka" || got.Partition != rec.Partition || got.Offset != rec.Offset {
		t.Fatalf("consumed %s/%s at %d/%d, want k1/hello kafka at %d/%d",
			got.Key, got.Value, got.Partition, got.Offset, rec.Partition, rec.Offset)
	}

	start = time.Now()
	k.Stop()
	t.Logf("kafka stop: %s", time.Since(start).Round(time.Millisecond))
	if conn, err := net.DialTimeout("tcp", brokers[0], time.Second); err == nil {
		conn.Close()
		t.Fatalf("broker %s still accepts connections after Stop", brokers[0])
	}
	start = time.Now()
	k.Restart(t)
	t.Logf("kafka restart: %s", time.Since(start).Round(time.Millisecond))
	if !slices.Equal(k.Brokers(), brokers) {
		t.Fatalf("brokers after restart = %v, want %v", k.Brokers(), brokers)
	}
	got = consumeOne(ctx, t, k, topic, "harness-group-2")
	if string(got.Value) != "hello kafka" {
		t.Fatalf("after restart consumed %q, want %q", got.Value, "hello kafka")
	}
}

// consumeOne reads the first record of topic with a new consumer group and
// commits it.
func consumeOne(ctx context.Context, t *testing.T, k *harness.Kafka, topic, group string) *kgo.Record {
	t.Helper()
	cl := k.NewClient(t,
		kgo.ConsumeTopics(topic),
		kgo.ConsumerGroup(group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)
	for {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume %s: no record before deadline: %v", topic, err)
		}
		var errs []error
		fetches.EachError(func(t string, p int32, err error) {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", t, p, err))
		})
		if len(errs) > 0 {
			t.Fatalf("consume %s: %v", topic, errors.Join(errs...))
		}
		if recs := fetches.Records(); len(recs) > 0 {
			if err := cl.CommitRecords(ctx, recs[0]); err != nil {
				t.Fatalf("commit offset in group %s: %v", group, err)
			}
			return recs[0]
		}
	}
}

// TestClickHouse_batch_insert starts a real server, inserts rows with a
// clickhouse-go batch that names its columns, reads them back over both
// protocols, then restarts the server and checks the rows survived.
func TestClickHouse_batch_insert(t *testing.T) {
	t.Parallel()
	start := time.Now()
	ch := harness.StartClickHouse(t)
	t.Logf("clickhouse %s start-up: %s", ch.Version(), time.Since(start).Round(time.Millisecond))
	if ch.Version() == "" {
		t.Fatal("Version() is empty after start")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := ch.Open(t)
	if err := conn.Exec(ctx, `CREATE TABLE harness_batch (a UInt32, b String, c DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY a`); err != nil {
		t.Fatalf("create table: %v", err)
	}

	batch, err := conn.PrepareBatch(ctx, "INSERT INTO harness_batch (a, b)")
	if err != nil {
		t.Fatalf("prepare batch: %v", err)
	}
	want := []struct {
		a uint32
		b string
	}{{1, "one"}, {2, "two\ttabbed"}, {3, "three"}}
	for _, r := range want {
		if err := batch.Append(r.a, r.b); err != nil {
			t.Fatalf("append row %d: %v", r.a, err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("send batch: %v", err)
	}

	rows, err := conn.Query(ctx, "SELECT a, b FROM harness_batch ORDER BY a")
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	var n int
	for rows.Next() {
		var a uint32
		var b string
		if err := rows.Scan(&a, &b); err != nil {
			t.Fatalf("scan: %v", err)
		}
		if n >= len(want) || a != want[n].a || b != want[n].b {
			t.Fatalf("row %d = (%d, %q), want %v", n, a, b, want)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("rows: %v", err)
	}
	if n != len(want) {
		t.Fatalf("read %d rows, want %d", n, len(want))
	}

	start = time.Now()
	ch.Stop()
	t.Logf("clickhouse stop: %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	ch.Start(t)
	t.Logf("clickhouse restart: %s", time.Since(start).Round(time.Millisecond))
	got := ch.Query(t, "SELECT a, b FROM harness_batch ORDER BY a")
	wantTSV := [][]string{{"1", "one"}, {"2", "two\ttabbed"}, {"3", "three"}}
	if !slices.EqualFunc(got, wantTSV, slices.Equal) {
		t.Fatalf("after restart Query = %q, want %q", got, wantTSV)
	}
}
