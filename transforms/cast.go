package transforms

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// castTargets are the types a cast step converts to.
var castTargets = []string{"string", "bytes", "int32", "int64", "uint32", "uint64", "float", "double", "bool", "date", "timestamp", "millis"}

// category is what a cast reads: the kind of the current values, with well-known message
// types told apart.
type category int

const (
	catNone category = iota
	catBool
	catInt
	catUint
	catFloat
	catString
	catBytes
	catEnum
	catTimestamp
	catDuration
)

// Seconds since the epoch of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of a
// google.protobuf.Timestamp.
const (
	minTimestamp = -62135596800
	maxTimestamp = 253402300799
)

var errTimestampRange = errors.New("timestamp is outside 0001-01-01..9999-12-31")

// castType returns the type of t's values cast to target. It fails with a message when the
// cast does not apply.
func (b *builder) castType(t *vtype, target, step string) (*vtype, string) {
	if t.mapKey != 0 {
		return nil, fmt.Sprintf("cannot cast %s: maps cannot be cast", t)
	}
	out := t.clone()
	out.enum, out.msg, out.utf8None = nil, nil, false
	cat, kind := catNone, t.kind
	switch {
	case t.isMessage():
		switch name := t.wkt(); name {
		case "google.protobuf.Timestamp":
			cat = catTimestamp
		case "google.protobuf.Duration":
			cat = catDuration
		case "google.protobuf.BoolValue", "google.protobuf.Int32Value", "google.protobuf.Int64Value",
			"google.protobuf.UInt32Value", "google.protobuf.UInt64Value", "google.protobuf.FloatValue",
			"google.protobuf.DoubleValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
			// Wrappers are cast by their value; an unset wrapper stays unset.
			kind = t.msg.in.Fields().ByNumber(1).Kind()
			cat = categoryOf(kind)
			out.convs = append(out.convs, conv{step: step, fn: unwrap})
			out.presence = true
		default:
			return nil, fmt.Sprintf("cannot cast %s to %s", t, target)
		}
	default:
		cat = categoryOf(kind)
	}
	fn, outKind := caster(cat, kind, t.enum, target)
	if fn == nil {
		var ok []string
		for _, tg := range castTargets {
			if f, _ := caster(cat, kind, t.enum, tg); f != nil {
				ok = append(ok, tg)
			}
		}
		return nil, fmt.Sprintf("cannot cast %s to %s (it casts to %s)", t, target, strings.Join(ok, ", "))
	}
	out.kind = outKind
	if target == "timestamp" {
		vt, err := b.wktType("google.protobuf.Timestamp")
		if err != nil {
			return nil, err.Error()
		}
		out.msg = vt.msg
		out.presence = !out.list
	}
	out.convs = append(out.convs, conv{step: step, fn: fn})
	return out, ""
}

func categoryOf(k protoreflect.Kind) category {
	switch k {
	case protoreflect.BoolKind:
		return catBool
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return catInt
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return catUint
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return catFloat
	case protoreflect.StringKind:
		return catString
	case protoreflect.BytesKind:
		return catBytes
	case protoreflect.EnumKind:
		return catEnum
	}
	return catNone
}

func unwrap(v protoreflect.Value) (protoreflect.Value, error) {
	m := v.Message()
	return m.Get(m.Descriptor().Fields().ByNumber(1)), nil
}

type convFn = func(protoreflect.Value) (protoreflect.Value, error)

