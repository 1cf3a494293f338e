package contract

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Encoding is how an event payload is serialized on a Kafka topic.
type Encoding uint8

const (
	// Confluent is the Confluent Schema Registry wire format for Protobuf: magic byte 0,
	// a 4-byte big-endian schema id, the message-index path (a zigzag varint count, then
	// that many zigzag varint indexes; a single 0 byte stands for [0]), then the protobuf
	// binary message.
	Confluent Encoding = iota + 1
	// Raw is the bare protobuf binary message.
	Raw
	// JSON is the canonical proto3 JSON mapping (protojson).
	JSON
)

var encodingNames = [...]string{Confluent: "confluent", Raw: "raw", JSON: "json"}

// String returns the configuration name of e: "confluent", "raw" or "json".
func (e Encoding) String() string {
	if e >= Confluent && e <= JSON {
		return encodingNames[e]
	}
	return fmt.Sprintf("Encoding(%d)", uint8(e))
}

// ParseEncoding parses a configuration name ("confluent", "raw" or "json"; case
// insensitive) into an Encoding.
func ParseEncoding(s string) (Encoding, error) {
	for e := Confluent; e <= JSON; e++ {
		if strings.EqualFold(s, encodingNames[e]) {
			return e, nil
		}
	}
	return 0, fmt.Errorf("unknown encoding %q (want confluent, raw or json)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (e Encoding) MarshalText() ([]byte, error) {
	if e < Confluent || e > JSON {
		return nil, fmt.Errorf("marshal encoding: unknown encoding %d", uint8(e))
	}
	return []byte(encodingNames[e]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseEncoding.
func (e *Encoding) UnmarshalText(b []byte) error {
	v, err := ParseEncoding(string(b))
	if err != nil {
		return err
	}
	*e = v
	return nil
}

// confluentMagic is the first byte of every Confluent-framed payload.
const confluentMagic = 0

// maxMessageIndexes bounds the message-index count a frame may declare; real paths are as
// deep as message nesting (a handful).
const maxMessageIndexes = 64

var errShortFrame = errors.New("payload shorter than the 6-byte confluent header")

// FrameConfluent appends to dst the Confluent wire-format header for schemaID and the
// message-index path indexes (nil or [0] both mean the first top-level message and
// encode as a single 0 byte), then payload, and returns the extended slice.
func FrameConfluent(dst []byte, schemaID uint32, indexes []int, payload []byte) []byte {
	dst = append(dst, confluentMagic)
	dst = binary.BigEndian.AppendUint32(dst, schemaID)
	if len(indexes) == 0 || (len(indexes) == 1 && indexes[0] == 0) {
		dst = append(dst, 0)
	} else {
		dst = protowire.AppendVarint(dst, protowire.EncodeZigZag(int64(len(indexes))))
		for _, i := range indexes {
			dst = protowire.AppendVarint(dst, protowire.EncodeZigZag(int64(i)))
		}
	}
	return append(dst, payload...)
}

// SplitConfluent parses the Confluent wire-format header of payload and returns the
// schema id, the message-index path ([0] for the first top-level message) and the
// protobuf body, which aliases payload. A malformed header yields a *DecodeError with
// Reason ReasonFraming.
func SplitConfluent(payload []byte) (schemaID uint32, indexes []int, body []byte, err error) {
	return splitConfluent(payload, make([]int, 0, 1))
}

// ConfluentBody is the protobuf body of a Confluent frame (SplitConfluent without the
// schema id and path); it allocates nothing.
func ConfluentBody(payload []byte) ([]byte, error) {
	_, _, body, err := splitConfluent(payload, nil)
	return body, err
}

// splitConfluent is SplitConfluent appending the indexes to dst; with a nil dst the
// indexes are checked but not collected, and nothing is allocated on success.
func splitConfluent(payload []byte, dst []int) (uint32, []int, []byte, error) {
	if len(payload) < 6 {
		return 0, nil, nil, &DecodeError{Reason: ReasonFraming, Err: errShortFrame}
	}
	if payload[0] != confluentMagic {
		return 0, nil, nil, &DecodeError{Reason: ReasonFraming, Err: fmt.Errorf("magic byte is %#02x, want 0x00", payload[0])}
	}
	id := binary.BigEndian.Uint32(payload[1:5])
	rest := payload[5:]
	count, n := consumeZigZag(rest)
	if n < 0 {
		return 0, nil, nil, &DecodeError{Reason: ReasonFraming, Err: errors.New("malformed message-index count")}
	}
	rest = rest[n:]
	switch {
	case count == 0:
		if dst != nil {
			dst = append(dst, 0)
		}
		return id, dst, rest, nil
	case count < 0 || count > maxMessageIndexes:
		return 0, nil, nil, &DecodeError{Reason: ReasonFraming, Err: fmt.Errorf("message-index count %d out of range [0, %d]", count, maxMessageIndexes)}
	}
	for range count {
		idx, n := consumeZigZag(rest)
		if n < 0 {
			return 0, nil, nil, &DecodeError{Reason: ReasonFraming, Err: errors.New("malformed message index")}
		}
		if idx < 0 || idx > 1<<29 {
			return 0, nil, nil, &DecodeError{Reason: ReasonFraming, Err: fmt.Errorf("message index %d out of range", idx)}
		}
		rest = rest[n:]
		if dst != nil {
			dst = append(dst, int(idx))
		}
	}
	return id, dst, rest, nil
}

// consumeZigZag reads one zigzag varint; n < 0 when b does not start with one that fits
// in 32 bits (Confluent writes Java ints).
func consumeZigZag(b []byte) (v int64, n int) {
	u, n := protowire.ConsumeVarint(b)
	if n < 0 || u > 0xffffffff {
		return 0, -1
	}
	return protowire.DecodeZigZag(u), n
}

// MarshalBinary returns the protobuf binary encoding of msg, which may be a read-only
// hyperpb message. Unknown fields are kept, so a decoded event re-encodes losslessly.
// The output is deterministic (map entries sorted) so that equal events encode to equal
// bytes within one build.
func MarshalBinary(msg protoreflect.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg.Interface())
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", msg.Descriptor().FullName(), err)
	}
	return b, nil
}

// MarshalJSON returns the canonical proto3 JSON (protojson) encoding of msg, which may be
// a read-only hyperpb message. google.protobuf.Any values resolve against the global
// registry; use Contract.Encode to resolve them against the contract's registry.
func MarshalJSON(msg protoreflect.Message) ([]byte, error) {
	b, err := protojson.Marshal(msg.Interface())
	if err != nil {
		return nil, fmt.Errorf("marshal %s as json: %w", msg.Descriptor().FullName(), err)
	}
	return b, nil
}

// DetectEncoding recognizes the encoding of a payload from its first byte, for readers of
// topics whose encoding is not configured: 0x00 is the Confluent magic byte (a protobuf
// message never starts with it: field number 0 is invalid), '{' after JSON whitespace starts
// protojson (as protobuf it would be a deprecated group of field 15), and anything else is
// taken for raw protobuf.
func DetectEncoding(payload []byte) Encoding {
	for _, b := range payload {
		switch b {
		case 0:
			return Confluent
		case '{':
			return JSON
		case ' ', '\t', '\n', '\r':
			continue
		}
		return Raw
	}
	return Raw
}
