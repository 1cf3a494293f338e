package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/integration/harness"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/internal/kafkaconn"
	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/kafka"
	"github.com/switchyard-dev/switchyard/sinks/sinktest"
)

// TestSink_conformance runs the sink conformance suite against a real Apache Kafka broker.
func TestSink_conformance(t *testing.T) {
	k := harness.StartKafka(t)
	n := 0
	sinktest.Run(t, sinktest.Features{Targets: true, ConcurrentWrites: true}, func(t *testing.T, deps sinks.Deps) sinktest.Env {
		n++
		topic := fmt.Sprintf("conformance-%d-%d", n, time.Now().UnixNano())
		targets := []string{topic, topic + "-a", topic + "-b"}
		for _, tp := range targets {
			k.CreateTopic(t, tp, 3)
		}
		s, err := kafka.New(kafka.Config{Topic: topic, Key: "source", Encoding: "protobuf", Headers: true},
			kafka.Options{Kafka: []kgo.Opt{kgo.SeedBrokers(k.Brokers()...)}, Input: contract.Raw}, deps)
		if err != nil {
			t.Fatal(err)
		}
		return sinktest.Env{
			Sink:   s,
			Target: func(i int) string { return targets[i] },
			ReadBack: func(t *testing.T, target string) []string {
				if target == "" {
					target = topic
				}
				return readIDs(t, k, target)
			},
		}
	})
}

// readIDs reads every record of topic (until 2s pass without a new one) and decodes its id.
func readIDs(t *testing.T, k *harness.Kafka, topic string) []string {
	t.Helper()
	cl := k.NewClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	var ids []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		if ctx.Err() != nil && fs.NumRecords() == 0 {
			return ids
		}
		fs.EachRecord(func(r *kgo.Record) {
			m := dynamicpb.NewMessage(sinktest.Schema)
			if err := proto.Unmarshal(r.Value, m); err != nil {
				t.Fatalf("record %d of %s is not a sinktest event: %v", r.Offset, topic, err)
			}
			ids = append(ids, m.Get(sinktest.Schema.Fields().ByName("id")).String())
		})
	}
}

