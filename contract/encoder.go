package contract

import (
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Encoder serializes events in one output encoding; Contract.Encode and the kafka sink both
// use it. It is safe for concurrent use.
type Encoder struct {
	enc      Encoding
	schemaID uint32
	indexes  []int // Confluent message-index path; nil: the first top-level message
	// types resolves google.protobuf.Any for JSON; nil: the global registry.
	types interface {
		protoregistry.ExtensionTypeResolver
		protoregistry.MessageTypeResolver
	}
	// plans are the compiled JSON encoders (jsonenc.go) by message descriptor, a nil
	// *jsonMsg for a type protojson must write; built on first use.
	plans sync.Map
	size  atomic.Int64 // largest JSON written so far (up to 64 KiB): the next buffer's size
}

// jsonPlan returns the compiled JSON encoder of md, nil when protojson must write it.
func (e *Encoder) jsonPlan(md protoreflect.MessageDescriptor) *jsonMsg {
	if p, ok := e.plans.Load(md); ok {
		return p.(*jsonMsg)
	}
	p, ok := compileJSON(md, make(map[protoreflect.FullName]*jsonMsg))
	if !ok {
		p = nil
	}
	e.plans.Store(md, p)
	return p
}

// NewEncoder returns an encoder for enc. schemaID and indexes are the Confluent framing
// (ignored for Raw and JSON; nil indexes mean the first top-level message). Any values in JSON
// resolve against the global registry; Contract.Encoder resolves them against the contract's.
func NewEncoder(enc Encoding, schemaID uint32, indexes []int) (*Encoder, error) {
	if enc < Confluent || enc > JSON {
		return nil, fmt.Errorf("unknown encoding %d", uint8(enc))
	}
	return &Encoder{enc: enc, schemaID: schemaID, indexes: indexes}, nil
}

// Encoder returns the encoder for messages of c in enc, framed (Confluent) with schemaID and
// the contract's message indexes.
func (c *Contract) Encoder(enc Encoding, schemaID uint32) (*Encoder, error) {
	e, err := NewEncoder(enc, schemaID, c.indexes)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", c.desc.FullName(), err)
	}
	e.types = c.registry.types
	return e, nil
}

// Encoding is the encoder's output encoding.
func (e *Encoder) Encoding() Encoding { return e.enc }

// Encode serializes msg, which may be a read-only hyperpb message: protobuf binary (Raw, see
// MarshalBinary), that framed with the schema id and indexes (Confluent), or protojson (JSON).
func (e *Encoder) Encode(msg protoreflect.Message) ([]byte, error) {
	switch e.enc {
	case JSON:
		if plan := e.jsonPlan(msg.Descriptor()); plan != nil {
			if b, ok := plan.appendJSON(make([]byte, 0, max(256, e.size.Load())), msg); ok {
				if n := int64(len(b)); n > e.size.Load() && n <= 64<<10 {
					e.size.Store(n)
				}
				return b, nil
			}
		}
		opts := protojson.MarshalOptions{}
		if e.types != nil {
			opts.Resolver = e.types
		}
		b, err := opts.Marshal(msg.Interface())
		if err != nil {
			return nil, fmt.Errorf("marshal %s as json: %w", msg.Descriptor().FullName(), err)
		}
		return b, nil
	case Confluent:
		body, err := MarshalBinary(msg)
		if err != nil {
			return nil, err
		}
		return e.frame(body), nil
	}
	return MarshalBinary(msg)
}

func (e *Encoder) frame(body []byte) []byte {
	return FrameConfluent(make([]byte, 0, len(body)+6+2*len(e.indexes)), e.schemaID, e.indexes, body)
}

// Reencode returns the event msg, decoded from payload read in encoding in, in the encoder's
// encoding, reusing the original bytes where they already hold it: the payload itself when
// the encodings are equal (a Confluent payload keeps its own schema id and indexes), the
// protobuf body of a Confluent payload for Raw, and a Raw payload framed for Confluent.
// Otherwise msg is encoded. The result may share payload's memory.
func (e *Encoder) Reencode(in Encoding, payload []byte, msg protoreflect.Message) ([]byte, error) {
	switch {
	case in == e.enc:
		return payload, nil
	case e.enc == Raw && in == Confluent:
		_, _, body, err := SplitConfluent(payload)
		return body, err
	case e.enc == Confluent && in == Raw:
		return e.frame(payload), nil
	}
	return e.Encode(msg)
}
