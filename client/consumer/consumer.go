// Package consumer gives Go services typed handlers for contract events, on Watermill's
// router and watermill-kafka's subscriber:
//
//	r, _ := consumer.NewRouter(consumer.Config{Brokers: brokers, Group: "fraud", DeadLetterTopic: "auctions.bids.dlq"})
//	consumer.Handle(r, "auctions.bids", func(ctx context.Context, bid *auctionsv1.BidPlaced, m consumer.Meta) error {
//		...
//	})
//	r.Run(ctx)
//
// A handler receives events already decoded from any framing Switchyard writes (Confluent
// wire format, raw protobuf, protojson) and checked against the contract's buf.validate
// rules. A record that does not decode, has a Confluent frame for another message, or breaks
// the rules never reaches the handler: it is written to the dead-letter topic with the
// switchyard.* headers the router uses (package deadletter) and acknowledged. A handler
// error nacks the message, which the subscriber redelivers; add Watermill middleware (Retry,
// Recoverer) through Router.Router.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/deadletter"
)

// Config configures a Router.
type Config struct {
	// Brokers are the Kafka bootstrap addresses.
	Brokers []string
	// Group is the consumer group; it also fills the switchyard.pipeline header of dead
	// letters. Required.
	Group string
	// Encoding the topics carry; when zero each record's is recognized from its first byte
	// (contract.DetectEncoding: 0x00 Confluent, '{' JSON, else raw protobuf).
	Encoding contract.Encoding
	// DeadLetterTopic receives the records that do not decode or break their contract.
	// Required: without it such a record could only be dropped or redelivered forever.
	DeadLetterTopic string
	// Sarama overrides the sarama settings of the subscriber and the dead-letter publisher.
	// By default a new group starts at the oldest offset.
	Sarama *sarama.Config
	// Logger is Watermill's logger; none when nil.
	Logger watermill.LoggerAdapter
}

// Meta is a record's Kafka coordinates and standard headers.
type Meta struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Timestamp time.Time // the Kafka record timestamp
	// Headers are the record's headers (the last value of a repeated key).
	Headers map[string]string
	// Encoding the payload was in.
	Encoding contract.Encoding
	// SchemaID is the Confluent schema id, for encoding Confluent.
	SchemaID uint32
	// Producer and EventTime are the contract.HeaderProducer and contract.HeaderEventTime
	// headers, when present.
	Producer  string
	EventTime time.Time
}

// Router runs typed handlers. Add handlers with Handle before Run.
type Router struct {
	// Router is the Watermill router underneath, for middleware and plugins.
	Router *message.Router

	cfg Config
	sub *wkafka.Subscriber
	dlq *wkafka.Publisher
}

// NewRouter connects a subscriber and a dead-letter publisher for cfg.
func NewRouter(cfg Config) (*Router, error) {
	if cfg.Group == "" {
		return nil, errors.New("consumer: no group")
	}
	if cfg.DeadLetterTopic == "" {
		return nil, errors.New("consumer: no dead-letter topic")
	}
	sc := cfg.Sarama
	if sc == nil {
		sc = sarama.NewConfig()
		sc.ClientID = "switchyard-consumer"
		sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	}
	sc.Consumer.Return.Errors = true
	sc.Producer.Return.Successes = true
	sub, err := wkafka.NewSubscriber(wkafka.SubscriberConfig{
		Brokers:               cfg.Brokers,
		Unmarshaler:           wkafka.DefaultMarshaler{},
		OverwriteSaramaConfig: sc,
		ConsumerGroup:         cfg.Group,
	}, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("consumer: subscribe: %w", err)
	}
	dlq, err := wkafka.NewPublisher(wkafka.PublisherConfig{
		Brokers:               cfg.Brokers,
		Marshaler:             deadLetterMarshaler{},
		OverwriteSaramaConfig: sc,
	}, cfg.Logger)
	if err != nil {
		sub.Close()
		return nil, fmt.Errorf("consumer: dead-letter publisher: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	mr, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		return nil, err
	}
	return &Router{Router: mr, cfg: cfg, sub: sub, dlq: dlq}, nil
}

// Run runs the handlers until ctx is done or Close is called.
func (r *Router) Run(ctx context.Context) error { return r.Router.Run(ctx) }

// Running is closed once every handler is subscribed.
func (r *Router) Running() chan struct{} { return r.Router.Running() }

// Close stops the router, waiting for handlers in progress, and closes the subscriber and
// the dead-letter publisher.
func (r *Router) Close() error {
	return errors.Join(r.Router.Close(), r.sub.Close(), r.dlq.Close())
}

// Handle adds a handler of events of type T (a generated message such as
// *auctionsv1.BidPlaced) read from topic. T's descriptor is the contract: the Confluent
// frame must name it, and its buf.validate rules are checked. It panics when T's contract
// does not build (a rule that does not compile), as that is a programming error.
func Handle[T proto.Message](r *Router, topic string, h func(context.Context, T, Meta) error) {
	var zero T
	c, err := contract.ForMessage(zero.ProtoReflect().Descriptor())
	if err != nil {
		panic(fmt.Sprintf("consumer.Handle: %v", err))
	}
	d := &decoder{c: c, enc: r.cfg.Encoding, indexes: c.MessageIndexes()}
	name := topic + "/" + c.Name()
	r.Router.AddConsumerHandler(name, topic, r.sub, func(msg *message.Message) error {
		ctx := msg.Context()
		meta := metaOf(ctx, topic, msg)
		ev := zero.ProtoReflect().New().Interface().(T)
		class, err := d.decode(msg.Payload, ev, &meta)
		if err != nil {
			return r.deadLetter(msg, meta, c.Name(), class, err)
		}
		return h(ctx, ev, meta)
	})
}

// deadLetter writes msg to the dead-letter topic with the router's headers; the message is
// acknowledged only once Kafka has the dead letter.
func (r *Router) deadLetter(msg *message.Message, m Meta, name, class string, cause error) error {
	dl := message.NewMessage(msg.UUID, msg.Payload)
	for k, v := range msg.Metadata {
		dl.Metadata.Set(k, v)
	}
	reason := class
	var de *contract.DecodeError
	if errors.As(cause, &de) && de.Reason == contract.ReasonFraming {
		reason = deadletter.ClassFraming
	}
	for k, v := range map[string]string{
		deadletter.HeaderClass:     class,
		deadletter.HeaderReason:    reason,
		deadletter.HeaderMessage:   safeMessage(cause),
		deadletter.HeaderContract:  name,
		deadletter.HeaderPipeline:  r.cfg.Group,
		deadletter.HeaderSink:      "",
		deadletter.HeaderRoute:     "",
		deadletter.HeaderTopic:     m.Topic,
		deadletter.HeaderPartition: strconv.FormatInt(int64(m.Partition), 10),
		deadletter.HeaderOffset:    strconv.FormatInt(m.Offset, 10),
		deadletter.HeaderAttempts:  "1",
	} {
		dl.Metadata.Set(k, v)
	}
	if m.Key != nil {
		dl.Metadata.Set(metaKey, string(m.Key))
	}
	if err := r.dlq.Publish(r.cfg.DeadLetterTopic, dl); err != nil {
		return fmt.Errorf("dead-letter %s[%d]@%d: %w", m.Topic, m.Partition, m.Offset, err)
	}
	return nil
}

func metaOf(ctx context.Context, topic string, msg *message.Message) Meta {
	m := Meta{Topic: topic, Headers: msg.Metadata}
	m.Partition, _ = wkafka.MessagePartitionFromCtx(ctx)
	m.Offset, _ = wkafka.MessagePartitionOffsetFromCtx(ctx)
	m.Key, _ = wkafka.MessageKeyFromCtx(ctx)
	m.Timestamp, _ = wkafka.MessageTimestampFromCtx(ctx)
	m.Producer = msg.Metadata.Get(contract.HeaderProducer)
	if t, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(contract.HeaderEventTime)); err == nil {
		m.EventTime = t
	}
	return m
}

