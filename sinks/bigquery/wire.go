package bigquery

import (
	"errors"
	"fmt"
	"math"

	"buf.build/go/hyperpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/event"
)

// Rows from bytes. A record routed without a decoded message (the sink writes payloads, see
// WritesPayload) becomes a row by transcoding its serialized contract message field by
// field: each field's tag is renumbered to its writer field, strings, bytes and doubles are
// copied as they are, and the values BigQuery takes in another form (enum names, TIMESTAMP
// microseconds, INTERVAL literals, unwrapped wrappers, widened integers) are converted from
// the wire value alone. No message is built and no field is looked up by descriptor.
//
// The transcoder handles payloads in the canonical form every protobuf encoder writes: each
// singular field and each oneof at most once, a map's entries in one run with distinct keys
// and both key and value, varints no longer than their value needs, 32-bit and bool values
// in range. Anything else (a field repeated on the wire, which a parser merges; two members
// of a oneof; groups; a wire type the field cannot have; an unknown value of a closed enum)
// is decoded as the lane decoded it (decodeRow) and written by appendRow, so a row always
// holds what the lane's message would have made, including where hyperpb reads a
// non-canonical payload differently from protobuf-go.

// errNotCanonical sends a payload to the decoding path (appendRow).
var errNotCanonical = errors.New("payload is not in canonical form")

const (
	maxWireFields = 256 // fields per message the seen set covers
	maxWireOneofs = 64
)

// wirePlan is what transcoding needs of a msgPlan beyond it, derived once (prepareWire).
type wirePlan struct {
	byNum    []*fieldPlan // contract field number -> plan, for numbers below len(byNum)
	sparse   map[protowire.Number]*fieldPlan
	defaults []*fieldPlan // fields written as their zero value when absent (no presence)
}

// prepareWire derives the transcoding plan of p and its records, reporting whether they can
// be transcoded.
func (p *msgPlan) prepareWire() bool {
	w := &p.wire
	if len(p.fields) > maxWireFields {
		return false
	}
	oneofs := map[protoreflect.OneofDescriptor]int{}
	maxNum := protowire.Number(0)
	for i, fp := range p.fields {
		fd := fp.fd
		if fp.kind == kJSON || fd.Kind() == protoreflect.GroupKind {
			return false
		}
		if fp.isMap {
			if !prepareEntry(fp.key) || (fp.val != nil && !prepareEntry(fp.val)) {
				return false
			}
		} else if fp.kind == kMessage && !fp.sub.prepareWire() {
			return false
		}
		fp.slot, fp.oneof, fp.pk = i, -1, fd.Kind()
		if fp.kind == kWrapper {
			fp.innerPK = fp.f1.Kind()
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			n, ok := oneofs[od]
			if !ok {
				n = len(oneofs)
				oneofs[od] = n
			}
			fp.oneof = n
		}
		if fp.kind == kEnum {
			fp.closed = fd.Enum().IsClosed()
		}
		if !fp.presence && !fp.list && !fp.message && !fp.isMap {
			zero, err := appendValue(nil, fp, fd.Default())
			if err != nil {
				return false
			}
			fp.zero = zero
			w.defaults = append(w.defaults, fp)
		}
		maxNum = max(maxNum, fd.Number())
	}
	if len(oneofs) > maxWireOneofs {
		return false
	}
	if maxNum < 1024 {
		w.byNum = make([]*fieldPlan, maxNum+1)
		for _, fp := range p.fields {
			w.byNum[fp.fd.Number()] = fp
		}
	} else {
		w.sparse = make(map[protowire.Number]*fieldPlan, len(p.fields))
		for _, fp := range p.fields {
			w.sparse[fp.fd.Number()] = fp
		}
	}
	return true
}

