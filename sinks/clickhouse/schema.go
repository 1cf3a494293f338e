package clickhouse

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	sinktable "github.com/switchyard-dev/switchyard/sinks/table"
)

// This file maps a contract (a protobuf message descriptor) to table columns. The mapping
// is documented in docs/sinks.md; keep the two in step.
//
// Nested messages are flattened: field b of message field a becomes column a_b. A repeated
// field, or a repeated message or message-valued map above a field, adds one Array level.
// Maps with scalar values become Map(K, V) where the server has it, else two parallel
// arrays <f>_keys and <f>_values; message-valued maps always become <f>_keys plus flattened
// <f>_values_<g> arrays. Keys are written in ascending order.

// valueKind is what a leaf value is, independent of the column it lands in.
type valueKind int

const (
	vkInt       valueKind = iota // int32, sint32, sfixed32, int64, sint64, sfixed64
	vkUint                       // uint32, fixed32, uint64, fixed64
	vkFloat                      // float
	vkDouble                     // double
	vkBool                       // bool
	vkString                     // string
	vkBytes                      // bytes
	vkEnum                       // enum
	vkTimestamp                  // google.protobuf.Timestamp
	vkDuration                   // google.protobuf.Duration
	vkJSON                       // a message stored as protojson: Struct, Value, Any, ... and recursive types
)

// stepKind is one move from a message towards a leaf.
type stepKind int

const (
	stepMessage   stepKind = iota // singular message field: descend
	stepList                      // repeated message field: one array level over its elements
	stepMapValues                 // message-valued map: one array level over its values, in key order
)

type step struct {
	kind stepKind
	fd   protoreflect.FieldDescriptor
}

// leafKind is how the leaf field's values become the column's value.
type leafKind int

const (
	leafSingular  leafKind = iota // a singular field (scalar or well-known message)
	leafList                      // a repeated field: one array level
	leafMapKeys                   // a map's keys in order: one array level
	leafMapValues                 // a scalar-valued map's values in key order: one array level
	leafMap                       // a scalar-valued map as Map(K, V)
)

// metaKind names the metadata columns (sinktable.Metadata, in that order); metaNone is a
// contract field.
type metaKind int

func metaOf(m sinktable.Meta) metaKind { return metaKind(m) + 1 }

const (
	metaNone metaKind = iota
	metaTopic
	metaPartition
	metaOffset
	metaEventTime
	metaLandedAt
	metaSchema
)

// logicalColumn is one column the contract needs, before it is matched to the table.
type logicalColumn struct {
	name   string
	source string // what it holds, for messages: `field amount.units (int64)`
	meta   metaKind

	steps []step
	leaf  leafKind
	fd    protoreflect.FieldDescriptor // the leaf field (the map field for map leaves)
	vk    valueKind                    // kind of the leaf's values (a map's values)
	vfd   protoreflect.FieldDescriptor // field whose kind/enum/message describes vk
	kk    valueKind                    // leafMap, leafMapKeys: key kind
	kfd   protoreflect.FieldDescriptor // map key field
	// wrapped: values are google.protobuf.*Value wrappers around vfd.
	wrapped  bool
	wrapper  *wkt // reads the wrapper's value field
	presence bool // fd.HasPresence(), which is slow on some descriptor implementations
	message  bool // fd is a singular message field
	nullable bool // singular leaf with presence, outside any array
	depth    int  // array levels
}

// element turns one list element or map value into the leaf value (unwrapping wrappers).
func (lc *logicalColumn) element(v protoreflect.Value) protoreflect.Value {
	if lc.wrapped {
		return lc.unwrap(v.Message())
	}
	return v
}

func (lc *logicalColumn) unwrap(m protoreflect.Message) protoreflect.Value {
	f := lc.vfd
	if m.Descriptor() != lc.wrapper.md {
		f = m.Descriptor().Fields().ByNumber(1)
	}
	return m.Get(f)
}

// desiredType is the column type create_table and add_columns use on a server with f.
func (lc *logicalColumn) desiredType(f features) string {
	var t string
	switch lc.meta {
	case metaTopic, metaSchema:
		t = "String"
	case metaPartition:
		t = "Int32"
	case metaOffset:
		t = "Int64"
	case metaEventTime, metaLandedAt:
		t = timeType(f)
	default:
		switch lc.leaf {
		case leafMapKeys:
			t = baseType(lc.kk, lc.kfd, f)
		case leafMap:
			t = "Map(" + baseType(lc.kk, lc.kfd, f) + ", " + baseType(lc.vk, lc.vfd, f) + ")"
		default:
			t = baseType(lc.vk, lc.vfd, f)
		}
		if lc.nullable {
			t = "Nullable(" + t + ")"
		}
	}
	for range lc.depth {
		t = "Array(" + t + ")"
	}
	return t
}

