package contract

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"buf.build/go/hyperpb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// hyperOptions are shared by every binary decode; built once so Decode does not allocate
// option closures. Aliasing spares a copy of every payload; Decode documents the
// resulting contract (payload immutable until Release).
//
// hyperpb reads up to 8 bytes past the end of strings while checking UTF-8 (safe: it
// never crosses a page), which the race detector's checkptr instrumentation reports as a
// fatal error when those bytes belong to another allocation. Race builds therefore let
// hyperpb copy each payload into a padded buffer: slower and allocating, but otherwise
// identical.
var hyperOptions = []hyperpb.UnmarshalOption{hyperpb.WithAllowAlias(!raceBuild)}

// Decoder decodes payloads of one Contract in one Encoding. It is not safe for concurrent
// use: give each goroutine its own (NewDecoder is cheap) and reuse it for every batch.
//
// Binary payloads are parsed by hyperpb into arenas the Decoder owns and recycles, so in
// steady state (after the first batches have sized the arenas) a binary Decode performs no
// heap allocation. Every message returned since the last Release stays valid until the
// next Release.
type Decoder struct {
	c   *Contract
	enc Encoding
	// shared holds one arena per live message decoded (or borrowed, see Borrow) since the
	// last Release (hyperpb allows a single top-level parse per arena). Release lets go of
	// them; a freed arena goes back to the process-wide arenas pool, so its memory is reused
	// by the next batch of any decoder: what arenas hold follows the messages alive at once,
	// not the largest batch each decoder (one per handler goroutine of a lane) ever saw.
	shared []*Arena
	// last reports whether the latest Decode (or Borrow) took an arena (a payload rejected
	// before parsing takes none), so Discard knows whether there is one to give back.
	last bool
	json protojson.UnmarshalOptions

	// schemas is the schema-id policy of Confluent frames (nil: any id, the contract's own
	// file); lastID and lastFrame cache its verdict on the latest accepted id, so a stream
	// of one schema id consults it once.
	schemas   *Schemas
	lastID    uint32
	lastFrame *frameSchema
}

// NewDecoder returns a Decoder for payloads of the contract in enc. It panics if enc is
// not Confluent, Raw or JSON (use ParseEncoding for configuration input).
func (c *Contract) NewDecoder(enc Encoding) *Decoder {
	if enc < Confluent || enc > JSON {
		panic(fmt.Sprintf("contract: NewDecoder: unknown encoding %d", uint8(enc)))
	}
	return &Decoder{
		c:   c,
		enc: enc,
		// Unknown JSON keys are dropped rather than rejected, so producers can add fields
		// to a contract before this router is redeployed (binary decoding keeps unknown
		// fields, and re-encodes them).
		json: protojson.UnmarshalOptions{DiscardUnknown: true, Resolver: c.registry.types},
	}
}

// CheckSchemas makes the Decoder check the schema id of Confluent frames against s (see
// NewSchemas) and returns the Decoder. A nil s, the default, accepts any schema id and
// checks the message-index path against the contract's own .proto file.
func (d *Decoder) CheckSchemas(s *Schemas) *Decoder {
	d.schemas, d.lastFrame = s, nil
	return d
}

// Contract returns the contract the Decoder decodes.
func (d *Decoder) Contract() *Contract { return d.c }

// Encoding returns the encoding the Decoder expects.
func (d *Decoder) Encoding() Encoding { return d.enc }

// Decode parses payload as the contract's message. It does not validate (see
// Contract.Validate).
//
// For Confluent and Raw the result is a read-only hyperpb message that aliases payload:
// payload must not be modified, and the message must not be used, after the next Release.
// Mutating methods of the message (Set, Mutable, Clear...) panic. A contract hyperpb cannot
// decode exactly (HyperpbExact) gives a fresh dynamicpb message instead.
//
// For JSON the result is a fresh, mutable dynamicpb message that does not alias payload;
// unknown JSON keys are ignored.
//
// A Confluent frame must carry the contract's message-index path: its path within its .proto
// file or, with a Schema Registry (CheckSchemas), within the registry's schema of the frame's
// schema id. Without a policy any schema id is accepted; with one, ids it refuses fail.
//
// A payload that cannot be decoded yields a *DecodeError (ReasonFraming for a frame of
// another message or schema); the Decoder stays usable. A *RegistryError means the Schema
// Registry could not be asked about the frame's schema id: it is transient, so retry the
// payload later rather than dead-letter it.
func (d *Decoder) Decode(payload []byte) (protoreflect.Message, error) {
	d.last = false
	switch d.enc {
	case Confluent:
		body, err := d.checkFrame(payload)
		if err != nil {
			return nil, err
		}
		return d.decodeBinary(body)
	case Raw:
		return d.decodeBinary(payload)
	default:
		return d.decodeJSON(payload)
	}
}

