package contract

import (
	"cmp"
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// A contract's JSON encoder writes exactly what protojson.Marshal writes with default
// options, without protojson's per-field reflection and ordering (half of a
// Kafka -> JSON -> Kafka lane's CPU): per message type it compiles the fields in protojson's
// order (declaration order), with their JSON names pre-encoded, and per value the kind's
// formatting copied from protojson (64-bit integers as strings, enums by name, bytes in
// base64, floats as ES6 numbers, Timestamp, Duration and the wrapper types in their JSON
// forms, maps with protojson's key order). A contract that reaches a type it does not
// compile (Any, Struct, Value, ListValue, FieldMask) keeps protojson. Anything it cannot write (invalid UTF-8, a
// Timestamp out of range) makes Encode ask protojson, which reports the error.
// TestJSONEncoder_matches_protojson holds it to protojson byte for byte (after removing
// protojson's deliberately random spaces).

type jsonMsg struct {
	wkt    wktKind
	fields []jsonField
	inner  *jsonField // wrapper types: the "value" field
}

type wktKind int

const (
	wktNone wktKind = iota
	wktTimestamp
	wktDuration
	wktWrapper
	wktEmpty
)

type jsonField struct {
	fd   protoreflect.FieldDescriptor
	name []byte // "jsonName":
	list bool
	mp   *jsonField // maps: the value
	// has: read presence with Has (fields with explicit presence that are not messages);
	// otherwise a value is present when it is not the zero value (lists: not empty).
	has  bool
	kind protoreflect.Kind
	enum protoreflect.EnumDescriptor // enums; nil for google.protobuf.NullValue
	msg  *jsonMsg
}

// compileJSON compiles md and what it reaches; ok is false when some type is not supported.
func compileJSON(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]*jsonMsg) (*jsonMsg, bool) {
	if m, ok := seen[md.FullName()]; ok {
		return m, true // recursive types share the plan being built
	}
	m := &jsonMsg{}
	seen[md.FullName()] = m
	switch md.FullName() {
	case "google.protobuf.Timestamp":
		m.wkt = wktTimestamp
		return m, true
	case "google.protobuf.Duration":
		m.wkt = wktDuration
		return m, true
	case "google.protobuf.Empty":
		m.wkt = wktEmpty
		return m, true
	case "google.protobuf.BoolValue", "google.protobuf.BytesValue", "google.protobuf.DoubleValue",
		"google.protobuf.FloatValue", "google.protobuf.Int32Value", "google.protobuf.Int64Value",
		"google.protobuf.StringValue", "google.protobuf.UInt32Value", "google.protobuf.UInt64Value":
		f, ok := compileJSONField(md.Fields().ByName("value"), seen)
		m.wkt, m.inner = wktWrapper, &f
		return m, ok
	}
	if md.ParentFile().Package() == "google.protobuf" {
		return nil, false // Any, Struct, Value, ListValue, FieldMask: protojson's
	}
	fields := md.Fields()
	for i := range fields.Len() {
		f, ok := compileJSONField(fields.Get(i), seen)
		if !ok {
			return nil, false
		}
		m.fields = append(m.fields, f)
	}
	return m, true
}

func compileJSONField(fd protoreflect.FieldDescriptor, seen map[protoreflect.FullName]*jsonMsg) (jsonField, bool) {
	if fd.IsExtension() {
		return jsonField{}, false
	}
	name, err := appendJSONString(nil, fd.JSONName())
	if err != nil {
		return jsonField{}, false
	}
	f := jsonField{fd: fd, name: append(name, ':'), list: fd.IsList(), kind: fd.Kind()}
	if fd.IsMap() {
		v, ok := compileJSONField(fd.MapValue(), seen)
		if !ok {
			return jsonField{}, false
		}
		f.mp, f.kind = &v, fd.MapKey().Kind()
		return f, true
	}
	f.has = !f.list && fd.HasPresence() && fd.Message() == nil
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if fd.Enum().FullName() != "google.protobuf.NullValue" {
			f.enum = fd.Enum()
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		sub, ok := compileJSON(fd.Message(), seen)
		if !ok {
			return jsonField{}, false
		}
		f.msg = sub
	}
	return f, true
}