// prepareEntry prepares the key or value plan of a map entry.
func prepareEntry(fp *fieldPlan) bool {
	fp.oneof, fp.pk = -1, fp.fd.Kind()
	if fp.kind == kWrapper {
		fp.innerPK = fp.f1.Kind()
	}
	switch fp.kind {
	case kJSON:
		return false
	case kMessage:
		return fp.sub.prepareWire()
	case kEnum:
		fp.closed = fp.fd.Enum().IsClosed()
	}
	return true
}

func (w *wirePlan) field(num protowire.Number) *fieldPlan {
	if w.sparse != nil {
		return w.sparse[num]
	}
	if int(num) < len(w.byNum) {
		return w.byNum[num]
	}
	return nil
}

// appendWireRow is appendRow for a record without a decoded message: body is its serialized
// contract message (the payload without its Confluent frame).
func (l *layout) appendWireRow(t *transcoder, b []byte, r *event.Record, body []byte, landedMicros int64) ([]byte, error) {
	start := len(b)
	t.eventTime, t.evSet = l.eventTime, false
	b, err := t.message(b, l.root, body, true)
	ev := kafkaMicros(r, landedMicros)
	if err == nil && t.evSet {
		ev, err = timestampMicros(t.evSec, t.evNanos)
	}
	if err != nil {
		// Not canonical, or a value BigQuery cannot take: what the lane's message holds
		// there (a field seen again may replace a value) is the decoding path's to say.
		return l.decodeRow(b[:start], r, body, landedMicros)
	}
	return l.appendMeta(b, r, ev, landedMicros), nil
}

// decodeRow decodes body into a message and writes it with appendRow. It decodes as the
// lane did (contract.Decoder: hyperpb, or protobuf-go for a contract hyperpb cannot decode
// exactly), so the row is the one the lane's message would have made.
func (l *layout) decodeRow(b []byte, r *event.Record, body []byte, landedMicros int64) (out []byte, err error) {
	start := len(b)
	defer func() {
		// hyperpb v0.1.3 panics on some payloads; the lane recovered from the same panic and
		// dead-lettered the record, so this is a row that cannot be made, not a stalled batch.
		if p := recover(); p != nil {
			out, err = b[:start], fmt.Errorf("decode %s: panic: %v", l.contract.FullName(), p)
		}
	}()
	var m protoreflect.Message
	if ty := l.hyperType(); ty != nil {
		hm := hyperpb.NewMessage(ty)
		if err := hm.Unmarshal(body); err != nil {
			return b, fmt.Errorf("decode %s: %w", l.contract.FullName(), err)
		}
		m = hm
	} else {
		dm := dynamicpb.NewMessage(l.contract)
		if err := proto.Unmarshal(body, dm); err != nil {
			return b, fmt.Errorf("decode %s: %w", l.contract.FullName(), err)
		}
		m = dm
	}
	dec := *r
	dec.Message = m
	return l.appendRow(b, &dec, landedMicros)
}

// hyperType is the hyperpb type of the contract, compiled on first use; nil when hyperpb
// cannot decode it exactly (contract.HyperpbExact).
func (l *layout) hyperType() *hyperpb.MessageType {
	l.hyperOnce.Do(func() {
		if contract.HyperpbExact(l.contract) {
			l.hyper = hyperpb.CompileMessageDescriptor(l.contract)
		}
	})
	return l.hyper
}

// transcoder is the state of appendWireRow: the event time found in the row being written,
// and the keys of the map entries seen so far, reused from row to row.
type transcoder struct {
	eventTime      protoreflect.FieldDescriptor
	evSet          bool
	evSec, evNanos int64
	keyData        []byte   // map keys of the open runs (see message), back to back
	keyEnds        []uint32 // end of each key in keyData
}

// maxMapEntries is the most entries a map may have for its duplicate keys to be looked for
// one by one; a larger map is decoded.
const maxMapEntries = 256