func timeType(f features) string {
	if f.dateTime64 {
		return "DateTime64(3, 'UTC')"
	}
	return "DateTime('UTC')"
}

func baseType(vk valueKind, fd protoreflect.FieldDescriptor, f features) string {
	switch vk {
	case vkInt:
		if is32(fd.Kind()) {
			return "Int32"
		}
		return "Int64"
	case vkUint:
		if is32(fd.Kind()) {
			return "UInt32"
		}
		return "UInt64"
	case vkFloat:
		return "Float32"
	case vkDouble:
		return "Float64"
	case vkBool:
		if f.boolType {
			return "Bool"
		}
		return "UInt8"
	case vkTimestamp:
		return timeType(f)
	case vkDuration:
		return "Int64"
	}
	return "String" // string, bytes, enum, JSON
}

func is32(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return true
	}
	return false
}

// needs describes the column types that can hold lc's values, for mismatch messages.
func (lc *logicalColumn) needs(f features) string {
	var alt string
	vk := lc.vk
	if lc.leaf == leafMapKeys {
		vk = lc.kk
	}
	switch lc.meta {
	case metaTopic, metaSchema:
		vk = vkString
	case metaPartition, metaOffset:
		vk = vkInt
	case metaEventTime, metaLandedAt:
		vk = vkTimestamp
	}
	switch vk {
	case vkInt, vkUint:
		alt = "another integer type"
	case vkDuration:
		alt = "another integer type (nanoseconds)"
	case vkFloat, vkDouble:
		alt = "Float32 or Float64"
	case vkBool:
		alt = "Bool, UInt8 or another integer type"
	case vkEnum:
		alt = "Enum8/Enum16 with the contract's value names, or an integer type"
	case vkTimestamp:
		alt = "DateTime or DateTime64 in any time zone"
	default:
		alt = "LowCardinality(String)"
	}
	return fmt.Sprintf("%s (or %s)", lc.desiredType(f), alt)
}

// schemaBuilder derives the logical columns of a contract.
type schemaBuilder struct {
	f features
	// has reports whether the existing table has a column; it decides between the Map and
	// the parallel-array form of maps so that a server upgrade does not change a table.
	has  func(name string) bool
	cols []*logicalColumn
}

// contractColumns returns the columns for md followed by the metadata columns.
func contractColumns(md protoreflect.MessageDescriptor, f features, has func(string) bool) ([]*logicalColumn, error) {
	b := &schemaBuilder{f: f, has: has}
	b.message(md, "", "", nil, 0, []protoreflect.FullName{md.FullName()})
	for _, m := range sinktable.Metadata {
		lc := &logicalColumn{name: m.Column(), meta: metaOf(m), source: "metadata (" + m.Doc() + ")"}
		if m == sinktable.EventTime {
			lc.fd, _ = sinktable.EventTimeField(md, "") // no event_time_field: the defaults, never an error
		}
		b.cols = append(b.cols, lc)
	}
	seen := map[string]*logicalColumn{}
	var problems []string
	for _, c := range b.cols {
		if prev, dup := seen[c.name]; dup {
			problems = append(problems, fmt.Sprintf("column %s is claimed by both %s and %s; rename one of the fields (nested field names are joined with _, and names starting with _ are reserved for metadata)", c.name, prev.source, c.source))
			continue
		}
		seen[c.name] = c
	}
	if len(problems) > 0 {
		return nil, &mappingError{problems}
	}
	return b.cols, nil
}

// mappingError lists why a contract has no column layout.
type mappingError struct{ problems []string }

func (e *mappingError) Error() string { return strings.Join(e.problems, "; ") }

func (b *schemaBuilder) message(md protoreflect.MessageDescriptor, prefix, src string, steps []step, depth int, stack []protoreflect.FullName) {
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := prefix + string(fd.Name())
		path := src + string(fd.Name())
		switch {
		case fd.IsMap():
			b.mapField(fd, name, path, steps, depth, stack)
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			if lc := b.messageLeaf(fd, fd.Message(), stack); lc != nil {
				b.add(lc, fd, name, path, steps, depth)
				continue
			}
			if fd.IsList() {
				b.message(fd.Message(), name+"_", path+"[].", appendStep(steps, stepList, fd), depth+1, append(stack, fd.Message().FullName()))
			} else {
				b.message(fd.Message(), name+"_", path+".", appendStep(steps, stepMessage, fd), depth, append(stack, fd.Message().FullName()))
			}
		default:
			b.add(&logicalColumn{vk: scalarKind(fd.Kind()), vfd: fd}, fd, name, path, steps, depth)
		}
	}
}

