package producer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
)

// Config configures a Producer.
type Config struct {
	// Brokers are the Kafka bootstrap addresses. Unused when Publisher is set.
	Brokers []string
	// Topic receives the events. Required.
	Topic string
	// Encoding of the payloads; contract.Confluent when zero.
	Encoding contract.Encoding
	// SchemaID is the Confluent schema id written into every frame. When zero with
	// encoding Confluent, the id is that of the latest version of Subject in Registry.
	SchemaID uint32
	// Registry is a Confluent-compatible Schema Registry, asked once per message type for
	// the latest schema id of Subject when SchemaID is zero.
	Registry *sr.Client
	// Subject is the registry subject; Topic + "-value" (TopicNameStrategy) when empty.
	Subject string
	// KeyField is the field whose value becomes the record key, a dotted path of singular
	// fields such as "auction_id" or "amount.currency_code": strings and bytes as they are,
	// numbers and bools as decimal text, enums by value name. No key when empty (the
	// record goes to a random partition).
	KeyField string
	// Name is the value of the contract.HeaderProducer header; the program's file name
	// when empty.
	Name string
	// MaxInFlight bounds the keys published concurrently by one Publish call, which is how
	// sarama gets to batch them into one produce request per broker; 64 when zero.
	MaxInFlight int
	// Sarama overrides the sarama settings of the Publisher New creates (e.g. TLS, SASL);
	// Return.Successes is always turned on (the sync producer needs it) and the partitioner
	// is always JavaPartitioner (sarama.NewConfig's default, FNV-1a, would split keys from
	// Java producers). Leave Version at sarama's default unless the brokers need another.
	Sarama *sarama.Config
	// Publisher, when set, is used instead of a new watermill-kafka Publisher, e.g. one
	// decorated with middleware. It must send the messages of one Publish call in order, and
	// should partition with JavaPartitioner. Close does not close it.
	Publisher message.Publisher
	// Logger is Watermill's logger for the publisher; none when nil.
	Logger watermill.LoggerAdapter
}

// Producer validates, frames and publishes events of any generated message type. It is safe
// for concurrent use.
type Producer struct {
	cfg  Config
	pub  message.Publisher
	own  bool
	name string

	mu    sync.Mutex
	types map[protoreflect.FullName]*msgType
}

// msgType is what Publish needs for one message type, built on its first event.
type msgType struct {
	c         *contract.Contract
	enc       *contract.Encoder
	key       []protoreflect.FieldDescriptor
	eventTime protoreflect.FieldDescriptor
}

// New returns a producer for cfg, with a new watermill-kafka Publisher connected to
// cfg.Brokers unless cfg.Publisher is set.
func New(cfg Config) (*Producer, error) {
	if cfg.Topic == "" {
		return nil, errors.New("producer: no topic")
	}
	if cfg.Encoding == 0 {
		cfg.Encoding = contract.Confluent
	}
	if cfg.Encoding == contract.Confluent && cfg.SchemaID == 0 && cfg.Registry == nil {
		return nil, errors.New("producer: encoding confluent needs a schema id or a schema registry")
	}
	if cfg.Subject == "" {
		cfg.Subject = cfg.Topic + "-value"
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 64
	}
	p := &Producer{cfg: cfg, pub: cfg.Publisher, name: cfg.Name, types: map[protoreflect.FullName]*msgType{}}
	if p.name == "" {
		p.name = filepath.Base(os.Args[0])
	}
	if p.pub == nil {
		sc := cfg.Sarama
		if sc == nil {
			sc = sarama.NewConfig()
			sc.ClientID = "switchyard-producer"
			sc.Producer.RequiredAcks = sarama.WaitForAll
		}
		sc.Producer.Return.Successes = true
		sc.Producer.Partitioner = JavaPartitioner
		pub, err := wkafka.NewPublisher(wkafka.PublisherConfig{
			Brokers:               cfg.Brokers,
			Marshaler:             Marshaler{},
			OverwriteSaramaConfig: sc,
		}, cfg.Logger)
		if err != nil {
			return nil, fmt.Errorf("producer: connect to %s: %w", strings.Join(cfg.Brokers, ","), err)
		}
		p.pub, p.own = pub, true
	}
	return p, nil
}

// Close closes the publisher New created, after the Publish calls in progress returned.
func (p *Producer) Close() error {
	if !p.own {
		return nil
	}
	return p.pub.Close()
}