// message transcodes the serialized message raw of plan p, appending its writer fields;
// root is set for the row's own message.
func (t *transcoder) message(b []byte, p *msgPlan, raw []byte, root bool) ([]byte, error) {
	// A map's entries are one run of the field on the wire; the run's keys follow those of
	// the maps of enclosing messages in keyData.
	keysAt, dataAt := len(t.keyEnds), len(t.keyData)
	b, err := t.fields(b, p, raw, root, keysAt, dataAt)
	t.keyEnds, t.keyData = t.keyEnds[:keysAt], t.keyData[:dataAt]
	return b, err
}

// fields is message without the bookkeeping of map keys: the keys of its map runs start at
// keysAt in keyEnds and dataAt in keyData.
func (t *transcoder) fields(b []byte, p *msgPlan, raw []byte, root bool, keysAt, dataAt int) ([]byte, error) {
	var seen [maxWireFields / 64]uint64
	var oneofs uint64
	var run *fieldPlan // the map whose entries came last
	for len(raw) > 0 {
		num, typ, n := consumeTag(raw)
		if n < 0 {
			return b, errNotCanonical
		}
		raw = raw[n:]
		fp := p.wire.field(num)
		if fp == nil {
			// A field the contract does not have (a newer producer's), or one without a
			// column: skipped, like appendRow skips it.
			if n = protowire.ConsumeFieldValue(num, typ, raw); n < 0 {
				return b, errNotCanonical
			}
			raw = raw[n:]
			continue
		}
		bit := uint64(1) << (fp.slot % 64)
		again := seen[fp.slot/64]&bit != 0
		seen[fp.slot/64] |= bit
		switch {
		case fp.isMap:
			if fp != run {
				if again {
					return b, errNotCanonical // a map's entries in two runs
				}
				run = fp
				t.keyEnds, t.keyData = t.keyEnds[:keysAt], t.keyData[:dataAt]
			}
			entry, n := consumeBytes(raw)
			if typ != protowire.BytesType || n < 0 {
				return b, errNotCanonical
			}
			raw = raw[n:]
			var err error
			if b, err = t.mapEntry(b, fp, entry, keysAt); err != nil {
				return b, err
			}
			continue
		case fp.list:
		case again:
			return b, errNotCanonical
		case fp.oneof >= 0:
			if oneofs&(1<<fp.oneof) != 0 {
				return b, errNotCanonical
			}
			oneofs |= 1 << fp.oneof
		}
		run = nil
		var err error
		if b, n, err = t.field(b, fp, typ, raw, root); err != nil {
			return b, err
		}
		raw = raw[n:]
	}
	for _, fp := range p.wire.defaults {
		if seen[fp.slot/64]&(1<<(fp.slot%64)) == 0 {
			b = append(b, fp.zero...)
		}
	}
	return b, nil
}

// mapEntry transcodes one serialized entry of map fp as a key/value record. Its key must
// differ from the keys of the run's earlier entries (from keyEnds[first:]); a parser would
// keep only the last entry of a key.
func (t *transcoder) mapEntry(b []byte, fp *fieldPlan, raw []byte, first int) ([]byte, error) {
	var keyRaw, valRaw []byte
	var keyTyp, valTyp protowire.Type
	for len(raw) > 0 {
		num, typ, n := consumeTag(raw)
		if n < 0 {
			return b, errNotCanonical
		}
		raw = raw[n:]
		m := protowire.ConsumeFieldValue(num, typ, raw)
		if m < 0 {
			return b, errNotCanonical
		}
		switch {
		case num == 1 && keyRaw == nil:
			keyRaw, keyTyp = raw[:m], typ
		case num == 2 && valRaw == nil:
			valRaw, valTyp = raw[:m], typ
		case num == 1 || num == 2:
			return b, errNotCanonical
		}
		raw = raw[m:]
	}
	if keyRaw == nil || valRaw == nil {
		// Encoders write both; hyperpb misreads the fields after some entries without one.
		return b, errNotCanonical
	}
	if err := t.addKey(fp.key, keyTyp, keyRaw, first); err != nil {
		return b, err
	}
	b = protowire.AppendTag(b, fp.num, protowire.BytesType)
	pos := len(b)
	b, _, err := t.field(b, fp.key, keyTyp, keyRaw, false)
	if err != nil {
		return b, err
	}
	if fp.val != nil { // nil: a value message without fields, which has no column
		if b, _, err = t.field(b, fp.val, valTyp, valRaw, false); err != nil {
			return b, err
		}
	}
	return insertLen(b, pos), nil
}

