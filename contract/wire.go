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
// malformed. It allocates nothing; drop it once
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
//
// Tags, varints and lengths of up to nine bytes are read inline (varints only for their
// length); anything else goes through protowire, which gives the errors. The result is
// protowire's walk exactly (TestCheckWire_matches_protowire, FuzzCheckWire): it was as
// costly as hyperpb's parse itself in the fan-out profile when every read was a call.
func checkWire(b []byte, s *wireShape, depth int) error {
	if depth > maxWireDepth {
		return errWireDepth
	}
	for len(b) > 0 {
		tag, n := fastVarint(b)
		num, typ := protowire.Number(tag>>3), protowire.Type(tag&7)
		if n == 0 || tag>>3 < uint64(protowire.MinValidNumber) || tag>>3 > uint64(protowire.MaxValidNumber) {
			num, typ, n = protowire.ConsumeTag(b)
			if n < 0 {
				return wireError(n)
			}
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			if n = varintLen(b); n == 0 {
				_, n = protowire.ConsumeVarint(b)
			}
		case protowire.Fixed32Type:
			n = 4
			if len(b) < 4 {
				n = -1 // protowire's errCodeTruncated
			}
		case protowire.Fixed64Type:
			n = 8
			if len(b) < 8 {
				n = -1
			}
		case protowire.BytesType:
			size, m := fastVarint(b)
			if m == 0 || size > uint64(len(b)-m) {
				var v []byte
				if v, n = protowire.ConsumeBytes(b); n < 0 {
					break
				}
				size, m = uint64(len(v)), n-len(v)
			}
			n = m + int(size)
			if s != nil {
				if sub := s.sub(num); sub != nil {
					if err := checkWire(b[m:n], sub, depth+1); err != nil {
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

// fastVarint decodes a varint of at most nine bytes (no overflow is possible there); n is 0
// when b does not start with one, and protowire must decide.
func fastVarint(b []byte) (v uint64, n int) {
	for i := 0; i < len(b) && i < 9; i++ {
		c := b[i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

// varintLen is the length of a varint of at most nine bytes at the start of b, or 0.
func varintLen(b []byte) int {
	for i := 0; i < len(b) && i < 9; i++ {
		if b[i] < 0x80 {
			return i + 1
		}
	}
	return 0
}

func wireError(n int) error {
	return fmt.Errorf("invalid wire format: %w", protowire.ParseError(n))
}

// HyperpbExact reports whether hyperpb v0.1.3 decodes every field of md, and of the messages
// it nests, as protobuf-go does. It does not for a oneof member of kind int64, uint64 or
// sint64: hyperpb parses those varints as 32-bit ones (bufbuild/hyperpb-go#38; fixed after
// v0.1.3, which is the newest release the module proxy serves here), so -2 reads as
// 4294967294. A Decoder decodes such contracts with protobuf-go (dynamicpb): slower, and
// its messages are not shared between lanes, but exact. Drop this once hyperpb is upgraded.
func HyperpbExact(md protoreflect.MessageDescriptor) bool {
	return hyperpbExact(md, make(map[protoreflect.FullName]bool))
}

func hyperpbExact(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[md.FullName()] {
		return true // being checked further up
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			switch fd.Kind() {
			case protoreflect.Int64Kind, protoreflect.Uint64Kind, protoreflect.Sint64Kind:
				return false
			}
		}
		if fd.IsMap() {
			if v := fd.MapValue(); v.Message() != nil && !hyperpbExact(v.Message(), seen) {
				return false
			}
			continue
		}
		if fd.Message() != nil && !hyperpbExact(fd.Message(), seen) {
			return false
		}
	}
	return true
}