// Publish validates msgs, then sends them to the topic and returns once Kafka acknowledged
// every one. Messages with the same key are sent in order, one after the other; messages
// with different keys are sent concurrently (up to MaxInFlight), so their order across keys
// is not kept.
//
// When any message breaks its contract Publish returns an *InvalidError and sends none of
// msgs. Other errors mean that some messages may have been sent and others not.
func (p *Producer) Publish(ctx context.Context, msgs ...proto.Message) error {
	out := make([]*message.Message, len(msgs))
	var invalid []InvalidEvent
	for i, m := range msgs {
		wm, err := p.prepare(ctx, m)
		var verr *contract.ValidationError
		switch {
		case errors.As(err, &verr):
			invalid = append(invalid, InvalidEvent{Index: i, Err: verr})
		case err != nil:
			return fmt.Errorf("publish event %d: %w", i, err)
		}
		out[i] = wm
	}
	if invalid != nil {
		return &InvalidError{Total: len(msgs), Events: invalid}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.send(ctx, out)
}

// send publishes msgs grouped by key, groups concurrently.
func (p *Producer) send(ctx context.Context, msgs []*message.Message) error {
	if len(msgs) == 1 {
		return p.pub.Publish(p.cfg.Topic, msgs[0])
	}
	var groups [][]*message.Message
	byKey := map[string]int{}
	for _, m := range msgs {
		k, ok := m.Metadata[metaKey]
		if !ok {
			groups = append(groups, []*message.Message{m})
			continue
		}
		if i, seen := byKey[k]; seen {
			groups[i] = append(groups[i], m)
			continue
		}
		byKey[k] = len(groups)
		groups = append(groups, []*message.Message{m})
	}
	sem := make(chan struct{}, p.cfg.MaxInFlight)
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return errors.Join(append(errs, ctx.Err())...)
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = p.pub.Publish(p.cfg.Topic, g...)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("publish to %s: %w", p.cfg.Topic, err)
	}
	return nil
}

// prepare validates and frames one event as a Watermill message; a *contract.ValidationError
// when it breaks its rules.
func (p *Producer) prepare(ctx context.Context, m proto.Message) (*message.Message, error) {
	msg := m.ProtoReflect()
	t, err := p.typeOf(ctx, msg.Descriptor())
	if err != nil {
		return nil, err
	}
	if err := t.c.Validate(msg); err != nil {
		return nil, err
	}
	payload, err := t.enc.Encode(msg)
	if err != nil {
		return nil, err
	}
	wm := message.NewMessage(watermill.NewUUID(), payload)
	wm.SetContext(ctx)
	wm.Metadata[contract.HeaderContract] = t.c.Name()
	if ts, ok := contract.TimestampOf(msg, t.eventTime); ok {
		wm.Metadata[contract.HeaderEventTime] = ts.UTC().Format(time.RFC3339Nano)
	}
	wm.Metadata[contract.HeaderProducer] = p.name
	if t.key != nil {
		k, err := keyOf(msg, t.key)
		if err != nil {
			return nil, err
		}
		wm.Metadata[metaKey] = k
	}
	return wm, nil
}

// typeOf returns the cached msgType of md, building it on first use.
func (p *Producer) typeOf(ctx context.Context, md protoreflect.MessageDescriptor) (*msgType, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.types[md.FullName()]; t != nil {
		return t, nil
	}
	c, err := contract.ForMessage(md)
	if err != nil {
		return nil, err
	}
	t := &msgType{c: c, eventTime: contract.EventTimeField(md)}
	if p.cfg.KeyField != "" {
		if t.key, err = KeyPath(md, p.cfg.KeyField); err != nil {
			return nil, err
		}
	}
	id := p.cfg.SchemaID
	if p.cfg.Encoding == contract.Confluent && id == 0 {
		ss, err := p.cfg.Registry.SchemaByVersion(ctx, p.cfg.Subject, -1)
		if err != nil {
			return nil, fmt.Errorf("latest schema of subject %s: %w", p.cfg.Subject, err)
		}
		id = uint32(ss.ID)
	}
	if t.enc, err = c.Encoder(p.cfg.Encoding, id); err != nil {
		return nil, err
	}
	p.types[md.FullName()] = t
	return t, nil
}