// caster returns the conversion from values of category cat (kind k, enum ed) to target,
// and the output kind; nil when the cast is not supported.
func caster(cat category, k protoreflect.Kind, ed protoreflect.EnumDescriptor, target string) (convFn, protoreflect.Kind) {
	switch target {
	case "string":
		if f := toString(cat, k, ed); f != nil {
			return f, protoreflect.StringKind
		}
	case "bytes":
		switch cat {
		case catString:
			return func(v protoreflect.Value) (protoreflect.Value, error) {
				return protoreflect.ValueOfBytes([]byte(v.String())), nil
			}, protoreflect.BytesKind
		case catBytes:
			return identity, protoreflect.BytesKind
		}
	case "int32", "int64", "millis":
		if target == "millis" {
			return toMillis(cat), protoreflect.Int64Kind
		}
		get := toInt64(cat)
		if get == nil {
			return nil, 0
		}
		if target == "int64" {
			return func(v protoreflect.Value) (protoreflect.Value, error) {
				i, err := get(v)
				return protoreflect.ValueOfInt64(i), err
			}, protoreflect.Int64Kind
		}
		return func(v protoreflect.Value) (protoreflect.Value, error) {
			i, err := get(v)
			if err == nil && (i < math.MinInt32 || i > math.MaxInt32) {
				err = errors.New("value is out of range for int32")
			}
			return protoreflect.ValueOfInt32(int32(i)), err
		}, protoreflect.Int32Kind
	case "uint32", "uint64":
		get := toUint64(cat)
		if get == nil {
			return nil, 0
		}
		if target == "uint64" {
			return func(v protoreflect.Value) (protoreflect.Value, error) {
				u, err := get(v)
				return protoreflect.ValueOfUint64(u), err
			}, protoreflect.Uint64Kind
		}
		return func(v protoreflect.Value) (protoreflect.Value, error) {
			u, err := get(v)
			if err == nil && u > math.MaxUint32 {
				err = errors.New("value is out of range for uint32")
			}
			return protoreflect.ValueOfUint32(uint32(u)), err
		}, protoreflect.Uint32Kind
	case "float", "double":
		get := toFloat64(cat)
		if get == nil {
			return nil, 0
		}
		if target == "double" {
			return func(v protoreflect.Value) (protoreflect.Value, error) {
				f, err := get(v)
				return protoreflect.ValueOfFloat64(f), err
			}, protoreflect.DoubleKind
		}
		return func(v protoreflect.Value) (protoreflect.Value, error) {
			f, err := get(v)
			if err == nil && !math.IsInf(f, 0) && math.IsInf(float64(float32(f)), 0) {
				err = errors.New("value is out of range for float")
			}
			return protoreflect.ValueOfFloat32(float32(f)), err
		}, protoreflect.FloatKind
	case "bool":
		switch cat {
		case catBool:
			return identity, protoreflect.BoolKind
		case catInt:
			return func(v protoreflect.Value) (protoreflect.Value, error) {
				return protoreflect.ValueOfBool(v.Int() != 0), nil
			}, protoreflect.BoolKind
		case catUint:
			return func(v protoreflect.Value) (protoreflect.Value, error) {
				return protoreflect.ValueOfBool(v.Uint() != 0), nil
			}, protoreflect.BoolKind
		case catString:
			return func(v protoreflect.Value) (protoreflect.Value, error) {
				b, err := strconv.ParseBool(v.String())
				if err != nil {
					return protoreflect.ValueOf(false), errors.New("value is not a boolean")
				}
				return protoreflect.ValueOfBool(b), nil
			}, protoreflect.BoolKind
		}
	case "date":
		switch cat {
		case catTimestamp:
			return func(v protoreflect.Value) (protoreflect.Value, error) {
				t, err := timestampOf(v.Message())
				if err != nil {
					return protoreflect.ValueOfString(""), err
				}
				return protoreflect.ValueOfString(t.Format(time.DateOnly)), nil
			}, protoreflect.StringKind
		case catString:
			return func(v protoreflect.Value) (protoreflect.Value, error) {
				t, err := parseTime(v.String())
				if err != nil {
					return protoreflect.ValueOfString(""), err
				}
				return protoreflect.ValueOfString(t.Format(time.DateOnly)), nil
			}, protoreflect.StringKind
		}
	case "timestamp":
		switch cat {
		case catTimestamp:
			return identity, protoreflect.MessageKind
		case catString:
			return func(v protoreflect.Value) (protoreflect.Value, error) {
				t, err := parseTime(v.String())
				if err != nil {
					return protoreflect.Value{}, err
				}
				return protoreflect.ValueOfMessage(timestamppb.New(t).ProtoReflect()), nil
			}, protoreflect.MessageKind
		case catInt:
			return func(v protoreflect.Value) (protoreflect.Value, error) {
				ms := v.Int()
				if ms < minTimestamp*1000 || ms > maxTimestamp*1000+999 {
					return protoreflect.Value{}, errTimestampRange
				}
				return protoreflect.ValueOfMessage(timestamppb.New(time.UnixMilli(ms)).ProtoReflect()), nil
			}, protoreflect.MessageKind
		}
	}
	return nil, 0
}

