// Package kafka is the kafka sink: it writes events to Kafka topics through the router's
// franz-go producer (internal/kafkaconn).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/internal/kafkaconn"
	"github.com/switchyard-dev/switchyard/sinks"
)

// Options are what the sink needs besides its own config.
type Options struct {
	// Kafka is the cluster to write to (see kafkaconn.FranzOpts).
	Kafka []kgo.Opt
	// Producer holds the producer settings besides compression (record size limit, delivery
	// timeout, metrics).
	Producer kafkaconn.ProducerOptions
	// Input is the encoding events were read with, so that equal output encodings pass the
	// original bytes through.
	Input contract.Encoding
}

// Sink writes records to Kafka. It is goroutine-safe.
type Sink struct {
	cfg      Config
	opt      Options
	deps     sinks.Deps
	prod     *kafkaconn.Producer
	keyPath  []protoreflect.FieldDescriptor // nil: source key or none
	keyPaths sync.Map                       // protoreflect.MessageDescriptor -> []protoreflect.FieldDescriptor
	encode   func(r *event.Record) ([]byte, error)
	schemaID uint32
}

// New validates the configuration and connects the publisher.
func New(cfg Config, opt Options, deps sinks.Deps) (*Sink, error) {
	s := &Sink{cfg: cfg, opt: opt, deps: deps, schemaID: uint32(cfg.SchemaID)}
	if err := s.plan(); err != nil {
		return nil, err
	}
	po := opt.Producer
	po.Compression = cfg.Compression
	if cfg.ExactlyOnce {
		if po.TransactionalID == "" {
			return nil, errors.New("exactly_once needs a transactional id")
		}
		po.TransactionTimeout = cfg.TransactionTimeout
	} else {
		po.TransactionalID = ""
	}
	prod, err := kafkaconn.NewProducer(opt.Kafka, po)
	if err != nil {
		return nil, err
	}
	s.prod = prod
	return s, nil
}

// ValidateConfig checks a kafka sink's options against the schema it will write, without
// connecting. It returns one message per problem.
func ValidateConfig(cfg Config, input contract.Encoding, schema protoreflect.MessageDescriptor) []string {
	s := &Sink{cfg: cfg, opt: Options{Input: input}, deps: sinks.Deps{Schema: schema}}
	if err := s.plan(); err != nil {
		return []string{err.Error()}
	}
	return nil
}

func (s *Sink) plan() error {
	switch s.cfg.Key {
	case "", "source", "none":
	default:
		path, err := FieldPath(s.deps.Schema, s.cfg.Key)
		if err != nil {
			return fmt.Errorf("key: %w", err)
		}
		s.keyPath = path
	}
	in := s.opt.Input
	var out contract.Encoding
	switch s.cfg.Encoding {
	case "", "protobuf":
		out = contract.Raw
	case "confluent":
		if in != contract.Confluent && s.cfg.SchemaID <= 0 {
			return errors.New("schema_id is required when encoding is confluent and the input is not Confluent-framed")
		}
		out = contract.Confluent
	case "json":
		out = contract.JSON
	default:
		return fmt.Errorf("unknown encoding %q", s.cfg.Encoding)
	}
	// nil indexes: the output schema's first message, the event (or the route's output).
	enc, err := contract.NewEncoder(out, s.schemaID, nil)
	if err != nil {
		return err
	}
	s.encode = func(r *event.Record) ([]byte, error) {
		if !r.Transformed {
			// The original bytes, or their protobuf body, where they already are in out.
			return enc.Reencode(in, r.Value, r.Message)
		}
		if out == contract.Confluent && s.schemaID == 0 {
			// Compile refuses this configuration; never frame a new shape with the input's id.
			return nil, errors.New("schema_id is required to frame transformed events")
		}
		return enc.Encode(r.Message)
	}
	return nil
}

// WritesPayload implements sinks.PayloadWriter: untransformed records are written from their
// original bytes (the key is the source key or none, and the output encoding is the input's,
// or raw protobuf from Confluent-framed input).
func (s *Sink) WritesPayload() bool {
	if s.keyPath != nil {
		return false
	}
	in := s.opt.Input
	switch s.cfg.Encoding {
	case "", "protobuf":
		return in == contract.Raw || in == contract.Confluent
	case "confluent":
		return in == contract.Confluent
	case "json":
		return in == contract.JSON
	}
	return false
}

// FieldPath resolves a dotted field path ("bidder.id") to its fields. Every field but the last
// must be a singular message; the last must be a singular scalar.
func FieldPath(md protoreflect.MessageDescriptor, path string) ([]protoreflect.FieldDescriptor, error) {
	var out []protoreflect.FieldDescriptor
	parts := strings.Split(path, ".")
	for i, name := range parts {
		if md == nil {
			return nil, fmt.Errorf("field path %q: %q is not a message", path, parts[i-1])
		}
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return nil, fmt.Errorf("field path %q: %s has no field %q", path, md.FullName(), name)
		}
		if fd.IsList() || fd.IsMap() {
			return nil, fmt.Errorf("field path %q: %q is repeated", path, name)
		}
		out = append(out, fd)
		md = fd.Message()
	}
	if md != nil {
		return nil, fmt.Errorf("field path %q: %q is a message, not a scalar", path, parts[len(parts)-1])
	}
	return out, nil
}