// KeyPath resolves a dotted path of singular fields of md for keying events (see
// Config.KeyField).
func KeyPath(md protoreflect.MessageDescriptor, path string) ([]protoreflect.FieldDescriptor, error) {
	var fds []protoreflect.FieldDescriptor
	cur := md
	parts := strings.Split(path, ".")
	for i, name := range parts {
		if cur == nil {
			return nil, fmt.Errorf("key field %q: %s is not a message", path, strings.Join(parts[:i], "."))
		}
		fd := cur.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return nil, fmt.Errorf("key field %q: %s has no field %q", path, cur.FullName(), name)
		}
		if fd.IsList() || fd.IsMap() {
			return nil, fmt.Errorf("key field %q: %s is repeated", path, fd.Name())
		}
		last := i == len(parts)-1
		switch {
		case !last:
			cur = fd.Message()
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind ||
			fd.Kind() == protoreflect.FloatKind || fd.Kind() == protoreflect.DoubleKind:
			return nil, fmt.Errorf("key field %q is a %s; use a string, bytes, integer, bool or enum field", path, fd.Kind())
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

// keyOf renders the key of msg at path (see Config.KeyField); an unset field is its
// default value.
func keyOf(msg protoreflect.Message, path []protoreflect.FieldDescriptor) (string, error) {
	for _, fd := range path[:len(path)-1] {
		msg = msg.Get(fd).Message()
	}
	return KeyText(msg.Get(path[len(path)-1]), path[len(path)-1]), nil
}

// KeyText renders the value v of field fd as a record key (see Config.KeyField).
func KeyText(v protoreflect.Value, fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BytesKind:
		return string(v.Bytes())
	case protoreflect.BoolKind:
		return strconv.FormatBool(v.Bool())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return strconv.Itoa(int(v.Enum()))
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(v.Uint(), 10)
	}
	return strconv.FormatInt(v.Int(), 10)
}

// InvalidError is returned by Publish when events break their contracts; none of the
// call's events was sent. It names field paths and rule ids, never values.
type InvalidError struct {
	// Total is the number of events passed to Publish.
	Total int
	// Events are the invalid ones.
	Events []InvalidEvent
}

// InvalidEvent is one invalid event of a Publish call.
type InvalidEvent struct {
	// Index is the event's position in the Publish call.
	Index int
	// Err lists the violated rules.
	Err *contract.ValidationError
}

// Error implements error, e.g. "1 of 3 events invalid, none sent: event 2: auctions.v1.BidPlaced
// violates 1 rule: event_id [string.uuid]".
func (e *InvalidError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d events invalid, none sent", len(e.Events), e.Total)
	for _, ev := range e.Events {
		fmt.Fprintf(&b, "; event %d: %v", ev.Index, ev.Err)
	}
	return b.String()
}

// Unwrap returns the *contract.ValidationError of every invalid event, for errors.As.
func (e *InvalidError) Unwrap() []error {
	errs := make([]error, len(e.Events))
	for i, ev := range e.Events {
		errs[i] = ev.Err
	}
	return errs
}

// metaKey is the Watermill metadata entry that carries the record key to Marshaler; it is
// not written as a header.
const metaKey = "_switchyard_key"

// Marshaler turns the Watermill messages of a Producer into Kafka records: the key from the
// producer, the payload as the value, and the metadata as headers, the standard ones first,
// then the others sorted, then watermill's message UUID (wkafka.UUIDHeaderKey).
type Marshaler struct{}

var standard = []string{contract.HeaderContract, contract.HeaderEventTime, contract.HeaderProducer}

// Marshal implements wkafka.Marshaler.
func (Marshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	h := make([]sarama.RecordHeader, 0, len(msg.Metadata)+1)
	for _, k := range standard {
		if v, ok := msg.Metadata[k]; ok {
			h = append(h, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
		}
	}
	var rest []string
	for k := range msg.Metadata {
		if k != metaKey && !slices.Contains(standard, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		h = append(h, sarama.RecordHeader{Key: []byte(k), Value: []byte(msg.Metadata[k])})
	}
	h = append(h, sarama.RecordHeader{Key: []byte(wkafka.UUIDHeaderKey), Value: []byte(msg.UUID)})
	pm := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(msg.Payload), Headers: h}
	if k, ok := msg.Metadata[metaKey]; ok {
		pm.Key = sarama.StringEncoder(k)
	}
	return pm, nil
}
