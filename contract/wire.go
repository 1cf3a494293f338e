package contract

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Why this file exists: hyperpb v0.1.3 skips unknown group fields (wire type 3) without
// bounds checks, so a group that is not closed before the end of its message makes it
// read past the payload (found by FuzzDecodeRaw; it crashes the process under fuzzing
// instrumentation). Before a payload reaches hyperpb, checkWire walks its wire structure,
// descending into every field hyperpb parses as a message, and rejects anything
// malformed. It allocates nothing and costs a small fraction of parsing; drop it once
// hyperpb bounds-checks group skipping.

// maxWireDepth mirrors hyperpb's default recursion limit.
const maxWireDepth = 1000

// wireShape tells checkWire which length-delimited fields of a message hyperpb parses as
// messages (message fields, map entries and their message values).
type wireShape struct {
	dense  []*wireShape // indexed by field number, for numbers below len(dense)
	sparse map[protowire.Number]*wireShape
}

func (s *wireShape) sub(num protowire.Number) *wireShape {
	if int(num) < len(s.dense) {
		return s.dense[num]
	}
	return s.sparse[num]
}

// newWireShape builds the shape of md; shapes of recursive messages are shared.
func newWireShape(md protoreflect.MessageDescriptor, memo map[protoreflect.FullName]*wireShape) *wireShape {
	if s, ok := memo[md.FullName()]; ok {
		return s
	}
	s := new(wireShape)
	memo[md.FullName()] = s
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Message() == nil || fd.Kind() == protoreflect.GroupKind {
			continue // groups are checked structurally by protowire.ConsumeGroup
		}
		sub := newWireShape(fd.Message(), memo)
		if n := int(fd.Number()); n < 256 {
			if n >= len(s.dense) {
				s.dense = append(s.dense, make([]*wireShape, n+1-len(s.dense))...)
			}
			s.dense[n] = sub
		} else {
			if s.sparse == nil {
				s.sparse = make(map[protowire.Number]*wireShape)
			}
			s.sparse[fd.Number()] = sub
		}
	}
	return s
}

var (
	errWireDepth    = errors.New("invalid wire format: messages nested too deeply")
	errWireEndGroup = errors.New("invalid wire format: end-group tag outside a group")
)

// checkWire reports whether b is structurally valid protobuf for shape s: every tag,
// varint, fixed value, length and group is well formed and within its enclosing message.
// Field values (UTF-8, enum ranges, ...) are left to the parser.
func checkWire(b []byte, s *wireShape, depth int) error {
	if depth > maxWireDepth {
		return errWireDepth
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return wireError(n)
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			_, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			_, n = protowire.ConsumeFixed32(b)
		case protowire.Fixed64Type:
			_, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			if n >= 0 && s != nil {
				if sub := s.sub(num); sub != nil {
					if err := checkWire(v, sub, depth+1); err != nil {
						return err
					}
				}
			}
		case protowire.StartGroupType:
			_, n = protowire.ConsumeGroup(num, b)
		case protowire.EndGroupType:
			return errWireEndGroup
		default:
			return fmt.Errorf("invalid wire format: field %d has reserved wire type %d", num, typ)
		}
		if n < 0 {
			return wireError(n)
		}
		b = b[n:]
	}
	return nil
}

func wireError(n int) error {
	return fmt.Errorf("invalid wire format: %w", protowire.ParseError(n))
}
