package source

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/internal/event"
)

// TestCheckpoint: of five records, 1, 2 and 4 are acked and 3 nacked. 3 is redelivered while
// the source runs; after a restart the group resumes exactly at 3: 3, 4 and 5 come again and
// nothing before.
func TestCheckpoint(t *testing.T) {
	brokers := newCluster(t)
	testCheckpoint(t, brokers, "checkpoint", nil)
}

func testCheckpoint(t *testing.T, brokers []string, topic string, extra []kgo.Opt) {
	createTopic(t, brokers, topic, 1)
	produce(t, brokers, topic, 0, 5)
	cfg := Config{
		Kafka:          seeds(brokers, extra...),
		Group:          topic + "-group",
		Topics:         []string{topic},
		MaxBatch:       1,
		DrainTimeout:   300 * time.Millisecond,
		CommitInterval: 20 * time.Millisecond,
	}

	src, ch := start(t, cfg)
	var msgs []*message.Message
	for i := range 4 {
		msg := receive(t, ch, 30*time.Second)
		checkBatch(t, msg, 1)
		if got := offsets(msg); got[0] != int64(i) {
			t.Fatalf("message %d holds offset %v, want %d", i+1, got, i)
		}
		msgs = append(msgs, msg)
	}
	msgs[0].Ack()
	msgs[1].Ack()
	msgs[3].Ack()
	msgs[2].Nack()

	// The nacked batch comes back: same Batch, new message. Record 5 may come first.
	var redelivered *message.Message
	for redelivered == nil {
		msg := receive(t, ch, 10*time.Second)
		if got := offsets(msg); got[0] == 2 {
			redelivered = msg
		} else if got[0] != 4 {
			t.Fatalf("got offset %v, want the redelivery of offset 2 or offset 4", got)
		}
	}
	if redelivered == msgs[2] || BatchOf(redelivered) != BatchOf(msgs[2]) {
		t.Error("redelivery is not a new message carrying the same batch")
	}
	if err := msgs[2].Context().Err(); err == nil {
		t.Error("context of the nacked message not canceled")
	}
	// Offset 3 is acked, but 2 is not, so the commit must stay at 2.
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; ok {
		t.Fatal("channel open after Close")
	}
	if got := committed(t, brokers, cfg.Group, topic)[0]; got != 2 {
		t.Errorf("committed offset %d after close, want 2", got)
	}

	_, ch2 := start(t, cfg)
	for want := int64(2); want < 5; want++ {
		msg := receive(t, ch2, 30*time.Second)
		if got := offsets(msg); got[0] != want {
			t.Fatalf("after restart got offset %v, want %d", got, want)
		}
		if string(BatchOf(msg).Records[0].Value) != string(rune('0'+want)) {
			t.Errorf("offset %d has value %q", want, BatchOf(msg).Records[0].Value)
		}
		msg.Ack()
	}
}

// TestSource_in_flight_limit holds messages unacked: never more than MaxInFlight records of
// the partition are out, the limit is reached, and acking lets the rest through in order.
func TestSource_in_flight_limit(t *testing.T) {
	const total, limit, maxBatch = 200, 10, 4
	brokers := newCluster(t)
	topic := "in-flight"
	createTopic(t, brokers, topic, 1)
	produce(t, brokers, topic, 0, total)
	cfg := Config{Kafka: seeds(brokers), Group: "g-in-flight", Topics: []string{topic},
		MaxInFlight: limit, MaxBatch: maxBatch, CommitInterval: 20 * time.Millisecond}
	src, ch := start(t, cfg)

	var (
		held        []*message.Message
		outstanding int
		next        int64
		reachedMax  bool
	)
	for next < total {
		select {
		case msg := <-ch:
			b := checkBatch(t, msg, maxBatch)
			if b.Records[0].Offset != next {
				t.Fatalf("got offsets %v, want them to start at %d", offsets(msg), next)
			}
			next += int64(len(b.Records))
			outstanding += len(b.Records)
			if outstanding > limit {
				t.Fatalf("%d records unacked, limit %d", outstanding, limit)
			}
			reachedMax = reachedMax || outstanding == limit
			held = append(held, msg)
		case <-time.After(100 * time.Millisecond):
			if len(held) == 0 {
				t.Fatalf("no message while nothing is held; delivered up to offset %d", next)
			}
			// Starved: ack all but the newest, newest first.
			for i := len(held) - 2; i >= 0; i-- {
				outstanding -= len(BatchOf(held[i]).Records)
				held[i].Ack()
			}
			held = held[len(held)-1:]
		}
	}
	if !reachedMax {
		t.Error("the in-flight limit was never reached; the test proves nothing")
	}
	for _, msg := range held {
		msg.Ack()
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, brokers, cfg.Group, topic)[0]; got != total {
		t.Errorf("committed %d, want %d", got, total)
	}
}