func TestSink_encodings_and_keys(t *testing.T) {
	k := harness.StartKafka(t)
	recs := sinktest.Records("src", "enc", 3, 1)
	body := recs[0].Value
	framed := contract.FrameConfluent(nil, 7, []int{0}, body)
	for _, tc := range []struct {
		name  string
		cfg   kafka.Config
		input contract.Encoding
		value []byte // input value
		want  func(t *testing.T, r *kgo.Record)
	}{
		{"raw passthrough", kafka.Config{Headers: true, Encoding: "protobuf", Key: "source"}, contract.Raw, body, func(t *testing.T, r *kgo.Record) {
			if string(r.Value) != string(body) || string(r.Key) != "enc-0" {
				t.Fatalf("value/key changed: %q %q", r.Key, r.Value)
			}
		}},
		{"confluent stripped to raw", kafka.Config{Headers: true, Encoding: "protobuf", Key: "id"}, contract.Confluent, framed, func(t *testing.T, r *kgo.Record) {
			if string(r.Value) != string(body) || string(r.Key) != "enc-0" {
				t.Fatalf("want the raw body and key from field id, got %q %q", r.Key, r.Value)
			}
		}},
		{"confluent passthrough", kafka.Config{Headers: true, Encoding: "confluent", Key: "none"}, contract.Confluent, framed, func(t *testing.T, r *kgo.Record) {
			if string(r.Value) != string(framed) || r.Key != nil {
				t.Fatalf("want the framed bytes untouched and no key, got %q %q", r.Key, r.Value)
			}
		}},
		{"raw framed with schema id", kafka.Config{Headers: true, Encoding: "confluent", SchemaID: 42, Key: "source"}, contract.Raw, body, func(t *testing.T, r *kgo.Record) {
			id, _, b, err := contract.SplitConfluent(r.Value)
			if err != nil || id != 42 || string(b) != string(body) {
				t.Fatalf("want a frame with schema id 42 around the body, got id %d err %v", id, err)
			}
		}},
		{"json", kafka.Config{Headers: true, Encoding: "json", Key: "seq"}, contract.Raw, body, func(t *testing.T, r *kgo.Record) {
			m := dynamicpb.NewMessage(sinktest.Schema)
			if err := protojson.Unmarshal(r.Value, m); err != nil || string(r.Key) != "0" {
				t.Fatalf("want protojson and key from seq, got %q %q (%v)", r.Key, r.Value, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := fmt.Sprintf("enc-%d", time.Now().UnixNano())
			k.CreateTopic(t, topic, 1)
			s, err := kafka.New(tc.cfg, kafka.Options{Kafka: []kgo.Opt{kgo.SeedBrokers(k.Brokers()...)}, Input: tc.input}, sinks.Deps{Schema: sinktest.Schema})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			r := *recs[0]
			r.Value = tc.value
			r.Target = topic
			if err := s.Write(context.Background(), []*event.Record{&r}); err != nil {
				t.Fatal(err)
			}
			cl := k.NewClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			fs := cl.PollFetches(ctx)
			if fs.NumRecords() != 1 {
				t.Fatalf("want 1 record, got %d (%v)", fs.NumRecords(), fs.Errors())
			}
			got := fs.Records()[0]
			tc.want(t, got)
			if len(got.Headers) != 1 || got.Headers[0].Key != "trace-id" {
				t.Fatalf("headers not propagated: %v", got.Headers)
			}
		})
	}
}

func TestValidateConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  kafka.Config
		in   contract.Encoding
		want string
	}{
		{kafka.Config{Key: "nope"}, contract.Raw, `has no field "nope"`},
		{kafka.Config{Key: "tags"}, contract.Raw, `"tags" is repeated`},
		{kafka.Config{Key: "occurred_at"}, contract.Raw, `is a message, not a scalar`},
		{kafka.Config{Encoding: "confluent"}, contract.Raw, "schema_id is required"},
		{kafka.Config{Encoding: "confluent"}, contract.Confluent, ""},
		{kafka.Config{Key: "occurred_at.seconds"}, contract.Raw, ""},
	} {
		got := kafka.ValidateConfig(tc.cfg, tc.in, sinktest.Schema)
		if tc.want == "" && len(got) != 0 || tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)) {
			t.Errorf("%+v with input %v: got %v, want %q", tc.cfg, tc.in, got, tc.want)
		}
	}
}

// TestSink_keeps_each_keys_order_within_a_batch: records with equal keys are published by one
// goroutine in batch order, so they land in their partition in that order.
func TestSink_keeps_each_keys_order_within_a_batch(t *testing.T) {
	k := harness.StartKafka(t)
	topic := fmt.Sprintf("order-%d", time.Now().UnixNano())
	k.CreateTopic(t, topic, 4)
	s, err := kafka.New(kafka.Config{Topic: topic, Key: "source", Encoding: "protobuf"},
		kafka.Options{Kafka: []kgo.Opt{kgo.SeedBrokers(k.Brokers()...)}, Input: contract.Raw}, sinks.Deps{Schema: sinktest.Schema})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	recs := sinktest.Records("src", "ord", 3000, 1)
	for i, r := range recs {
		r.Key = []byte(fmt.Sprint("key-", i%7))
	}
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	cl := k.NewClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	last := map[string]int64{}
	seen := 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for seen < len(recs) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", seen, len(recs))
		}
		fs.EachRecord(func(r *kgo.Record) {
			m := dynamicpb.NewMessage(sinktest.Schema)
			if err := proto.Unmarshal(r.Value, m); err != nil {
				t.Fatal(err)
			}
			seq := m.Get(sinktest.Schema.Fields().ByName("seq")).Int()
			if prev, ok := last[string(r.Key)]; ok && seq <= prev {
				t.Fatalf("key %s: seq %d landed after %d", r.Key, seq, prev)
			}
			last[string(r.Key)] = seq
			seen++
		})
	}
}