// appendJSON appends m's protojson encoding; ok is false when protojson must write it (and
// report its error).
func (p *jsonMsg) appendJSON(b []byte, m protoreflect.Message) ([]byte, bool) {
	switch p.wkt {
	case wktTimestamp:
		return appendTimestamp(b, m)
	case wktDuration:
		return appendDuration(b, m)
	case wktWrapper:
		return p.inner.appendSingular(b, m.Get(p.inner.fd))
	case wktEmpty:
		return append(b, "{}"...), true
	}
	b = append(b, '{')
	first := true
	for i := range p.fields {
		f := &p.fields[i]
		var v protoreflect.Value
		if f.has {
			if !m.Has(f.fd) {
				continue
			}
			v = m.Get(f.fd)
		} else {
			v = m.Get(f.fd)
			if !f.present(v) {
				continue
			}
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, f.name...)
		var ok bool
		if f.mp != nil {
			if b, ok = f.appendMap(b, v.Map()); !ok {
				return b, false
			}
			continue
		}
		if f.list {
			l := v.List()
			b = append(b, '[')
			for j := range l.Len() {
				if j > 0 {
					b = append(b, ',')
				}
				if b, ok = f.appendSingular(b, l.Get(j)); !ok {
					return b, false
				}
			}
			b = append(b, ']')
			continue
		}
		if b, ok = f.appendSingular(b, v); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendMap writes a map as protojson does: keys as strings, in protojson's order (false
// before true, integers by value, strings bytewise).
func (f *jsonField) appendMap(b []byte, mp protoreflect.Map) ([]byte, bool) {
	keys := make([]protoreflect.MapKey, 0, mp.Len())
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	slices.SortFunc(keys, func(x, y protoreflect.MapKey) int {
		switch f.kind {
		case protoreflect.BoolKind:
			return cmp.Compare(b2i(x.Bool()), b2i(y.Bool()))
		case protoreflect.StringKind:
			return strings.Compare(x.String(), y.String())
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			return cmp.Compare(x.Uint(), y.Uint())
		}
		return cmp.Compare(x.Int(), y.Int())
	})
	b = append(b, '{')
	var ok bool
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendJSONString(b, k.String()); err != nil {
			return b, false
		}
		b = append(b, ':')
		if b, ok = f.mp.appendSingular(b, mp.Get(k)); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

// present reports whether v, a field without explicit presence (or a message, list or map),
// is populated: what protoreflect's Has reports for it.
func (f *jsonField) present(v protoreflect.Value) bool {
	if f.mp != nil {
		return v.Map().Len() > 0
	}
	if f.list {
		return v.List().Len() > 0
	}
	switch f.kind {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return v.Message().IsValid()
	case protoreflect.BoolKind:
		return v.Bool()
	case protoreflect.StringKind:
		return v.String() != ""
	case protoreflect.BytesKind:
		return len(v.Bytes()) > 0
	case protoreflect.EnumKind:
		return v.Enum() != 0
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		x := v.Float()
		return x != 0 || math.Signbit(x) // -0 is populated
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v.Uint() != 0
	}
	return v.Int() != 0
}

func (f *jsonField) appendSingular(b []byte, v protoreflect.Value) ([]byte, bool) {
	switch f.kind {
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool()), true
	case protoreflect.StringKind:
		out, err := appendJSONString(b, v.String())
		return out, err == nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return strconv.AppendInt(b, v.Int(), 10), true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return strconv.AppendUint(b, v.Uint(), 10), true
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		b = append(b, '"')
		return append(strconv.AppendInt(b, v.Int(), 10), '"'), true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		b = append(b, '"')
		return append(strconv.AppendUint(b, v.Uint(), 10), '"'), true
	case protoreflect.FloatKind:
		return appendJSONFloat(b, v.Float(), 32), true
	case protoreflect.DoubleKind:
		return appendJSONFloat(b, v.Float(), 64), true
	case protoreflect.BytesKind:
		b = append(b, '"')
		return append(base64.StdEncoding.AppendEncode(b, v.Bytes()), '"'), true
	case protoreflect.EnumKind:
		if f.enum == nil {
			return append(b, "null"...), true
		}
		if ev := f.enum.Values().ByNumber(v.Enum()); ev != nil {
			out, err := appendJSONString(b, string(ev.Name()))
			return out, err == nil
		}
		return strconv.AppendInt(b, int64(v.Enum()), 10), true
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return f.msg.appendJSON(b, v.Message())
	}
	return b, false
}

// appendJSONString is protojson's string encoding; an error for invalid UTF-8.
func appendJSONString(b []byte, s string) ([]byte, error) {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return b, errInvalidUTF8
			}
			i += n
			continue
		}
		if c >= ' ' && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"'), nil
}

