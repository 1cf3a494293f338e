package bigquery

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/event"
)

// appendRow appends the serialized row of r (a message of the writer descriptor) to b.
// r.Message must be a message of l.contract (the same descriptor). On error b is returned
// unchanged in length; the error says why this event cannot be a row.
func (l *layout) appendRow(b []byte, r *event.Record, landedMicros int64) ([]byte, error) {
	start := len(b)
	if r.Message == nil {
		return b, errors.New("record has no decoded message")
	}
	b, err := appendMessage(b, l.root, r.Message)
	if err != nil {
		return b[:start], err
	}
	ev, err := l.eventMicros(r, landedMicros)
	if err != nil {
		return b[:start], err
	}
	return l.appendMeta(b, r, ev, landedMicros), nil
}

// appendMeta appends the metadata columns of r's row.
func (l *layout) appendMeta(b []byte, r *event.Record, ev, landedMicros int64) []byte {
	b = protowire.AppendTag(b, l.meta[0], protowire.BytesType)
	b = protowire.AppendString(b, r.Topic)
	b = protowire.AppendTag(b, l.meta[1], protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(int64(r.Partition)))
	b = protowire.AppendTag(b, l.meta[2], protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(r.Offset))
	b = protowire.AppendTag(b, l.meta[3], protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(ev))
	b = protowire.AppendTag(b, l.meta[4], protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(landedMicros))
	b = protowire.AppendTag(b, l.meta[5], protowire.BytesType)
	if r.Contract != "" {
		return protowire.AppendString(b, r.Contract)
	}
	return protowire.AppendString(b, string(l.contract.FullName()))
}

// eventMicros is the _event_time of r: event_time_field when set, else the Kafka timestamp,
// else the landing time.
func (l *layout) eventMicros(r *event.Record, landedMicros int64) (int64, error) {
	if l.eventTime != nil {
		// One Get: an unset message field reads as an invalid message.
		if ts := r.Message.Get(l.eventTime).Message(); ts.IsValid() {
			return timestampMicros(ts.Get(l.evSec).Int(), ts.Get(l.evNanos).Int())
		}
	}
	return kafkaMicros(r, landedMicros), nil
}

// kafkaMicros is the _event_time of r when no event_time_field is set: the Kafka timestamp,
// else (none, or outside BigQuery's range) the landing time.
func kafkaMicros(r *event.Record, landedMicros int64) int64 {
	if r.Timestamp.IsZero() {
		return landedMicros
	}
	sec := r.Timestamp.Unix()
	if sec < minTimestampSec || sec > maxTimestampSec {
		return landedMicros
	}
	return r.Timestamp.UnixMicro()
}

func appendMessage(b []byte, plan *msgPlan, m protoreflect.Message) ([]byte, error) {
	var err error
	for _, fp := range plan.fields {
		switch {
		case fp.isMap:
			mp := m.Get(fp.fd).Map()
			if mp.Len() == 0 {
				continue
			}
			b, err = appendMap(b, fp, mp)
		case fp.list:
			list := m.Get(fp.fd).List()
			n := list.Len()
			if n == 0 {
				continue
			}
			if fp.packed {
				b = protowire.AppendTag(b, fp.num, protowire.BytesType)
				pos := len(b)
				for i := range n {
					if b, err = appendPacked(b, fp, list.Get(i)); err != nil {
						break
					}
				}
				b = insertLen(b, pos)
				break
			}
			for i := range n {
				if b, err = appendValue(b, fp, list.Get(i)); err != nil {
					break
				}
			}
		default:
			if fp.message {
				// One Get: an unset message field reads as an invalid message.
				v := m.Get(fp.fd)
				if !v.Message().IsValid() {
					continue
				}
				b, err = appendValue(b, fp, v)
				break
			}
			if fp.presence && !m.Has(fp.fd) {
				continue
			}
			b, err = appendValue(b, fp, m.Get(fp.fd))
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// appendMap appends a map's entries as repeated key/value records.
func appendMap(b []byte, fp *fieldPlan, mp protoreflect.Map) ([]byte, error) {
	w := mapWriters.Get().(*mapWriter)
	w.b, w.fp, w.err = b, fp, nil
	mp.Range(w.fn)
	b, err := w.b, w.err
	w.b, w.fp = nil, nil
	mapWriters.Put(w)
	return b, err
}

// mapWriter is the state of appendMap's Range callback. Its callback is bound once, so that
// ranging over a map allocates nothing.
type mapWriter struct {
	b   []byte
	fp  *fieldPlan
	err error
	fn  func(protoreflect.MapKey, protoreflect.Value) bool
}

var mapWriters sync.Pool

func init() { // not a variable initializer: the callback refers back to mapWriters
	mapWriters.New = func() any {
		w := &mapWriter{}
		w.fn = w.entry
		return w
	}
}

func (w *mapWriter) entry(k protoreflect.MapKey, v protoreflect.Value) bool {
	b := protowire.AppendTag(w.b, w.fp.num, protowire.BytesType)
	pos := len(b)
	var err error
	if b, err = appendValue(b, w.fp.key, k.Value()); err == nil && w.fp.val != nil {
		b, err = appendValue(b, w.fp.val, v)
	}
	if err != nil {
		w.b, w.err = b[:pos], err
		return false
	}
	w.b = insertLen(b, pos)
	return true
}

// appendValue appends one value of fp, tag included.
func appendValue(b []byte, fp *fieldPlan, v protoreflect.Value) ([]byte, error) {
	switch fp.kind {
	case kMessage:
		b = protowire.AppendTag(b, fp.num, protowire.BytesType)
		pos := len(b)
		b, err := appendMessage(b, fp.sub, v.Message())
		if err != nil {
			return b, err
		}
		return insertLen(b, pos), nil
	case kWrapper:
		return appendScalar(b, fp.num, fp.inner, fp, v.Message().Get(fp.f1))
	}
	return appendScalar(b, fp.num, fp.kind, fp, v)
}

func appendScalar(b []byte, num protowire.Number, kind valueKind, fp *fieldPlan, v protoreflect.Value) ([]byte, error) {
	switch kind {
	case kBool:
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(v.Bool())), nil
	case kInt:
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(v.Int())), nil
	case kUint32, kUint64:
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, v.Uint()), nil
	case kFloat:
		b = protowire.AppendTag(b, num, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(v.Float())), nil
	case kString:
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendString(b, v.String()), nil
	case kBytes:
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, v.Bytes()), nil
	case kEnum:
		b = protowire.AppendTag(b, num, protowire.BytesType)
		n := v.Enum()
		if ev := fp.enum.ByNumber(n); ev != nil {
			return protowire.AppendString(b, string(ev.Name())), nil
		}
		// An unknown value (a newer contract's) keeps its number.
		var tmp [12]byte
		return protowire.AppendBytes(b, strconv.AppendInt(tmp[:0], int64(n), 10)), nil
	case kTimestamp:
		m := v.Message()
		us, err := timestampMicros(m.Get(fp.f1).Int(), m.Get(fp.f2).Int())
		if err != nil {
			return b, fmt.Errorf("field %s: %w", fp.fd.FullName(), err)
		}
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(us)), nil
	case kDuration:
		m := v.Message()
		b = protowire.AppendTag(b, num, protowire.BytesType)
		var tmp [48]byte
		return protowire.AppendBytes(b, appendInterval(tmp[:0], m.Get(fp.f1).Int(), m.Get(fp.f2).Int())), nil
	case kJSON:
		js, err := protojson.Marshal(v.Message().Interface())
		if err != nil {
			return b, fmt.Errorf("field %s: %w", fp.fd.FullName(), err)
		}
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, js), nil
	}
	return b, fmt.Errorf("field %s: no encoding for value kind %d", fp.fd.FullName(), kind)
}