// TestSink_partitions_keys_as_the_java_client: keyed output lands in the partition Apache
// Kafka's own Java producer would choose (murmur2), so it is co-partitioned with every other
// producer of the same keys.
func TestSink_partitions_keys_as_the_java_client(t *testing.T) {
	k := harness.StartKafka(t)
	const partitions = 7
	topic := fmt.Sprintf("murmur-%d", time.Now().UnixNano())
	k.CreateTopic(t, topic, partitions)
	s, err := kafka.New(kafka.Config{Topic: topic, Key: "source", Encoding: "protobuf"},
		kafka.Options{Kafka: []kgo.Opt{kgo.SeedBrokers(k.Brokers()...)}, Input: contract.Raw}, sinks.Deps{Schema: sinktest.Schema})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	recs := sinktest.Records("src", "mm", 2000, 1)
	keys := make([][]byte, len(recs))
	for i, r := range recs {
		// ASCII ids, binary keys and the empty key.
		switch i % 3 {
		case 0:
			r.Key = []byte(fmt.Sprintf("auction-%d", i))
		case 1:
			r.Key = []byte{byte(i), byte(i >> 8), 0xff, 0x00, byte(i * 7)}
		default:
			r.Key = []byte(fmt.Sprint(i * 7919))
		}
		keys[i] = r.Key
	}
	recs[0].Key, keys[0] = []byte{}, []byte{}
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	want := harness.JavaPartitions(t, keys, partitions)
	wantBy := map[string]int32{}
	for i, key := range keys {
		wantBy[string(key)] = want[i]
	}
	cl := k.NewClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen, used := 0, map[int32]bool{}
	for seen < len(recs) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", seen, len(recs))
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			used[r.Partition] = true
			if w := wantBy[string(r.Key)]; r.Partition != w {
				t.Errorf("key %x landed in partition %d, the Java client puts it in %d", r.Key, r.Partition, w)
			}
		})
	}
	if len(used) != partitions {
		t.Errorf("keys used %d of %d partitions", len(used), partitions)
	}
}

// TestSink_too_large_record_fails_alone: a record above max_record_bytes fails permanently
// with sinks.ErrTooLarge (it is dead-lettered, never retried) and the others land.
func TestSink_too_large_record_fails_alone(t *testing.T) {
	k := harness.StartKafka(t)
	topic := fmt.Sprintf("big-%d", time.Now().UnixNano())
	k.CreateTopic(t, topic, 2)
	s, err := kafka.New(kafka.Config{Topic: topic, Key: "source", Encoding: "protobuf"},
		kafka.Options{Kafka: []kgo.Opt{kgo.SeedBrokers(k.Brokers()...)}, Input: contract.Raw,
			Producer: kafkaconn.ProducerOptions{MaxRecordBytes: 64 << 10}}, sinks.Deps{Schema: sinktest.Schema})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	recs := sinktest.Records("src", "big", 5, 1)
	big := *recs[2]
	big.Value = append(append([]byte{}, big.Value...), make([]byte, 100<<10)...) // unknown field padding is not checked here
	recs[2] = &big
	err = s.Write(context.Background(), recs)
	var be *sinks.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || len(be.Retry) != 0 || !be.Landed {
		t.Fatalf("want one permanent failure and the rest landed, got %v", err)
	}
	if !errors.Is(be.Failed[2], sinks.ErrTooLarge) {
		t.Fatalf("record 2: want ErrTooLarge, got %v", be.Failed[2])
	}
	if got := readIDs(t, k, topic); len(got) != 4 {
		t.Fatalf("want the 4 other records landed, got %v", got)
	}
}