// decoder decodes payloads into a generated message of its contract.
type decoder struct {
	c       *contract.Contract
	enc     contract.Encoding
	indexes []int
}

// decode fills ev from payload and validates it; on failure it returns the dead-letter
// class (decode, framing or validate) with the error.
func (d *decoder) decode(payload []byte, ev proto.Message, m *Meta) (string, error) {
	enc := d.enc
	if enc == 0 {
		enc = contract.DetectEncoding(payload)
	}
	m.Encoding = enc
	body := payload
	switch enc {
	case contract.Confluent:
		id, idx, b, err := contract.SplitConfluent(payload)
		if err != nil {
			return deadletter.ClassFraming, err
		}
		if !slices.Equal(idx, d.indexes) {
			return deadletter.ClassFraming, &contract.DecodeError{Reason: contract.ReasonFraming,
				Err: fmt.Errorf("frame names message index %v, %s is %v", idx, d.c.Name(), d.indexes)}
		}
		m.SchemaID, body = id, b
		fallthrough
	case contract.Raw:
		if err := proto.Unmarshal(body, ev); err != nil {
			return deadletter.ClassDecode, &contract.DecodeError{Reason: contract.ReasonProtobuf, Err: errors.New("payload is not a " + d.c.Name())}
		}
	case contract.JSON:
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(payload, ev); err != nil {
			return deadletter.ClassDecode, &contract.DecodeError{Reason: contract.ReasonJSON, Err: errors.New("payload is not protojson of " + d.c.Name())}
		}
	}
	if err := d.c.Validate(ev.ProtoReflect()); err != nil {
		return deadletter.ClassValidate, err
	}
	return "", nil
}

// safeMessage is the error for the switchyard.error.message header: one line, bounded.
// Decode and validation errors name fields and rules, never values.
func safeMessage(err error) string {
	s := err.Error()
	if len(s) > 1024 {
		s = s[:1024] + "…"
	}
	return s
}

// metaKey carries the original record key to deadLetterMarshaler.
const metaKey = "_switchyard_key"

// deadLetterMarshaler writes a dead letter with the original key, value and headers (the
// switchyard.* ones included).
type deadLetterMarshaler struct{ wkafka.DefaultMarshaler }

func (deadLetterMarshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	h := make([]sarama.RecordHeader, 0, len(msg.Metadata)+1)
	keys := make([]string, 0, len(msg.Metadata))
	for k := range msg.Metadata {
		if k != metaKey {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		h = append(h, sarama.RecordHeader{Key: []byte(k), Value: []byte(msg.Metadata[k])})
	}
	h = append(h, sarama.RecordHeader{Key: []byte(wkafka.UUIDHeaderKey), Value: []byte(msg.UUID)})
	pm := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(msg.Payload), Headers: h}
	if k, ok := msg.Metadata[metaKey]; ok {
		pm.Key = sarama.StringEncoder(k)
	}
	return pm, nil
}