type jsonError string

func (e jsonError) Error() string { return string(e) }

const errInvalidUTF8 = jsonError("invalid UTF-8")

// appendJSONFloat is protojson's number formatting (encoding/json's, NaN and the infinities
// as strings).
func appendJSONFloat(b []byte, n float64, bitSize int) []byte {
	switch {
	case math.IsNaN(n):
		return append(b, `"NaN"`...)
	case math.IsInf(n, +1):
		return append(b, `"Infinity"`...)
	case math.IsInf(n, -1):
		return append(b, `"-Infinity"`...)
	}
	format := byte('f')
	if abs := math.Abs(n); abs != 0 {
		if bitSize == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bitSize == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, n, format, -1, bitSize)
	if format == 'e' {
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// protojson's limits: 0001-01-01 to 9999-12-31 for timestamps, ±10,000 years for durations.
const (
	minTimestampSeconds  = -62135596800
	maxTimestampSeconds  = 253402300799
	maxSecondsInDuration = 315576000000
)

func secondsNanos(m protoreflect.Message) (int64, int64) {
	fields := m.Descriptor().Fields()
	return m.Get(fields.ByNumber(1)).Int(), m.Get(fields.ByNumber(2)).Int()
}

func appendTimestamp(b []byte, m protoreflect.Message) ([]byte, bool) {
	secs, nanos := secondsNanos(m)
	if secs < minTimestampSeconds || secs > maxTimestampSeconds || nanos < 0 || nanos > 999_999_999 {
		return b, false
	}
	b = append(b, '"')
	b = time.Unix(secs, nanos).UTC().AppendFormat(b, "2006-01-02T15:04:05")
	b = appendFraction(b, nanos)
	return append(b, 'Z', '"'), true
}

func appendDuration(b []byte, m protoreflect.Message) ([]byte, bool) {
	secs, nanos := secondsNanos(m)
	if secs < -maxSecondsInDuration || secs > maxSecondsInDuration || nanos < -999_999_999 || nanos > 999_999_999 ||
		(secs > 0 && nanos < 0) || (secs < 0 && nanos > 0) {
		return b, false
	}
	b = append(b, '"')
	if secs < 0 || nanos < 0 {
		b = append(b, '-')
		secs, nanos = -secs, -nanos
	}
	b = strconv.AppendInt(b, secs, 10)
	b = appendFraction(b, nanos)
	return append(b, 's', '"'), true
}

// appendFraction appends nanos as protojson does: nothing, or 3, 6 or 9 digits.
func appendFraction(b []byte, nanos int64) []byte {
	if nanos == 0 {
		return b
	}
	digits := strconv.AppendInt(nil, nanos+1_000_000_000, 10)[1:] // nine digits, zero-padded
	s := string(digits)
	s = strings.TrimSuffix(s, "000")
	s = strings.TrimSuffix(s, "000")
	b = append(b, '.')
	return append(b, s...)
}
