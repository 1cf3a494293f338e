package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"switchyard/sinks"
)

// Outgoing is a Kafka record exactly as it is to be produced.
type Outgoing struct {
	Topic      string
	Key, Value []byte
	Headers    []sinks.Header
}

// Producer publishes records through watermill-kafka publishers. It is goroutine-safe.
//
// watermill-kafka sends one message at a time and waits for its acknowledgement, so a
// Producer publishes from many goroutines at once: that is what fills the brokers' batches
// (measured: more goroutines help, more sarama producers do not; see BenchmarkProducer). Records with equal keys go through the same goroutine, in order, so a
// batch keeps the order of each key's records (across batches written concurrently, see the
// sink's max_in_flight).
type Producer struct {
	pub         *wkafka.Publisher
	parallelism int // goroutines per Produce call
}

// DefaultParallelism is the number of goroutines one Produce call publishes from.
const DefaultParallelism = 2048

// NewProducer connects a producer. sc may be nil for sarama's defaults; acks from all
// in-sync replicas are always required. compression is none, gzip, snappy, lz4 (the
// default, for "") or zstd.
func NewProducer(brokers []string, sc *sarama.Config, parallelism int, compression string) (*Producer, error) {
	if sc == nil {
		sc = sarama.NewConfig()
	} else {
		c := *sc
		sc = &c
	}
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	switch compression {
	case "", "lz4":
		sc.Producer.Compression = sarama.CompressionLZ4
	case "none":
		sc.Producer.Compression = sarama.CompressionNone
	case "gzip":
		sc.Producer.Compression = sarama.CompressionGZIP
	case "snappy":
		sc.Producer.Compression = sarama.CompressionSnappy
	case "zstd":
		sc.Producer.Compression = sarama.CompressionZSTD
	default:
		return nil, fmt.Errorf("unknown compression %q", compression)
	}
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	// Many concurrent synchronous sends share the producer's pipeline; larger channel buffers
	// keep its stages from blocking each other.
	sc.ChannelBufferSize = 4096
	if parallelism <= 0 {
		parallelism = DefaultParallelism
	}
	pub, err := wkafka.NewPublisher(wkafka.PublisherConfig{
		Brokers:               brokers,
		Marshaler:             marshaler{},
		OverwriteSaramaConfig: sc,
	}, watermill.NopLogger{})
	if err != nil {
		return nil, fmt.Errorf("connect kafka publisher: %w", err)
	}
	return &Producer{pub: pub, parallelism: parallelism}, nil
}

// Produce publishes every record and returns once each is acknowledged or failed. It returns
// nil, or the index and error of every record that was not acknowledged (the others were).
func (p *Producer) Produce(ctx context.Context, recs []Outgoing) map[int]error {
	if len(recs) == 0 {
		return nil
	}
	n := min(p.parallelism, len(recs))
	// lanes[c] lists the records goroutine c publishes, in batch order.
	lanes := make([][]int32, n)
	for i := range recs {
		c := i % n
		if k := recs[i].Key; k != nil {
			c = int(fnv32a(k) % uint32(n))
		}
		lanes[c] = append(lanes[c], int32(i))
	}
	var (
		mu     sync.Mutex
		failed map[int]error
		wg     sync.WaitGroup
	)
	for _, lane := range lanes {
		if len(lane) == 0 {
			continue
		}
		wg.Go(func() {
			// One message per goroutine, reused: Publish is synchronous and keeps nothing, so
			// the marshaler reads the current record through the reused context.
			oc := &outgoingCtx{Context: ctx}
			msg := message.NewMessage("", nil)
			msg.SetContext(oc)
			for _, i := range lane {
				err := ctx.Err()
				if err == nil {
					oc.o = &recs[i]
					err = p.pub.Publish(recs[i].Topic, msg)
				}
				if err != nil {
					mu.Lock()
					if failed == nil {
						failed = map[int]error{}
					}
					failed[int(i)] = fmt.Errorf("publish to %s: %w", recs[i].Topic, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return failed
}

// fnv32a hashes a key to pick its publishing goroutine.
func fnv32a(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}

// ProduceAll is Produce for callers that need every record or none: it returns the first
// error, if any record failed.
func (p *Producer) ProduceAll(ctx context.Context, recs []Outgoing) error {
	failed := p.Produce(ctx, recs)
	for i, err := range failed {
		return fmt.Errorf("%d of %d records not acknowledged (record %d: %w)", len(failed), len(recs), i, err)
	}
	return nil
}

// Close closes the publisher.
func (p *Producer) Close() error { return p.pub.Close() }

type outgoingKey struct{}

// outgoingCtx carries the record being published to the marshaler.
type outgoingCtx struct {
	context.Context
	o *Outgoing
}

func (c *outgoingCtx) Value(key any) any {
	if _, ok := key.(outgoingKey); ok {
		return c.o
	}
	return c.Context.Value(key)
}

// marshaler turns a watermill message carrying an *Outgoing in its context into a sarama
// message, so binary and repeated headers survive (watermill metadata is string-keyed).
type marshaler struct{}

func (marshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	o, ok := msg.Context().Value(outgoingKey{}).(*Outgoing)
	if !ok {
		return nil, errors.New("message carries no outgoing record")
	}
	pm := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(o.Value)}
	if o.Key != nil {
		pm.Key = sarama.ByteEncoder(o.Key)
	}
	if len(o.Headers) > 0 {
		pm.Headers = make([]sarama.RecordHeader, len(o.Headers))
		for i, h := range o.Headers {
			pm.Headers[i] = sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value}
		}
	}
	return pm, nil
}