// addKey records the key raw of a map entry, failing with errNotCanonical when an earlier
// entry of the run has the same key.
func (t *transcoder) addKey(fp *fieldPlan, typ protowire.Type, raw []byte, first int) error {
	start := len(t.keyData)
	if len(t.keyEnds)-first >= maxMapEntries {
		return errNotCanonical
	}
	kind := fp.pk
	switch {
	case kind == protoreflect.StringKind:
		k, n := consumeBytes(raw)
		if typ != protowire.BytesType || n < 0 {
			return errNotCanonical
		}
		t.keyData = append(t.keyData, k...)
	default:
		v, n := scalarValue(kind, typ, raw)
		if n < 0 {
			return errNotCanonical
		}
		var bits uint64
		switch kind {
		case protoreflect.BoolKind:
			if v.Bool() {
				bits = 1
			}
		case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
			bits = v.Uint()
		default:
			bits = uint64(v.Int())
		}
		t.keyData = protowire.AppendFixed64(t.keyData, bits)
	}
	key := t.keyData[start:]
	from := uint32(0)
	if first > 0 {
		from = t.keyEnds[first-1]
	}
	for _, end := range t.keyEnds[first:] {
		if string(t.keyData[from:end]) == string(key) {
			return errNotCanonical
		}
		from = end
	}
	t.keyEnds = append(t.keyEnds, uint32(len(t.keyData)))
	return nil
}

// field transcodes one occurrence of fp, whose value starts raw with wire type typ, and
// returns how many bytes of raw it took.
func (t *transcoder) field(b []byte, fp *fieldPlan, typ protowire.Type, raw []byte, root bool) ([]byte, int, error) {
	kind := fp.pk
	switch fp.kind {
	case kString, kBytes:
		v, n := consumeBytes(raw)
		if typ != protowire.BytesType || n < 0 {
			return b, 0, errNotCanonical
		}
		b = protowire.AppendTag(b, fp.num, protowire.BytesType)
		return protowire.AppendBytes(b, v), n, nil
	case kMessage, kTimestamp, kDuration, kWrapper:
		v, n := consumeBytes(raw)
		if typ != protowire.BytesType || n < 0 {
			return b, 0, errNotCanonical
		}
		var err error
		b, err = t.submessage(b, fp, v, root)
		return b, n, err
	}
	if fp.list && typ == protowire.BytesType {
		// A packed run of scalars.
		v, n := consumeBytes(raw)
		if n < 0 {
			return b, 0, errNotCanonical
		}
		et := wireTypeOf(kind)
		pos := 0
		if fp.packed {
			b = protowire.AppendTag(b, fp.num, protowire.BytesType)
			pos = len(b)
		}
		for len(v) > 0 {
			val, m := scalarValue(kind, et, v)
			if m < 0 {
				return b, 0, errNotCanonical
			}
			v = v[m:]
			var err error
			if b, err = t.scalar(b, fp, val); err != nil {
				return b, 0, err
			}
		}
		if fp.packed {
			b = insertLen(b, pos)
		}
		return b, n, nil
	}
	val, n := scalarValue(kind, typ, raw)
	if n < 0 {
		return b, 0, errNotCanonical
	}
	var err error
	if fp.packed {
		// One element of a packable list written unpacked: a packed run of one.
		b = protowire.AppendTag(b, fp.num, protowire.BytesType)
		pos := len(b)
		if b, err = t.scalar(b, fp, val); err != nil {
			return b, 0, err
		}
		return insertLen(b, pos), n, nil
	}
	b, err = t.scalar(b, fp, val)
	return b, n, err
}