func identity(v protoreflect.Value) (protoreflect.Value, error) { return v, nil }

func toString(cat category, k protoreflect.Kind, ed protoreflect.EnumDescriptor) convFn {
	str := func(s string) (protoreflect.Value, error) { return protoreflect.ValueOfString(s), nil }
	switch cat {
	case catString:
		return identity
	case catBool:
		return func(v protoreflect.Value) (protoreflect.Value, error) { return str(strconv.FormatBool(v.Bool())) }
	case catInt:
		return func(v protoreflect.Value) (protoreflect.Value, error) { return str(strconv.FormatInt(v.Int(), 10)) }
	case catUint:
		return func(v protoreflect.Value) (protoreflect.Value, error) { return str(strconv.FormatUint(v.Uint(), 10)) }
	case catFloat:
		bits := 64
		if k == protoreflect.FloatKind {
			bits = 32
		}
		return func(v protoreflect.Value) (protoreflect.Value, error) {
			return str(strconv.FormatFloat(v.Float(), 'g', -1, bits))
		}
	case catBytes:
		return func(v protoreflect.Value) (protoreflect.Value, error) {
			return str(base64.StdEncoding.EncodeToString(v.Bytes()))
		}
	case catEnum:
		return func(v protoreflect.Value) (protoreflect.Value, error) {
			if ed != nil {
				if ev := ed.Values().ByNumber(v.Enum()); ev != nil {
					return str(string(ev.Name()))
				}
			}
			return str(strconv.FormatInt(int64(v.Enum()), 10))
		}
	case catTimestamp:
		return func(v protoreflect.Value) (protoreflect.Value, error) {
			t, err := timestampOf(v.Message())
			if err != nil {
				return str("")
			}
			return str(t.Format(time.RFC3339Nano))
		}
	case catDuration:
		return func(v protoreflect.Value) (protoreflect.Value, error) {
			s, n := secondsNanos(v.Message())
			return str(formatDuration(s, n))
		}
	}
	return nil
}

func toInt64(cat category) func(protoreflect.Value) (int64, error) {
	switch cat {
	case catInt:
		return func(v protoreflect.Value) (int64, error) { return v.Int(), nil }
	case catUint:
		return func(v protoreflect.Value) (int64, error) {
			if v.Uint() > math.MaxInt64 {
				return 0, errors.New("value is out of range for int64")
			}
			return int64(v.Uint()), nil
		}
	case catFloat:
		return func(v protoreflect.Value) (int64, error) {
			f := math.Trunc(v.Float())
			if math.IsNaN(f) || f < math.MinInt64 || f >= math.MaxInt64 {
				return 0, errors.New("value is not a finite number in range for int64")
			}
			return int64(f), nil
		}
	case catBool:
		return func(v protoreflect.Value) (int64, error) {
			if v.Bool() {
				return 1, nil
			}
			return 0, nil
		}
	case catString:
		return func(v protoreflect.Value) (int64, error) {
			i, err := strconv.ParseInt(v.String(), 10, 64)
			if err != nil {
				return 0, errors.New("value is not an integer")
			}
			return i, nil
		}
	case catEnum:
		return func(v protoreflect.Value) (int64, error) { return int64(v.Enum()), nil }
	}
	return nil
}