// TestSource_batches: one message holds many contiguous records of one partition, at most
// MaxBatch, and every partition's records arrive once, in order.
func TestSource_batches(t *testing.T) {
	const perPartition, maxBatch = 1000, 100
	brokers := newCluster(t)
	topic := "batches"
	createTopic(t, brokers, topic, 2)
	produce(t, brokers, topic, 0, perPartition)
	produce(t, brokers, topic, 1, perPartition)
	cfg := Config{Kafka: seeds(brokers), Group: "g-batches", Topics: []string{topic}, MaxBatch: maxBatch}
	src, ch := start(t, cfg)

	next := map[int32]int64{0: 0, 1: 0}
	multi := 0
	for next[0] < perPartition || next[1] < perPartition {
		msg := receive(t, ch, 30*time.Second)
		b := checkBatch(t, msg, maxBatch)
		if b.Topic != topic {
			t.Fatalf("batch of topic %q", b.Topic)
		}
		if b.Records[0].Offset != next[b.Partition] {
			t.Fatalf("partition %d: got offsets starting at %d, want %d", b.Partition, b.Records[0].Offset, next[b.Partition])
		}
		next[b.Partition] += int64(len(b.Records))
		if len(b.Records) > 1 {
			multi++
		}
		msg.Ack()
	}
	if multi == 0 {
		t.Error("every message held a single record")
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	got := committed(t, brokers, cfg.Group, topic)
	if got[0] != perPartition || got[1] != perPartition {
		t.Errorf("committed %v, want %d on both partitions", got, perPartition)
	}
}

// TestSource_close_drains: Close waits for in-flight batches, commits what they acked during
// the drain, closes the channel, and is idempotent.
func TestSource_close_drains(t *testing.T) {
	brokers := newCluster(t)
	topic := "close-drains"
	createTopic(t, brokers, topic, 1)
	produce(t, brokers, topic, 0, 10)
	cfg := Config{Kafka: seeds(brokers), Group: "g-close", Topics: []string{topic}, MaxBatch: 5,
		DrainTimeout: 30 * time.Second, CommitInterval: time.Hour}
	src, ch := start(t, cfg)
	first := receive(t, ch, 30*time.Second)
	second := receive(t, ch, 30*time.Second)
	if offsets(first)[0] != 0 || offsets(second)[0] != 5 {
		t.Fatalf("got batches %v and %v", offsets(first), offsets(second))
	}

	closed := make(chan error, 2)
	go func() { closed <- src.Close() }()
	go func() { closed <- src.Close() }()
	second.Ack()
	time.Sleep(20 * time.Millisecond) // let Close find the first batch still in flight
	select {
	case <-closed:
		t.Fatal("Close returned while a batch was in flight")
	default:
	}
	first.Ack()
	for range 2 {
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Close did not return after the last ack")
		}
	}
	if _, ok := <-ch; ok {
		t.Error("channel not closed after Close")
	}
	if err := src.Close(); err != nil {
		t.Error(err)
	}
	if _, err := src.Subscribe(context.Background(), "again"); err == nil {
		t.Error("Subscribe after Close succeeded")
	}
	if got := committed(t, brokers, cfg.Group, topic)[0]; got != 10 {
		t.Errorf("committed %d, want 10", got)
	}
}

