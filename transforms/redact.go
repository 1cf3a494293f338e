package transforms

import (
	"cmp"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard-dev/switchyard/internal/expr"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Redacted replaces sensitive values in Redact's output.
const Redacted = "[redacted]"

// Redact renders m for logs in a compact text form (`event_id:"e1" amount:{units:12}`), with
// the value of every field marked debug_redact or (switchyard.v1.field).pii replaced by
// [redacted], at any depth (in nested messages, lists and map values). Unknown fields are
// left out. Fields appear in declaration order and map entries by key, so equal messages
// render equally. Use it wherever an event, or part of one, could reach a log line or a header.
func Redact(m protoreflect.Message) string {
	if m == nil || !m.IsValid() {
		return "<nil>"
	}
	var sb strings.Builder
	writeMessage(&sb, m, 0)
	return sb.String()
}

// maxRedactDepth bounds the rendering of deeply nested (hostile) events.
const maxRedactDepth = 32

func writeMessage(sb *strings.Builder, m protoreflect.Message, depth int) {
	if depth > maxRedactDepth {
		sb.WriteString("...")
		return
	}
	first := true
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		if !first {
			sb.WriteByte(' ')
		}
		first = false
		sb.WriteString(string(fd.Name()))
		sb.WriteByte(':')
		if IsSensitive(fd) {
			sb.WriteString(Redacted)
			continue
		}
		switch {
		case fd.IsList():
			l := v.List()
			sb.WriteByte('[')
			for i := range l.Len() {
				if i > 0 {
					sb.WriteByte(' ')
				}
				writeValue(sb, fd, l.Get(i), depth)
			}
			sb.WriteByte(']')
		case fd.IsMap():
			mp := v.Map()
			keys := make([]protoreflect.MapKey, 0, mp.Len())
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, compareKeys)
			sb.WriteByte('{')
			for j, k := range keys {
				if j > 0 {
					sb.WriteByte(' ')
				}
				writeValue(sb, fd.MapKey(), k.Value(), depth)
				sb.WriteByte(':')
				writeValue(sb, fd.MapValue(), mp.Get(k), depth)
			}
			sb.WriteByte('}')
		default:
			writeValue(sb, fd, v, depth)
		}
	}
}

// compareKeys orders map keys, so rendered maps read the same every time.
func compareKeys(a, b protoreflect.MapKey) int {
	switch x := a.Interface().(type) {
	case string:
		return strings.Compare(x, b.String())
	case bool:
		switch {
		case x == b.Bool():
			return 0
		case !x:
			return -1
		}
		return 1
	case int32, int64:
		return cmp.Compare(a.Int(), b.Int())
	}
	return cmp.Compare(a.Uint(), b.Uint())
}

func writeValue(sb *strings.Builder, fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		sb.WriteByte('{')
		writeMessage(sb, v.Message(), depth+1)
		sb.WriteByte('}')
	case protoreflect.StringKind:
		sb.WriteString(strconv.Quote(v.String()))
	case protoreflect.BytesKind:
		sb.WriteString(base64.StdEncoding.EncodeToString(v.Bytes()))
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			sb.WriteString(string(ev.Name()))
		} else {
			sb.WriteString(strconv.FormatInt(int64(v.Enum()), 10))
		}
	default:
		sb.WriteString(v.String())
	}
}

// SafeCELError renders a CEL evaluation error without event values; see expr.SafeError.
func SafeCELError(err error) string { return expr.SafeError(err) }
