package producer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-dev/switchyard/client/producer"
	"github.com/switchyard-dev/switchyard/contract"
)

// discard is a Watermill publisher that drops everything, to measure the producer's own
// cost (validate, frame, key, headers, marshal to a sarama record) without Kafka.
type discard struct{}

func (discard) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		if _, err := (producer.Marshaler{}).Marshal(topic, m); err != nil {
			return err
		}
	}
	return nil
}
func (discard) Close() error { return nil }

func batch(n int) []proto.Message {
	msgs := make([]proto.Message, n)
	for i := range msgs {
		b := bid(fmt.Sprintf("c0a80101-0000-4000-8000-%012d", i))
		b.AuctionId = fmt.Sprintf("7f0c1c6e-2b1e-4c1a-9a52-%012d", i%32)
		msgs[i] = b
	}
	return msgs
}

// BenchmarkPublish_overhead is the producer's cost per event before Kafka: validation,
// Confluent framing, key and headers, and the sarama record (ns/event, allocs per op are
// per 100-event batch).
func BenchmarkPublish_overhead(b *testing.B) {
	p, err := producer.New(producer.Config{Topic: "bids", Encoding: contract.Confluent, SchemaID: 7, KeyField: "auction_id", Publisher: discard{}})
	if err != nil {
		b.Fatal(err)
	}
	msgs := batch(100)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Publish(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/event")
}

// BenchmarkPublish_kfake is the cost per event end to end through watermill-kafka's
// publisher (sarama) to an in-process kfake broker, in batches of 100 events over 32 keys.
func BenchmarkPublish_kfake(b *testing.B) {
	c := newCluster(b, 6, "bids")
	p, err := producer.New(producer.Config{Brokers: c.ListenAddrs(), Topic: "bids", Encoding: contract.Confluent, SchemaID: 7, KeyField: "auction_id"})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	msgs := batch(100)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Publish(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/event")
}