func toUint64(cat category) func(protoreflect.Value) (uint64, error) {
	switch cat {
	case catUint:
		return func(v protoreflect.Value) (uint64, error) { return v.Uint(), nil }
	case catInt:
		return func(v protoreflect.Value) (uint64, error) {
			if v.Int() < 0 {
				return 0, errors.New("value is negative")
			}
			return uint64(v.Int()), nil
		}
	case catFloat:
		return func(v protoreflect.Value) (uint64, error) {
			f := math.Trunc(v.Float())
			if math.IsNaN(f) || f < 0 || f >= math.MaxUint64 {
				return 0, errors.New("value is not a finite number in range for uint64")
			}
			return uint64(f), nil
		}
	case catBool:
		return func(v protoreflect.Value) (uint64, error) {
			if v.Bool() {
				return 1, nil
			}
			return 0, nil
		}
	case catString:
		return func(v protoreflect.Value) (uint64, error) {
			u, err := strconv.ParseUint(v.String(), 10, 64)
			if err != nil {
				return 0, errors.New("value is not an unsigned integer")
			}
			return u, nil
		}
	}
	return nil
}

func toFloat64(cat category) func(protoreflect.Value) (float64, error) {
	switch cat {
	case catFloat:
		return func(v protoreflect.Value) (float64, error) { return v.Float(), nil }
	case catInt:
		return func(v protoreflect.Value) (float64, error) { return float64(v.Int()), nil }
	case catUint:
		return func(v protoreflect.Value) (float64, error) { return float64(v.Uint()), nil }
	case catString:
		return func(v protoreflect.Value) (float64, error) {
			f, err := strconv.ParseFloat(v.String(), 64)
			if err != nil {
				return 0, errors.New("value is not a number")
			}
			return f, nil
		}
	}
	return nil
}

func toMillis(cat category) convFn {
	switch cat {
	case catTimestamp:
		return func(v protoreflect.Value) (protoreflect.Value, error) {
			t, err := timestampOf(v.Message())
			if err != nil {
				return protoreflect.ValueOfInt64(0), err
			}
			return protoreflect.ValueOfInt64(t.UnixMilli()), nil
		}
	case catDuration:
		return func(v protoreflect.Value) (protoreflect.Value, error) {
			s, n := secondsNanos(v.Message())
			if s > math.MaxInt64/1000 || s < math.MinInt64/1000 {
				return protoreflect.ValueOfInt64(0), errors.New("duration is out of range for millis")
			}
			return protoreflect.ValueOfInt64(s*1000 + n/1e6), nil
		}
	}
	return nil
}

// secondsNanos reads a Timestamp or Duration message.
func secondsNanos(m protoreflect.Message) (int64, int64) {
	fields := m.Descriptor().Fields()
	s, n := fields.ByNumber(1), fields.ByNumber(2)
	if s == nil || n == nil {
		return 0, 0
	}
	return m.Get(s).Int(), m.Get(n).Int()
}

func timestampOf(m protoreflect.Message) (time.Time, error) {
	s, n := secondsNanos(m)
	if s < minTimestamp || s > maxTimestamp || n < 0 || n >= 1e9 {
		return time.Time{}, errTimestampRange
	}
	return time.Unix(s, n).UTC(), nil
}

// parseTime reads an RFC 3339 timestamp or a YYYY-MM-DD date (UTC).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if t.Unix() < minTimestamp || t.Unix() > maxTimestamp {
			return time.Time{}, errTimestampRange
		}
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("value is not an RFC 3339 timestamp or a YYYY-MM-DD date")
}

// formatDuration writes a duration as protojson does: "1.500s", "-3s".
func formatDuration(s, n int64) string {
	sign := ""
	if s < 0 || n < 0 {
		sign, s, n = "-", -s, -n
	}
	out := sign + strconv.FormatInt(s, 10)
	if n != 0 {
		frac := fmt.Sprintf("%09d", n)
		for strings.HasSuffix(frac, "000") {
			frac = frac[:len(frac)-3]
		}
		out += "." + frac
	}
	return out + "s"
}