func (d *Decoder) decodeBinary(body []byte) (protoreflect.Message, error) {
	if d.c.hyper == nil {
		return d.decodeExact(body)
	}
	// hyperpb v0.1.3 reads out of bounds on some malformed input; see wire.go.
	if err := checkWire(body, d.c.wire, 0); err != nil {
		return nil, &DecodeError{Reason: ReasonProtobuf, Err: err}
	}
	// Take the arena before parsing: a failed parse still holds arena memory that Release
	// must free.
	a := takeArena()
	d.shared = append(d.shared, a)
	d.last = true
	m := a.shared.NewMessage(d.c.hyper)
	if err := m.Unmarshal(body, hyperOptions...); err != nil {
		return nil, &DecodeError{Reason: ReasonProtobuf, Err: err}
	}
	a.c, a.msg = d.c, m
	return m, nil
}

// decodeExact decodes body with protobuf-go, for a contract hyperpb cannot decode exactly
// (HyperpbExact): a fresh dynamicpb message that does not alias body and is not shared.
func (d *Decoder) decodeExact(body []byte) (protoreflect.Message, error) {
	m := dynamicpb.NewMessage(d.c.desc)
	if err := (proto.UnmarshalOptions{Resolver: d.c.registry.types}).Unmarshal(body, m); err != nil {
		return nil, &DecodeError{Reason: ReasonProtobuf, Err: err}
	}
	return m, nil
}

func (d *Decoder) decodeJSON(payload []byte) (protoreflect.Message, error) {
	m := dynamicpb.NewMessage(d.c.desc)
	if err := d.json.Unmarshal(payload, m); err != nil {
		return nil, &DecodeError{Reason: ReasonJSON, Err: errors.New(redactJSONError(err))}
	}
	return m, nil
}

// RedactJSONError renders a protojson error without the token it quotes (see
// redactJSONError), for messages about input that may hold personal data.
func RedactJSONError(err error) string { return redactJSONError(err) }

// redactJSONError keeps protojson's description of what went wrong and where, but drops
// the offending token, which is payload data. protojson errors look like
// `proto: (line 1:13): invalid value for string field eventId: 42`,
// `proto: syntax error (line 1:1): unexpected token [` or
// `proto: (line 1:16): invalid google.protobuf.Timestamp value "2025-13-01"`.
func redactJSONError(err error) string {
	// protobuf-go randomizes the space after "proto:" (a regular or a non-breaking one).
	msg := strings.TrimLeft(strings.TrimPrefix(err.Error(), "proto:"), " \u00a0")
	pos := ""
	if i := strings.Index(msg, "(line "); i >= 0 {
		if j := strings.IndexByte(msg[i:], ')'); j >= 0 {
			pos = msg[:i+j+1]
			msg = strings.TrimPrefix(msg[i+j+1:], ": ")
		}
	}
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[:i] // "...field eventId: 42"
	}
	msg = quotedToken.ReplaceAllString(msg, "")
	for _, p := range []string{"unexpected token", "invalid value"} {
		if strings.HasPrefix(msg, p) && !strings.HasPrefix(msg, "invalid value for ") {
			msg = p // "unexpected token [", "invalid value nope"
		}
	}
	msg = strings.TrimSpace(msg)
	switch {
	case pos == "":
		return msg
	case msg == "":
		return pos
	default:
		return pos + ": " + msg
	}
}

var quotedToken = regexp.MustCompile(`\s*"(?:[^"\\]|\\.)*"`)

// Release invalidates every message returned by Decode (or Borrow) since the previous
// Release and recycles their memory for the next batch (a message another Decoder borrowed
// lives on until that one lets go too). Call it once the batch has been routed and written
// (or dead-lettered), never while a message of the batch is still referenced.
func (d *Decoder) Release() {
	for i, a := range d.shared {
		a.release()
		d.shared[i] = nil
	}
	d.shared = d.shared[:0]
	d.last = false
}

// Live returns how many binary-decoded messages are awaiting Release.
func (d *Decoder) Live() int { return len(d.shared) }

// Discard gives back the memory of the message the last Decode (or Borrow) returned, for the
// next Decode to reuse: call it when that message will not be read again (it matched no
// route, or its sink writes the original payload). The message must not be used afterwards.
// Without Discard, every message of a batch holds its arena until Release.
func (d *Decoder) Discard() {
	if d.last {
		d.last = false
		n := len(d.shared) - 1
		d.shared[n].release()
		d.shared[n] = nil
		d.shared = d.shared[:n]
	}
}