// scalar appends one scalar value of fp: an element of a packed list without a tag.
func (t *transcoder) scalar(b []byte, fp *fieldPlan, v protoreflect.Value) ([]byte, error) {
	if fp.kind == kEnum && fp.closed && fp.enum.ByNumber(v.Enum()) == nil {
		return b, errNotCanonical // a parser keeps it out of the field, in unknown fields
	}
	if fp.packed {
		return appendPacked(b, fp, v)
	}
	return appendScalar(b, fp.num, fp.kind, fp, v)
}

// submessage transcodes a message-typed value raw of fp.
func (t *transcoder) submessage(b []byte, fp *fieldPlan, raw []byte, root bool) ([]byte, error) {
	switch fp.kind {
	case kMessage:
		b = protowire.AppendTag(b, fp.num, protowire.BytesType)
		pos := len(b)
		b, err := t.message(b, fp.sub, raw, false)
		if err != nil {
			return b, err
		}
		return insertLen(b, pos), nil
	case kTimestamp, kDuration:
		sec, nanos, ok := secondsNanos(raw)
		if !ok {
			return b, errNotCanonical
		}
		if root && fp.fd == t.eventTime {
			t.evSet, t.evSec, t.evNanos = true, sec, nanos
		}
		if fp.kind == kDuration {
			b = protowire.AppendTag(b, fp.num, protowire.BytesType)
			var tmp [48]byte
			return protowire.AppendBytes(b, appendInterval(tmp[:0], sec, nanos)), nil
		}
		us, err := timestampMicros(sec, nanos)
		if err != nil {
			return b, fmt.Errorf("field %s: %w", fp.fd.FullName(), err)
		}
		if fp.packed {
			b = protowire.AppendTag(b, fp.num, protowire.BytesType)
			return protowire.AppendBytes(b, protowire.AppendVarint(nil, uint64(us))), nil
		}
		b = protowire.AppendTag(b, fp.num, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(us)), nil
	default: // kWrapper
		inner := fp.innerPK
		v := fp.f1.Default()
		var bytesVal []byte // a StringValue's or BytesValue's value
		for len(raw) > 0 {
			num, typ, n := consumeTag(raw)
			if n < 0 {
				return b, errNotCanonical
			}
			raw = raw[n:]
			if num != 1 {
				if n = protowire.ConsumeFieldValue(num, typ, raw); n < 0 {
					return b, errNotCanonical
				}
				raw = raw[n:]
				continue
			}
			if inner == protoreflect.StringKind || inner == protoreflect.BytesKind {
				if typ != protowire.BytesType {
					return b, errNotCanonical
				}
				if bytesVal, n = consumeBytes(raw); n < 0 {
					return b, errNotCanonical
				}
				raw = raw[n:]
				continue
			}
			if v, n = scalarValue(inner, typ, raw); n < 0 {
				return b, errNotCanonical
			}
			raw = raw[n:]
		}
		if inner == protoreflect.StringKind || inner == protoreflect.BytesKind {
			b = protowire.AppendTag(b, fp.num, protowire.BytesType)
			return protowire.AppendBytes(b, bytesVal), nil
		}
		return appendScalar(b, fp.num, fp.inner, fp, v)
	}
}

// secondsNanos reads a serialized google.protobuf.Timestamp or Duration in canonical form
// (each field at most once, nanos an int32); ok is false otherwise.
func secondsNanos(raw []byte) (sec, nanos int64, ok bool) {
	var seen [3]bool
	for len(raw) > 0 {
		num, typ, n := consumeTag(raw)
		if n < 0 {
			return 0, 0, false
		}
		raw = raw[n:]
		if (num == 1 || num == 2) && typ == protowire.VarintType {
			v, n := consumeVarint(raw)
			if n < 0 || seen[num] || (num == 2 && v != uint64(int64(int32(v)))) {
				return 0, 0, false // not in canonical form: decoded instead
			}
			seen[num] = true
			raw = raw[n:]
			if num == 1 {
				sec = int64(v)
			} else {
				nanos = int64(int32(v))
			}
			continue
		}
		if num == 1 || num == 2 {
			return 0, 0, false
		}
		if n = protowire.ConsumeFieldValue(num, typ, raw); n < 0 {
			return 0, 0, false
		}
		raw = raw[n:]
	}
	return sec, nanos, true
}