// appendPacked appends one element of a packed repeated field (no tag).
func appendPacked(b []byte, fp *fieldPlan, v protoreflect.Value) ([]byte, error) {
	switch fp.kind {
	case kBool:
		return protowire.AppendVarint(b, protowire.EncodeBool(v.Bool())), nil
	case kInt:
		return protowire.AppendVarint(b, uint64(v.Int())), nil
	case kUint32, kUint64:
		return protowire.AppendVarint(b, v.Uint()), nil
	case kFloat:
		return protowire.AppendFixed64(b, math.Float64bits(v.Float())), nil
	case kTimestamp:
		m := v.Message()
		us, err := timestampMicros(m.Get(fp.f1).Int(), m.Get(fp.f2).Int())
		if err != nil {
			return b, fmt.Errorf("field %s: %w", fp.fd.FullName(), err)
		}
		return protowire.AppendVarint(b, uint64(us)), nil
	}
	return b, fmt.Errorf("field %s: value kind %d is not packable", fp.fd.FullName(), fp.kind)
}

// timestampMicros converts a google.protobuf.Timestamp to BigQuery TIMESTAMP microseconds,
// truncating sub-microsecond digits.
func timestampMicros(sec, nanos int64) (int64, error) {
	if sec < minTimestampSec || sec > maxTimestampSec {
		return 0, fmt.Errorf("timestamp %s is outside BigQuery's TIMESTAMP range (years 1 to 9999)", time.Unix(sec, 0).UTC().Format(time.RFC3339))
	}
	if nanos < 0 || nanos > 999_999_999 {
		return 0, fmt.Errorf("timestamp nanos %d out of range", nanos)
	}
	return sec*1_000_000 + nanos/1000, nil
}

// appendInterval renders a google.protobuf.Duration as a BigQuery INTERVAL literal in
// canonical form, "0-0 0 [-]H:MM:SS.ffffff", truncating sub-microsecond digits.
func appendInterval(b []byte, sec, nanos int64) []byte {
	neg := sec < 0 || (sec == 0 && nanos < 0)
	if neg {
		sec, nanos = -sec, -nanos
	}
	us := nanos / 1000
	b = append(b, "0-0 0 "...)
	if neg {
		b = append(b, '-')
	}
	b = strconv.AppendInt(b, sec/3600, 10)
	b = append(b, ':')
	b = append2(b, (sec/60)%60)
	b = append(b, ':')
	b = append2(b, sec%60)
	b = append(b, '.')
	frac := strconv.AppendInt(make([]byte, 0, 8), us+1_000_000, 10) // "1ffffff"
	return append(b, frac[1:]...)
}

func append2(b []byte, v int64) []byte {
	return append(b, byte('0'+v/10), byte('0'+v%10))
}

var zeros [binaryMaxVarint]byte

const binaryMaxVarint = 10

// insertLen turns the bytes appended since pos into a length-delimited payload by inserting
// their length at pos.
func insertLen(b []byte, pos int) []byte {
	n := len(b) - pos
	k := protowire.SizeVarint(uint64(n))
	b = append(b, zeros[:k]...)
	copy(b[pos+k:], b[pos:pos+n])
	protowire.AppendVarint(b[pos:pos], uint64(n))
	return b
}
