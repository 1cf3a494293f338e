package source

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// newCluster starts an in-process Kafka with one broker, closed when the test ends.
func newCluster(tb testing.TB, opts ...kfake.Opt) []string {
	tb.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c.ListenAddrs()
}

func testLogger(tb testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func admin(tb testing.TB, brokers []string) *kadm.Client {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// createTopic creates a topic with the given partitions.
func createTopic(tb testing.TB, brokers []string, topic string, partitions int32) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := admin(tb, brokers).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		tb.Fatalf("create topic %s: %v", topic, err)
	}
}

// produce writes n records with values "0".."n-1" (offset order) to one partition.
func produce(tb testing.TB, brokers []string, topic string, partition int32, n int) {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: []byte(strconv.Itoa(i))}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		tb.Fatalf("produce to %s/%d: %v", topic, partition, err)
	}
}

// committed returns the group's committed offsets of topic by partition.
func committed(tb testing.TB, brokers []string, group, topic string) map[int32]int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offs, err := admin(tb, brokers).FetchOffsets(ctx, group)
	if err != nil {
		tb.Fatalf("fetch offsets of group %s: %v", group, err)
	}
	out := make(map[int32]int64)
	for p, o := range offs[topic] {
		if o.Err != nil {
			tb.Fatalf("fetch offset of %s/%d: %v", topic, p, o.Err)
		}
		out[p] = o.At
	}
	return out
}

// start creates and subscribes a Source, closed when the test ends.
func start(tb testing.TB, cfg Config) (*Source, <-chan *message.Message) {
	tb.Helper()
	src, err := New(cfg, testLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	ch, err := src.Subscribe(context.Background(), "label")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = src.Close() })
	return src, ch
}

// receive returns the next message, failing the test if none arrives within timeout.
func receive(tb testing.TB, ch <-chan *message.Message, timeout time.Duration) *message.Message {
	tb.Helper()
	select {
	case msg, ok := <-ch:
		if !ok {
			tb.Fatal("source channel closed")
		}
		return msg
	case <-time.After(timeout):
		tb.Fatalf("no message within %v", timeout)
		return nil
	}
}

// offsets lists the offsets of a message's batch.
func offsets(msg *message.Message) []int64 {
	b := BatchOf(msg)
	out := make([]int64, len(b.Records))
	for i, r := range b.Records {
		out[i] = r.Offset
	}
	return out
}

// checkBatch fails unless msg holds 1..max contiguous records of one partition.
func checkBatch(tb testing.TB, msg *message.Message, maxRecords int) *Batch {
	tb.Helper()
	b := BatchOf(msg)
	if b == nil {
		tb.Fatalf("message %s carries no batch", msg.UUID)
	}
	if len(b.Records) == 0 || len(b.Records) > maxRecords {
		tb.Fatalf("batch of %d records, want 1..%d", len(b.Records), maxRecords)
	}
	for i, r := range b.Records {
		if r.Topic != b.Topic || r.Partition != b.Partition {
			tb.Fatalf("record %d of batch %s/%d is from %s/%d", i, b.Topic, b.Partition, r.Topic, r.Partition)
		}
		if i > 0 && r.Offset != b.Records[i-1].Offset+1 {
			tb.Fatalf("batch offsets not contiguous: %v", offsets(msg))
		}
	}
	return b
}

// waitFor polls cond every 10ms until it holds or the deadline passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fastGroupOpts() []kgo.Opt {
	return []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)}
}

func seeds(brokers []string, extra ...kgo.Opt) []kgo.Opt {
	return append(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, fastGroupOpts()...), extra...)
}

func tpName(topic string, p int32) string { return fmt.Sprintf("%s/%d", topic, p) }