// add completes a leaf column for field fd (singular or repeated) and records it.
func (b *schemaBuilder) add(lc *logicalColumn, fd protoreflect.FieldDescriptor, name, path string, steps []step, depth int) {
	lc.name, lc.fd, lc.steps = name, fd, steps
	lc.presence = fd.HasPresence()
	lc.message = fd.Message() != nil && !fd.IsList() && !fd.IsMap()
	lc.source = fmt.Sprintf("field %s (%s)", path, kindName(fd))
	if fd.IsList() {
		lc.leaf, lc.depth = leafList, depth+1
	} else {
		lc.leaf, lc.depth = leafSingular, depth
		// Presence becomes NULL only outside arrays: ClickHouse arrays of Nullable are
		// rarely what an analyst wants, and repeated elements are always present.
		isMsg := fd.Kind() == protoreflect.MessageKind
		lc.nullable = depth == 0 && (fd.HasPresence() && !isMsg || isMsg)
	}
	b.cols = append(b.cols, lc)
}

// messageLeaf returns a leaf column (without name/path) when message type md is stored as
// one value: well-known types, and recursive types (as JSON); nil when md is flattened.
func (b *schemaBuilder) messageLeaf(fd protoreflect.FieldDescriptor, md protoreflect.MessageDescriptor, stack []protoreflect.FullName) *logicalColumn {
	switch md.FullName() {
	case "google.protobuf.Timestamp":
		return &logicalColumn{vk: vkTimestamp, vfd: fd}
	case "google.protobuf.Duration":
		return &logicalColumn{vk: vkDuration, vfd: fd}
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue",
		"google.protobuf.Int64Value", "google.protobuf.UInt64Value",
		"google.protobuf.Int32Value", "google.protobuf.UInt32Value",
		"google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
		inner := md.Fields().ByNumber(1)
		return &logicalColumn{vk: scalarKind(inner.Kind()), vfd: inner, wrapped: true, wrapper: &wkt{md: md}}
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue",
		"google.protobuf.Any", "google.protobuf.FieldMask", "google.protobuf.Empty":
		return &logicalColumn{vk: vkJSON, vfd: fd}
	}
	for _, name := range stack {
		if name == md.FullName() {
			return &logicalColumn{vk: vkJSON, vfd: fd} // recursive: flattening would not end
		}
	}
	return nil
}

func (b *schemaBuilder) mapField(fd protoreflect.FieldDescriptor, name, path string, steps []step, depth int, stack []protoreflect.FullName) {
	kfd, vfd := fd.MapKey(), fd.MapValue()
	src := fmt.Sprintf("field %s (%s)", path, kindName(fd))
	keys := &logicalColumn{name: name + "_keys", source: src, steps: steps, leaf: leafMapKeys, fd: fd,
		kk: scalarKind(kfd.Kind()), kfd: kfd, depth: depth + 1}
	if vfd.Kind() == protoreflect.MessageKind {
		if leaf := b.messageLeaf(vfd, vfd.Message(), stack); leaf == nil {
			b.cols = append(b.cols, keys)
			b.message(vfd.Message(), name+"_values_", path+"{}.", appendStep(steps, stepMapValues, fd), depth+1, append(stack, vfd.Message().FullName()))
			return
		}
	}
	val := &logicalColumn{vk: scalarKind(vfd.Kind()), vfd: vfd}
	if vfd.Kind() == protoreflect.MessageKind {
		val = b.messageLeaf(vfd, vfd.Message(), stack)
	}
	val.source, val.steps, val.fd, val.kk, val.kfd = src, steps, fd, keys.kk, kfd
	useMap := b.f.mapType
	switch {
	case b.has(name):
		useMap = true
	case b.has(name + "_keys"):
		useMap = false
	}
	if useMap {
		val.name, val.leaf, val.depth = name, leafMap, depth
		b.cols = append(b.cols, val)
		return
	}
	val.name, val.leaf, val.depth = name+"_values", leafMapValues, depth+1
	b.cols = append(b.cols, keys, val)
}

func appendStep(steps []step, kind stepKind, fd protoreflect.FieldDescriptor) []step {
	return append(steps[:len(steps):len(steps)], step{kind, fd})
}

func scalarKind(k protoreflect.Kind) valueKind {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return vkInt
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return vkUint
	case protoreflect.FloatKind:
		return vkFloat
	case protoreflect.DoubleKind:
		return vkDouble
	case protoreflect.BoolKind:
		return vkBool
	case protoreflect.StringKind:
		return vkString
	case protoreflect.BytesKind:
		return vkBytes
	case protoreflect.EnumKind:
		return vkEnum
	}
	return vkJSON
}

func kindName(fd protoreflect.FieldDescriptor) string {
	var s string
	switch {
	case fd.IsMap():
		return fmt.Sprintf("map<%s, %s>", kindName(fd.MapKey()), kindName(fd.MapValue()))
	case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
		s = string(fd.Message().FullName())
	case fd.Kind() == protoreflect.EnumKind:
		s = string(fd.Enum().FullName())
	default:
		s = fd.Kind().String()
	}
	if fd.IsList() {
		s = "repeated " + s
	}
	return s
}