// TestSource_assign_hook: OnAssigned is retried until it succeeds, no record is emitted
// before that, and OnRevoked gets the partitions at Close.
func TestSource_assign_hook(t *testing.T) {
	brokers := newCluster(t)
	topic := "assign-hook"
	createTopic(t, brokers, topic, 2)
	produce(t, brokers, topic, 0, 20)
	produce(t, brokers, topic, 1, 20)

	var (
		calls    atomic.Int32
		hooked   atomic.Bool
		mu       sync.Mutex
		assigned []event.TopicPartition
		revoked  []event.TopicPartition
	)
	cfg := Config{Kafka: seeds(brokers), Group: "g-hook", Topics: []string{topic},
		OnAssigned: func(_ context.Context, tps []event.TopicPartition) error {
			if calls.Add(1) < 3 {
				return errors.New("sink not ready")
			}
			mu.Lock()
			assigned = append(assigned, tps...)
			mu.Unlock()
			hooked.Store(true)
			return nil
		},
		OnRevoked: func(_ context.Context, tps []event.TopicPartition) {
			mu.Lock()
			revoked = append(revoked, tps...)
			mu.Unlock()
		},
	}
	src, ch := start(t, cfg)
	got := 0
	for got < 40 {
		msg := receive(t, ch, 30*time.Second)
		if !hooked.Load() {
			t.Fatal("record emitted before OnAssigned succeeded")
		}
		got += len(checkBatch(t, msg, DefaultMaxBatch).Records)
		msg.Ack()
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("OnAssigned called %d times, want 3", n)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	sortTPs(assigned)
	sortTPs(revoked)
	want := []event.TopicPartition{{Topic: topic, Partition: 0}, {Topic: topic, Partition: 1}}
	if !slices.Equal(assigned, want) || !slices.Equal(revoked, want) {
		t.Errorf("assigned %v, revoked %v; want %v for both", assigned, revoked, want)
	}
}

// TestSource_lag_counts_what_is_not_committed reports, on its timer, the high watermark minus
// the committed offset: it counts records held up in flight and records produced while the
// partition's fetching is paused at MaxInFlight, marks the partition stalled while nothing
// commits, and returns to zero (not stalled) once everything is acked and committed. The fetch
// lag is reported apart.
func TestSource_lag_counts_what_is_not_committed(t *testing.T) {
	brokers := newCluster(t)
	topic := "lag"
	createTopic(t, brokers, topic, 1)
	var (
		mu   sync.Mutex
		last PartitionLag
		n    int
	)
	cfg := Config{Kafka: seeds(brokers), Group: "g-lag", Topics: []string{topic}, MaxInFlight: 10, MaxBatch: 10,
		LagInterval: 50 * time.Millisecond, StallAfter: 300 * time.Millisecond, CommitInterval: 50 * time.Millisecond,
		OnLag: func(l PartitionLag) {
			if l.Topic != topic || l.Partition != 0 {
				t.Errorf("lag reported for %s/%d", l.Topic, l.Partition)
			}
			mu.Lock()
			last, n = l, n+1
			mu.Unlock()
		}}
	report := func() PartitionLag {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
	src, ch := start(t, cfg)
	produce(t, brokers, topic, 0, 10)
	held := receive(t, ch, 30*time.Second) // not acked: fetching pauses at MaxInFlight
	if got := len(BatchOf(held).Records); got != 10 {
		t.Fatalf("first batch has %d records, want 10", got)
	}
	produce(t, brokers, topic, 0, 15) // arrives while the partition is paused
	waitFor(t, 10*time.Second, "lag 25 and stalled", func() bool { l := report(); return l.Lag == 25 && l.Stalled })
	if l := report(); l.FetchLag != 15 || l.HighWatermark != 25 || l.Committed != 0 {
		t.Fatalf("report %+v: want fetch lag 15, high watermark 25, committed 0", l)
	}
	held.Ack()
	for got := 0; got < 15; {
		msg := receive(t, ch, 30*time.Second)
		got += len(BatchOf(msg).Records)
		msg.Ack()
	}
	waitFor(t, 10*time.Second, "lag 0 and not stalled", func() bool { l := report(); return l.Lag == 0 && !l.Stalled && l.Committed == 25 })
	if l := report(); l.FetchLag != 0 {
		t.Fatalf("report %+v: want fetch lag 0", l)
	}
	_ = src.Close()
	if l := report(); !l.Released {
		t.Fatalf("last report %+v after Close, want Released", l)
	}
	if u := src.Unfinished(); u != nil {
		t.Fatalf("Unfinished after a clean close: %+v", u)
	}
}

// TestSource_unfinished_after_a_drain_timeout lists, after Close, the records that were
// emitted and not acked when the drain timed out: they will be consumed again.
func TestSource_unfinished_after_a_drain_timeout(t *testing.T) {
	brokers := newCluster(t)
	topic := "unfinished"
	createTopic(t, brokers, topic, 1)
	produce(t, brokers, topic, 0, 30)
	src, ch := start(t, Config{Kafka: seeds(brokers), Group: "g-unfinished", Topics: []string{topic}, MaxBatch: 10,
		DrainTimeout: 200 * time.Millisecond, CommitInterval: time.Hour})
	// The first batch (offsets 0..9) is nacked once and acked when redelivered; the later
	// batches are held unacked.
	var held []*message.Message
	for redelivered := false; !redelivered; {
		msg := receive(t, ch, 30*time.Second)
		b := BatchOf(msg)
		switch {
		case b.Records[0].Offset != 0:
			if AttemptOf(msg) != 1 {
				t.Fatalf("batch at %d delivered with attempt %d, want 1", b.Records[0].Offset, AttemptOf(msg))
			}
			held = append(held, msg)
		case AttemptOf(msg) == 1:
			msg.Nack()
		case AttemptOf(msg) == 2:
			msg.Ack()
			redelivered = true
		default:
			t.Fatalf("batch at 0 delivered with attempt %d", AttemptOf(msg))
		}
	}
	go func() {
		for m := range ch {
			held = append(held, m) // never acked
		}
	}()
	_ = src.Close()
	u := src.Unfinished()
	if len(u) != 1 || u[0].Topic != topic || u[0].Partition != 0 || u[0].Committed != 10 || u[0].Records < 10 {
		t.Fatalf("Unfinished = %+v, want %s/0 committed at 10 with at least 10 records", u, topic)
	}
}

// TestSource_undelivered_batch_is_not_unfinished closes the source while its emitter is
// blocked handing a batch to a reader that is busy (here: not reading). That batch was never
// processed, so Close reports nothing unfinished, and the next owner resumes right after the
// acked batch.
func TestSource_undelivered_batch_is_not_unfinished(t *testing.T) {
	brokers := newCluster(t)
	topic := "undelivered"
	createTopic(t, brokers, topic, 1)
	produce(t, brokers, topic, 0, 30)
	cfg := Config{Kafka: seeds(brokers), Group: "g-undelivered", Topics: []string{topic}, MaxBatch: 10}
	src, ch := start(t, cfg)
	first := receive(t, ch, 30*time.Second)
	if off := BatchOf(first).Records[0].Offset; off != 0 {
		t.Fatalf("first batch starts at %d, want 0", off)
	}
	first.Ack()
	// The emitter carves the next batch and blocks sending it, as when the router is slow.
	waitFor(t, 10*time.Second, "the next batch carved", func() bool {
		src.mu.RLock()
		defer src.mu.RUnlock()
		for _, p := range src.order {
			p.mu.Lock()
			n := p.inflightN
			p.mu.Unlock()
			if n == 10 {
				return true
			}
		}
		return false
	})
	_ = src.Close()
	if u := src.Unfinished(); u != nil {
		t.Fatalf("Unfinished = %+v after closing with only an undelivered batch, want none", u)
	}
	_, ch2 := start(t, cfg)
	next := receive(t, ch2, 30*time.Second)
	if off := BatchOf(next).Records[0].Offset; off != 10 {
		t.Fatalf("the next owner starts at %d, want 10 (after the acked batch)", off)
	}
	next.Ack()
}

// TestSource_router runs the source under a watermill Router; Router.Close closes the source
// while the router reads its channel, and what was handled is committed.
func TestSource_router(t *testing.T) {
	brokers := newCluster(t)
	topic := "router"
	createTopic(t, brokers, topic, 3)
	for p := range int32(3) {
		produce(t, brokers, topic, p, 50)
	}
	cfg := Config{Kafka: seeds(brokers), Group: "g-router", Topics: []string{topic}, MaxBatch: 7}
	src, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int64
	router.AddConsumerHandler("sink", "label", src, func(msg *message.Message) error {
		b := BatchOf(msg)
		if b == nil {
			return errors.New("no batch in message")
		}
		handled.Add(int64(len(b.Records)))
		return nil
	})
	runErr := make(chan error, 1)
	go func() { runErr <- router.Run(context.Background()) }()
	waitFor(t, 30*time.Second, "150 records handled", func() bool { return handled.Load() == 150 })
	if err := router.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil { // again: idempotent
		t.Fatal(err)
	}
	got := committed(t, brokers, cfg.Group, topic)
	for p := range int32(3) {
		if got[p] != 50 {
			t.Errorf("committed %v, want 50 on every partition", got)
			break
		}
	}
}

func TestConfig_errors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no group", Config{Topics: []string{"t"}}, "no consumer group"},
		{"no topics", Config{Group: "g"}, "no topics"},
		{"bad start", Config{Group: "g", Topics: []string{"t"}, Start: "middle"}, `start "middle"`},
		{"negative", Config{Group: "g", Topics: []string{"t"}, MaxBatch: -1}, "negative limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestNackBackoff(t *testing.T) {
	tests := []struct {
		n        int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{6, 1600 * time.Millisecond, 3200 * time.Millisecond},
		{7, 2500 * time.Millisecond, 5 * time.Second},
		{100, 2500 * time.Millisecond, 5 * time.Second},
	}
	for _, tt := range tests {
		for range 100 {
			if d := nackBackoff(tt.n); d < tt.min || d > tt.max {
				t.Fatalf("nackBackoff(%d) = %v, want within [%v, %v]", tt.n, d, tt.min, tt.max)
			}
		}
	}
}

func TestFifo(t *testing.T) {
	var q fifo[int]
	next, want := 0, 0
	for range 10000 {
		if rand.IntN(3) > 0 {
			q.push(next)
			next++
		} else if q.len() > 0 {
			if got := q.pop(); got != want {
				t.Fatalf("pop = %d, want %d", got, want)
			}
			want++
		}
		if q.len() != next-want {
			t.Fatalf("len = %d, want %d", q.len(), next-want)
		}
	}
	if cap(q.items) > 4*(next-want)+64 {
		t.Errorf("queue of %d holds an array of %d", next-want, cap(q.items))
	}
}

func sortTPs(tps []event.TopicPartition) {
	slices.SortFunc(tps, func(a, b event.TopicPartition) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
}

// TestSource_redelivers_nacked_batches_together: when a sink was down, every in-flight batch
// of a partition is nacked; they come back together after one backoff, not one at a time.
func TestSource_redelivers_nacked_batches_together(t *testing.T) {
	brokers := newCluster(t)
	topic := "nack-together"
	createTopic(t, brokers, topic, 1)
	produce(t, brokers, topic, 0, 4)
	_, ch := start(t, Config{
		Kafka:    seeds(brokers),
		Group:    topic + "-group",
		Topics:   []string{topic},
		MaxBatch: 1,
	})
	var msgs []*message.Message
	for range 4 {
		msgs = append(msgs, receive(t, ch, 30*time.Second))
	}
	for _, m := range msgs[1:] {
		m.Nack() // later batches first: the partition's head is still in flight
	}
	msgs[0].Nack()
	// All four come back without any of them being acked.
	seen := map[int64]bool{}
	for range 4 {
		msg := receive(t, ch, 10*time.Second)
		seen[offsets(msg)[0]] = true
	}
	if len(seen) != 4 {
		t.Fatalf("redelivered offsets %v, want all of 0..3 before any ack", seen)
	}
}

// TestSource_in_flight_bytes: under a byte budget far below the record-count limit, a
// partition stops fetching once its unacked records hold its share of MaxInFlightBytes, and
// resumes (in order, nothing lost) once acks bring it below half. Records are produced in
// rounds while the source runs, since kfake, unlike Kafka, answers a fetch with everything
// there is regardless of the fetch size limits.
func TestSource_in_flight_bytes(t *testing.T) {
	const valueBytes, round = 8 << 10, 20 // a round: 20 records, about 169KB
	const budget = MinPartitionBytes      // 256KiB
	brokers := newCluster(t)
	topic := "in-flight-bytes"
	createTopic(t, brokers, topic, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	value := make([]byte, valueBytes)
	produceRound := func() {
		recs := make([]*kgo.Record, round)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: topic, Value: value}
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Kafka: seeds(brokers), Group: "g-in-flight-bytes", Topics: []string{topic},
		MaxInFlight: 100_000, MaxBatch: 10, MaxInFlightBytes: budget, CommitInterval: 20 * time.Millisecond}
	src, ch := start(t, cfg)
	var held []*message.Message
	next := int64(0)
	// take receives messages until offset upTo, holding them unacked.
	take := func(upTo int64) {
		for next < upTo {
			msg := receive(t, ch, 30*time.Second)
			b := BatchOf(msg)
			if b.Records[0].Offset != next {
				t.Fatalf("got offsets %v, want them to start at %d", offsets(msg), next)
			}
			next += int64(len(b.Records))
			held = append(held, msg)
		}
	}
	produceRound()
	take(round) // 169KB held: below the budget, still fetching
	produceRound()
	take(2 * round) // 338KB held: over the budget, paused
	produceRound()
	select {
	case msg := <-ch:
		t.Fatalf("offsets %v delivered while %d bytes of a %d-byte budget were unacked", offsets(msg), 2*round*(valueBytes+RecordOverhead), budget)
	case <-time.After(time.Second):
	}
	for _, m := range held {
		m.Ack()
	}
	held = held[:0]
	take(3 * round) // resumed
	for _, m := range held {
		m.Ack()
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, brokers, cfg.Group, topic)[0]; got != 3*round {
		t.Errorf("committed %d, want %d", got, 3*round)
	}
}

// TestSource_in_flight_bytes_decoded: DecodedFactor counts the decoded messages a handler
// keeps, so the same records that leave a partition fetching without it pause it with it.
func TestSource_in_flight_bytes_decoded(t *testing.T) {
	const valueBytes, round = 2500, 20
	// A round is 20*(2500+512) = 60KB without the factor, 20*(6*2500+512) = 310KB with 5:
	// under and over the 256KiB budget.
	for _, factor := range []int{0, 5} {
		t.Run(fmt.Sprintf("factor=%d", factor), func(t *testing.T) {
			s, recs := &Source{cfg: Config{DecodedFactor: factor}}, []*kgo.Record{{Key: []byte("k"), Value: make([]byte, valueBytes)}}
			if got, want := s.fetchedBytes(recs)+s.decodedBytes(recs), int64(1+valueBytes*(1+factor)+RecordOverhead); got != want {
				t.Fatalf("fetched + decoded bytes = %d, want %d", got, want)
			}
			brokers := newCluster(t)
			topic := fmt.Sprintf("in-flight-decoded-%d", factor)
			createTopic(t, brokers, topic, 1)
			produce := valuesProducer(t, brokers, topic, valueBytes)
			produceRound := func() { produce(round) }
			cfg := Config{Kafka: seeds(brokers), Group: "g-" + topic, Topics: []string{topic},
				MaxInFlight: 100_000, MaxBatch: round, MaxInFlightBytes: MinPartitionBytes, DecodedFactor: factor,
				CommitInterval: 20 * time.Millisecond}
			produceRound()
			src, ch := start(t, cfg)
			var held []*message.Message
			got := 0
			for got < round {
				msg := receive(t, ch, 30*time.Second)
				got += len(BatchOf(msg).Records)
				held = append(held, msg)
			}
			produceRound()
			select {
			case msg := <-ch:
				if factor > 0 {
					t.Fatalf("offsets %v delivered while the decoded first round held more than the budget", offsets(msg))
				}
				held = append(held, msg)
			case <-time.After(time.Second):
				if factor == 0 {
					t.Fatal("nothing delivered while 60KB of a 256KiB budget were unacked")
				}
			}
			for _, m := range held {
				m.Ack()
			}
			if err := src.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSource_hands_out_no_more_than_the_decoded_share: one fetch can bring more records than a
// partition's byte share (a record batch comes whole). With DecodedFactor the records handed
// out stop at the share, the rest wait fetched, and acks let them through, in order.
func TestSource_hands_out_no_more_than_the_decoded_share(t *testing.T) {
	const valueBytes, total, batch = 2500, 40, 5
	// A batch of 5 counts 5*(6*2500+512) = 77.5KB: the fourth reaches the 256KiB share.
	brokers := newCluster(t)
	topic := "decoded-share"
	createTopic(t, brokers, topic, 1)
	valuesProducer(t, brokers, topic, valueBytes)(total)
	cfg := Config{Kafka: seeds(brokers), Group: "g-" + topic, Topics: []string{topic},
		MaxInFlight: 100_000, MaxBatch: batch, MaxInFlightBytes: MinPartitionBytes, DecodedFactor: 5,
		CommitInterval: 20 * time.Millisecond}
	src, ch := start(t, cfg)
	var held []*message.Message
	next := int64(0)
	for range 4 {
		msg := receive(t, ch, 30*time.Second)
		if o := offsets(msg); o[0] != next || len(o) != batch {
			t.Fatalf("got offsets %v, want %d from %d", o, batch, next)
		}
		next += batch
		held = append(held, msg)
	}
	select {
	case msg := <-ch:
		t.Fatalf("offsets %v handed out while %d records counting 310KB of a 256KiB share were unacked", offsets(msg), next)
	case <-time.After(time.Second):
	}
	for next < total {
		for _, m := range held {
			m.Ack()
		}
		held = held[:0]
		msg := receive(t, ch, 30*time.Second)
		if o := offsets(msg); o[0] != next {
			t.Fatalf("got offsets %v after the acks, want them to start at %d", o, next)
		}
		next += int64(len(BatchOf(msg).Records))
		held = append(held, msg)
	}
	for _, m := range held {
		m.Ack()
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
}

// valuesProducer returns a function that produces n records with values of valueBytes zero
// bytes to partition 0 of topic, in one ProduceSync.
func valuesProducer(t *testing.T, brokers []string, topic string, valueBytes int) func(n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return func(n int) {
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: topic, Value: make([]byte, valueBytes)}
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}