// consumeTag, consumeBytes and consumeVarint are protowire's, failing (n < 0) on varints
// longer than their value needs as well: no encoder writes those, and hyperpb does not
// read all of them as protobuf-go does (a two-byte bool as false), so such payloads take
// the decoding path.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n > 0 && n != protowire.SizeTag(num) {
		return 0, 0, -1
	}
	return num, typ, n
}

func consumeBytes(b []byte) ([]byte, int) {
	v, n := protowire.ConsumeBytes(b)
	if n > 0 && n-len(v) != protowire.SizeVarint(uint64(len(v))) {
		return nil, -1
	}
	return v, n
}

func consumeVarint(b []byte) (uint64, int) {
	v, n := protowire.ConsumeVarint(b)
	if n > 0 && n != protowire.SizeVarint(v) {
		return 0, -1
	}
	return v, n
}

// wireTypeOf is the wire type of one element of a packed run of kind.
func wireTypeOf(kind protoreflect.Kind) protowire.Type {
	switch kind {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	}
	return protowire.VarintType
}

// scalarValue reads one scalar of kind with wire type typ from raw, converting it the way
// protobuf-go's parser does; n is negative when raw does not hold one.
func scalarValue(kind protoreflect.Kind, typ protowire.Type, raw []byte) (protoreflect.Value, int) {
	if typ != wireTypeOf(kind) {
		return protoreflect.Value{}, -1
	}
	switch typ {
	case protowire.Fixed32Type:
		v, n := protowire.ConsumeFixed32(raw)
		switch kind {
		case protoreflect.FloatKind:
			return protoreflect.ValueOfFloat32(math.Float32frombits(v)), n
		case protoreflect.Sfixed32Kind:
			return protoreflect.ValueOfInt32(int32(v)), n
		}
		return protoreflect.ValueOfUint32(v), n
	case protowire.Fixed64Type:
		v, n := protowire.ConsumeFixed64(raw)
		switch kind {
		case protoreflect.DoubleKind:
			return protoreflect.ValueOfFloat64(math.Float64frombits(v)), n
		case protoreflect.Sfixed64Kind:
			return protoreflect.ValueOfInt64(int64(v)), n
		}
		return protoreflect.ValueOfUint64(v), n
	}
	v, n := consumeVarint(raw)
	// Values a 32-bit field or a bool cannot hold (a parser truncates them) take the
	// decoding path too.
	switch kind {
	case protoreflect.BoolKind:
		if v > 1 {
			return protoreflect.Value{}, -1
		}
	case protoreflect.Int32Kind, protoreflect.EnumKind:
		if v != uint64(int64(int32(v))) {
			return protoreflect.Value{}, -1
		}
	case protoreflect.Uint32Kind, protoreflect.Sint32Kind:
		if v > math.MaxUint32 {
			return protoreflect.Value{}, -1
		}
	}
	switch kind {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(protowire.DecodeBool(v)), n
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(int32(v)), n
	case protoreflect.Sint32Kind:
		return protoreflect.ValueOfInt32(int32(protowire.DecodeZigZag(v & math.MaxUint32))), n
	case protoreflect.Uint32Kind:
		return protoreflect.ValueOfUint32(uint32(v)), n
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(int64(v)), n
	case protoreflect.Sint64Kind:
		return protoreflect.ValueOfInt64(protowire.DecodeZigZag(v)), n
	case protoreflect.Uint64Kind:
		return protoreflect.ValueOfUint64(v), n
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(int32(v))), n
	}
	return protoreflect.Value{}, -1
}