// keyFields returns the key's field path in md: the configured schema's, or resolved once per
// other descriptor (routes' transforms may give one sink several shapes).
func (s *Sink) keyFields(md protoreflect.MessageDescriptor) []protoreflect.FieldDescriptor {
	if md == s.keyPath[0].ContainingMessage() {
		return s.keyPath
	}
	if p, ok := s.keyPaths.Load(md); ok {
		return p.([]protoreflect.FieldDescriptor)
	}
	p, err := FieldPath(md, s.cfg.Key)
	if err != nil {
		p = nil // checked at load for every route's shape; no key rather than a wrong one
	}
	s.keyPaths.Store(md, p)
	return p
}

func (s *Sink) key(r *event.Record) []byte {
	switch {
	case s.keyPath != nil:
		path := s.keyFields(r.Message.Descriptor())
		if path == nil {
			return nil
		}
		m := r.Message
		for _, fd := range path[:len(path)-1] {
			m = m.Get(fd).Message()
		}
		fd := path[len(path)-1]
		v := m.Get(fd)
		if fd.Kind() == protoreflect.BytesKind {
			return v.Bytes()
		}
		if fd.Kind() == protoreflect.StringKind {
			return []byte(v.String())
		}
		return []byte(v.String())
	case s.cfg.Key == "none":
		return nil
	default:
		return r.Key
	}
}

// Write produces every record. A record that cannot be encoded, or that is too large for the
// producer or the topic, fails alone (permanently, wrapping sinks.ErrTooLarge for the size);
// any other produce error is transient and only that record is retried.
func (s *Sink) Write(ctx context.Context, records []*event.Record) error {
	if len(records) == 0 {
		return nil
	}
	// Produce returns once every record is acknowledged and franz-go keeps none of them, so the
	// records and their index are pooled: building 10,000 fresh 176-byte kgo.Records per batch
	// was a tenth of a pass-through lane's CPU, most of it first touches of new memory.
	sc := writeScratchPool.Get().(*writeScratch)
	defer sc.put()
	krs := slices.Grow(sc.krs[:0], len(records))
	out := slices.Grow(sc.out[:0], len(records))
	index := slices.Grow(sc.index[:0], len(records)) // out[j] is records[index[j]]
	defer func() { sc.krs, sc.out, sc.index = krs, out, index }()
	var failed map[int]error
	for i, r := range records {
		value, err := s.encode(r)
		if err != nil {
			if failed == nil {
				failed = map[int]error{}
			}
			failed[i] = fmt.Errorf("encode %s: %w", s.cfg.Encoding, err)
			continue
		}
		krs = append(krs, kgo.Record{Topic: r.Target, Key: s.key(r), Value: value})
		kr := &krs[len(krs)-1]
		if kr.Topic == "" {
			kr.Topic = s.cfg.Topic
		}
		if s.cfg.Headers && len(r.Headers) > 0 {
			kr.Headers = make([]kgo.RecordHeader, len(r.Headers))
			for j, h := range r.Headers {
				kr.Headers[j] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
			}
		}
		out = append(out, kr)
		index = append(index, i)
	}
	var retry map[int]error
	for j, err := range s.prod.Produce(ctx, out) {
		if errors.Is(err, kafkaconn.ErrTooLarge) {
			if failed == nil {
				failed = map[int]error{}
			}
			failed[index[j]] = fmt.Errorf("%w: %w", sinks.ErrTooLarge, err)
			continue
		}
		if retry == nil {
			retry = map[int]error{}
		}
		retry[index[j]] = err
	}
	if failed == nil && retry == nil {
		return nil
	}
	return &sinks.BatchError{Failed: failed, Retry: retry, Landed: true}
}

// writeScratch is the per-Write scratch of the records produced.
type writeScratch struct {
	krs   []kgo.Record
	out   []*kgo.Record
	index []int
}

var writeScratchPool = sync.Pool{New: func() any { return new(writeScratch) }}

// put drops the references to the batch (values, keys, headers) and returns sc to the pool.
func (sc *writeScratch) put() {
	clear(sc.krs)
	clear(sc.out)
	writeScratchPool.Put(sc)
}

// Transactions returns the sink's transactional producer when exactly_once is set, else nil.
// The engine then writes each source batch in one transaction: Begin, Write, the lane's dead
// letters through the same producer, and Commit with the batch's offsets.
func (s *Sink) Transactions() *kafkaconn.Producer {
	if !s.cfg.ExactlyOnce {
		return nil
	}
	return s.prod
}

// Close closes the producer.
func (s *Sink) Close(context.Context) error {
	if s.prod == nil {
		return nil
	}
	return s.prod.Close()
}
