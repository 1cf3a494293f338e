package bigquery

import (
	"fmt"
	"strings"
	"sync"

	"buf.build/go/hyperpb"
	"cloud.google.com/go/bigquery"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	sinktable "github.com/switchyard-dev/switchyard/sinks/table"
)

// maxDepth is BigQuery's limit on nested RECORD levels.
const maxDepth = 15

// BigQuery TIMESTAMP range, in seconds since the epoch: 0001-01-01 to 9999-12-31T23:59:59.999999.
const (
	minTimestampSec = -62135596800
	maxTimestampSec = 253402300799
)

// column is one BigQuery column derived from the contract or a metadata column.
type column struct {
	name     string
	typ      bigquery.FieldType
	repeated bool
	required bool
	fields   []*column // RECORD
	src      string    // what it was derived from, for messages
}

func (c *column) toBQ() *bigquery.FieldSchema {
	f := &bigquery.FieldSchema{Name: c.name, Type: c.typ, Repeated: c.repeated, Required: c.required}
	for _, sub := range c.fields {
		f.Schema = append(f.Schema, sub.toBQ())
	}
	return f
}

// sqlType renders the column type in GoogleSQL DDL syntax.
func (c *column) sqlType() string {
	t := sqlTypeName(c.typ)
	if c.typ == bigquery.RecordFieldType {
		parts := make([]string, len(c.fields))
		for i, f := range c.fields {
			parts[i] = quoteIdent(f.name) + " " + f.sqlType()
		}
		t = "STRUCT<" + strings.Join(parts, ", ") + ">"
	}
	if c.repeated {
		return "ARRAY<" + t + ">"
	}
	if c.required {
		return t + " NOT NULL"
	}
	return t
}

func sqlTypeName(t bigquery.FieldType) string {
	switch t {
	case bigquery.IntegerFieldType:
		return "INT64"
	case bigquery.FloatFieldType:
		return "FLOAT64"
	case bigquery.BooleanFieldType:
		return "BOOL"
	}
	return string(t)
}

// normType maps the legacy and GoogleSQL spellings of a type to one name.
func normType(t bigquery.FieldType) bigquery.FieldType {
	switch strings.ToUpper(string(t)) {
	case "INT64":
		return bigquery.IntegerFieldType
	case "FLOAT64":
		return bigquery.FloatFieldType
	case "BOOL":
		return bigquery.BooleanFieldType
	case "STRUCT":
		return bigquery.RecordFieldType
	case "DECIMAL":
		return bigquery.NumericFieldType
	case "BIGDECIMAL":
		return bigquery.BigNumericFieldType
	}
	return bigquery.FieldType(strings.ToUpper(string(t)))
}

func quoteIdent(s string) string { return "`" + s + "`" }

// valueKind is how one value of a field is read from the event and encoded in the row.
type valueKind uint8

const (
	kBool      valueKind = iota // bool -> BOOL
	kInt                        // int32, sint32, sfixed32, int64, sint64, sfixed64 -> INT64
	kUint32                     // uint32, fixed32 -> INT64
	kUint64                     // uint64, fixed64 -> NUMERIC (written as uint64)
	kFloat                      // float, double -> FLOAT64 (written as double)
	kString                     // string -> STRING
	kBytes                      // bytes -> BYTES
	kEnum                       // enum -> STRING (value name)
	kMessage                    // message, group -> RECORD
	kTimestamp                  // google.protobuf.Timestamp -> TIMESTAMP (int64 microseconds)
	kDuration                   // google.protobuf.Duration -> INTERVAL (string literal)
	kJSON                       // google.protobuf.Struct, Value, ListValue -> JSON (string)
	kWrapper                    // google.protobuf.*Value wrappers -> the wrapped scalar, NULL when unset
)

// fieldPlan says how one contract field becomes one writer field, decided once per schema.
type fieldPlan struct {
	fd       protoreflect.FieldDescriptor
	num      protowire.Number // writer field number
	kind     valueKind
	inner    valueKind // kWrapper: the wrapped kind
	list     bool
	isMap    bool
	presence bool // explicit presence: unset is NULL; otherwise the (zero) value is written
	packed   bool
	message  bool     // a singular message field: presence is its value's IsValid
	sub      *msgPlan // kMessage: the record; isMap: the key/value entry
	// Well-known-type fields: wrapper value, Timestamp/Duration seconds and nanos.
	f1, f2 protoreflect.FieldDescriptor
	enum   protoreflect.EnumValueDescriptors
	// Map entries: how the key and value are written (field numbers 1 and 2).
	key, val *fieldPlan
	// Transcoding (wire.go): the field's index in its msgPlan, its oneof's index among the
	// message's oneofs (-1: none), whether its enum is closed, and its serialized zero value
	// (fields without presence).
	slot, oneof int
	pk, innerPK protoreflect.Kind // the field's kind; kWrapper: the wrapped value's
	closed      bool
	zero        []byte
}

// msgPlan is the writer layout of one record.
type msgPlan struct {
	md     protoreflect.MessageDescriptor
	fields []*fieldPlan
	wire   wirePlan
}

// layout is everything derived from the contract once: table columns, writer descriptor and
// the plan that turns an event into a serialized row.
type layout struct {
	contract  protoreflect.MessageDescriptor
	columns   []*column // contract columns then metadata columns
	writer    *descriptorpb.DescriptorProto
	root      *msgPlan
	meta      [6]protowire.Number // writer numbers of the metadata columns, in metaColumns order
	eventTime protoreflect.FieldDescriptor
	evSec     protoreflect.FieldDescriptor
	evNanos   protoreflect.FieldDescriptor
	skipped   []string // fields that have no column (messages without fields)
	// wire is set when rows can be transcoded from payloads (appendWireRow): no field is a
	// group or a JSON column.
	wire bool
	// hyper decodes the payloads transcoding leaves to decodeRow (hyperType: compiled at
	// first use, nil for a contract hyperpb cannot decode exactly).
	hyper     *hyperpb.MessageType
	hyperOnce sync.Once
}

// metaColumns are the metadata columns (sinktable.Metadata) with their BigQuery types.
var metaColumns = [len(sinktable.Metadata)]struct {
	name string
	typ  bigquery.FieldType
}{
	sinktable.Topic:     {sinktable.ColTopic, bigquery.StringFieldType},
	sinktable.Partition: {sinktable.ColPartition, bigquery.IntegerFieldType},
	sinktable.Offset:    {sinktable.ColOffset, bigquery.IntegerFieldType},
	sinktable.EventTime: {sinktable.ColEventTime, bigquery.TimestampFieldType},
	sinktable.LandedAt:  {sinktable.ColLandedAt, bigquery.TimestampFieldType},
	sinktable.Schema:    {sinktable.ColSchema, bigquery.StringFieldType},
}

// compile derives the layout of contract md. eventTimeField is the configured
// event_time_field; sinktable.EventTimeField says which field fills _event_time.
func compile(md protoreflect.MessageDescriptor, eventTimeField string) (*layout, error) {
	c := &compiler{
		root:       &descriptorpb.DescriptorProto{Name: proto.String("Row")},
		inProgress: map[protoreflect.FullName]bool{},
		typeNames:  map[*fieldPlan]string{},
	}
	l := &layout{contract: md, writer: c.root}
	root, cols, err := c.message(md, c.root, 0, string(md.Name()))
	if err != nil {
		return nil, err
	}
	l.root, l.skipped = root, c.skipped
	seen := map[string]string{}
	for _, col := range cols {
		seen[strings.ToLower(col.name)] = col.name
	}
	next := protowire.Number(len(c.root.Field) + 1)
	for i, m := range metaColumns {
		if prev, ok := seen[strings.ToLower(m.name)]; ok {
			return nil, fmt.Errorf("contract field %q collides with metadata column %s", prev, m.name)
		}
		cols = append(cols, &column{name: m.name, typ: m.typ, required: true, src: "metadata"})
		c.root.Field = append(c.root.Field, writerField(m.name, next, writerType(m.typ), false))
		l.meta[i] = next
		next++
	}
	l.columns = cols
	fd, err := sinktable.EventTimeField(md, eventTimeField)
	if err != nil {
		return nil, err
	}
	if fd != nil {
		l.eventTime = fd
		l.evSec, l.evNanos = fd.Message().Fields().ByNumber(1), fd.Message().Fields().ByNumber(2)
	}
	l.wire = l.root.prepareWire()
	return l, nil
}

type compiler struct {
	root       *descriptorpb.DescriptorProto
	nested     int
	inProgress map[protoreflect.FullName]bool
	typeNames  map[*fieldPlan]string // writer type name of each RECORD field
	skipped    []string
}

// message plans the fields of md into dp, returning the plan and the record's columns.
func (c *compiler) message(md protoreflect.MessageDescriptor, dp *descriptorpb.DescriptorProto, depth int, path string) (*msgPlan, []*column, error) {
	if depth > maxDepth {
		return nil, nil, fmt.Errorf("field %s is nested deeper than BigQuery's %d RECORD levels", path, maxDepth)
	}
	if c.inProgress[md.FullName()] {
		return nil, nil, fmt.Errorf("field %s: recursive message %s cannot be a BigQuery column", path, md.FullName())
	}
	c.inProgress[md.FullName()] = true
	defer delete(c.inProgress, md.FullName())

	plan := &msgPlan{md: md}
	var cols []*column
	names := map[string]string{}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		fpath := path + "." + string(fd.Name())
		fp, col, err := c.field(fd, depth, fpath)
		if err != nil {
			return nil, nil, err
		}
		if fp == nil {
			c.skipped = append(c.skipped, fpath)
			continue
		}
		lower := strings.ToLower(col.name)
		if prev, ok := names[lower]; ok {
			return nil, nil, fmt.Errorf("fields %s and %s differ only in case; BigQuery column names are case-insensitive", path+"."+prev, fpath)
		}
		names[lower] = col.name
		fp.num = protowire.Number(len(dp.Field) + 1)
		dp.Field = append(dp.Field, c.writerFieldFor(fp, col))
		plan.fields = append(plan.fields, fp)
		cols = append(cols, col)
	}
	return plan, cols, nil
}

// field plans one field. It returns a nil plan for a field without a column (a message
// without fields).
func (c *compiler) field(fd protoreflect.FieldDescriptor, depth int, path string) (*fieldPlan, *column, error) {
	fp := &fieldPlan{fd: fd, list: fd.IsList(), isMap: fd.IsMap(), presence: fd.HasPresence()}
	fp.message = fd.Message() != nil && !fd.IsList() && !fd.IsMap()
	col := &column{name: string(fd.Name()), repeated: fd.IsList() || fd.IsMap(), src: fmt.Sprintf("field %s (%s)", fd.FullName(), kindName(fd))}
	if fd.IsMap() {
		entry := fd.Message()
		key, kcol, err := c.field(entry.Fields().ByNumber(1), depth+1, path+".key")
		if err != nil {
			return nil, nil, err
		}
		val, vcol, err := c.field(entry.Fields().ByNumber(2), depth+1, path+".value")
		if err != nil {
			return nil, nil, err
		}
		edp := c.newNested()
		key.num = 1
		edp.Field = append(edp.Field, c.writerFieldFor(key, kcol))
		col.typ = bigquery.RecordFieldType
		col.fields = []*column{kcol}
		if val != nil {
			val.num = 2
			edp.Field = append(edp.Field, c.writerFieldFor(val, vcol))
			col.fields = append(col.fields, vcol)
		}
		fp.kind, fp.key, fp.val = kMessage, key, val
		fp.sub = &msgPlan{md: entry}
		c.typeNames[fp] = edp.GetName()
		return fp, col, nil
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		fp.kind, col.typ = kBool, bigquery.BooleanFieldType
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		fp.kind, col.typ = kInt, bigquery.IntegerFieldType
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		fp.kind, col.typ = kUint32, bigquery.IntegerFieldType
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		fp.kind, col.typ = kUint64, bigquery.NumericFieldType
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		fp.kind, col.typ = kFloat, bigquery.FloatFieldType
	case protoreflect.StringKind:
		fp.kind, col.typ = kString, bigquery.StringFieldType
	case protoreflect.BytesKind:
		fp.kind, col.typ = kBytes, bigquery.BytesFieldType
	case protoreflect.EnumKind:
		fp.kind, col.typ = kEnum, bigquery.StringFieldType
		fp.enum = fd.Enum().Values()
	case protoreflect.MessageKind, protoreflect.GroupKind:
		md := fd.Message()
		switch md.FullName() {
		case "google.protobuf.Timestamp":
			fp.kind, col.typ = kTimestamp, bigquery.TimestampFieldType
			fp.f1, fp.f2 = md.Fields().ByNumber(1), md.Fields().ByNumber(2)
		case "google.protobuf.Duration":
			fp.kind, col.typ = kDuration, bigquery.IntervalFieldType
			fp.f1, fp.f2 = md.Fields().ByNumber(1), md.Fields().ByNumber(2)
		case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue":
			fp.kind, col.typ = kJSON, bigquery.JSONFieldType
		case "google.protobuf.DoubleValue", "google.protobuf.FloatValue":
			fp.kind, fp.inner, col.typ = kWrapper, kFloat, bigquery.FloatFieldType
		case "google.protobuf.Int64Value", "google.protobuf.Int32Value":
			fp.kind, fp.inner, col.typ = kWrapper, kInt, bigquery.IntegerFieldType
		case "google.protobuf.UInt32Value":
			fp.kind, fp.inner, col.typ = kWrapper, kUint32, bigquery.IntegerFieldType
		case "google.protobuf.UInt64Value":
			fp.kind, fp.inner, col.typ = kWrapper, kUint64, bigquery.NumericFieldType
		case "google.protobuf.BoolValue":
			fp.kind, fp.inner, col.typ = kWrapper, kBool, bigquery.BooleanFieldType
		case "google.protobuf.StringValue":
			fp.kind, fp.inner, col.typ = kWrapper, kString, bigquery.StringFieldType
		case "google.protobuf.BytesValue":
			fp.kind, fp.inner, col.typ = kWrapper, kBytes, bigquery.BytesFieldType
		default:
			ndp := c.newNested()
			sub, subCols, err := c.message(md, ndp, depth+1, path)
			if err != nil {
				return nil, nil, err
			}
			if len(subCols) == 0 {
				c.dropNested(ndp)
				return nil, nil, nil
			}
			fp.kind, fp.sub, col.typ, col.fields = kMessage, sub, bigquery.RecordFieldType, subCols
			c.typeNames[fp] = ndp.GetName()
		}
		if fp.kind == kWrapper {
			fp.f1 = md.Fields().ByNumber(1)
		}
	default:
		return nil, nil, fmt.Errorf("field %s: unsupported kind %s", path, fd.Kind())
	}
	fp.packed = fp.list && isPackable(fp.kind)
	return fp, col, nil
}

func isPackable(k valueKind) bool {
	switch k {
	case kBool, kInt, kUint32, kUint64, kFloat, kTimestamp:
		return true
	}
	return false
}

func kindName(fd protoreflect.FieldDescriptor) string {
	prefix := ""
	switch {
	case fd.IsMap():
		return fmt.Sprintf("map<%s, %s>", kindName(fd.MapKey()), kindName(fd.MapValue()))
	case fd.IsList():
		prefix = "repeated "
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return prefix + string(fd.Message().FullName())
	case protoreflect.EnumKind:
		return prefix + "enum " + string(fd.Enum().FullName())
	}
	return prefix + fd.Kind().String()
}

// newNested adds a nested message type to the writer descriptor. All records are nested in
// the root message so that the descriptor is self-contained, as the Write API requires.
func (c *compiler) newNested() *descriptorpb.DescriptorProto {
	c.nested++
	dp := &descriptorpb.DescriptorProto{Name: proto.String(fmt.Sprintf("R%d", c.nested))}
	c.root.NestedType = append(c.root.NestedType, dp)
	return dp
}

func (c *compiler) dropNested(dp *descriptorpb.DescriptorProto) {
	n := c.root.NestedType
	for i := range n {
		if n[i] == dp {
			c.root.NestedType = append(n[:i:i], n[i+1:]...)
			return
		}
	}
}

// writerFieldFor is the writer descriptor field of fp.
func (c *compiler) writerFieldFor(fp *fieldPlan, col *column) *descriptorpb.FieldDescriptorProto {
	f := writerField(col.name, fp.num, writerType(col.typ), col.repeated)
	if col.typ == bigquery.RecordFieldType {
		f.TypeName = proto.String(c.typeNames[fp])
	}
	if fp.packed {
		f.Options = &descriptorpb.FieldOptions{Packed: proto.Bool(true)}
	}
	return f
}

func writerField(name string, num protowire.Number, t descriptorpb.FieldDescriptorProto_Type, repeated bool) *descriptorpb.FieldDescriptorProto {
	label := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	if repeated {
		label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
	}
	return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(int32(num)), Label: label.Enum(), Type: t.Enum()}
}

// writerType is the protobuf type a column's values are written as (see the Write API's
// supported protocol buffer types).
func writerType(t bigquery.FieldType) descriptorpb.FieldDescriptorProto_Type {
	switch t {
	case bigquery.BooleanFieldType:
		return descriptorpb.FieldDescriptorProto_TYPE_BOOL
	case bigquery.IntegerFieldType, bigquery.TimestampFieldType:
		return descriptorpb.FieldDescriptorProto_TYPE_INT64
	case bigquery.NumericFieldType:
		return descriptorpb.FieldDescriptorProto_TYPE_UINT64
	case bigquery.FloatFieldType:
		return descriptorpb.FieldDescriptorProto_TYPE_DOUBLE
	case bigquery.BytesFieldType:
		return descriptorpb.FieldDescriptorProto_TYPE_BYTES
	case bigquery.RecordFieldType:
		return descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	}
	return descriptorpb.FieldDescriptorProto_TYPE_STRING // STRING, JSON, INTERVAL
}

// bqSchema is the table schema of the layout.
func (l *layout) bqSchema() bigquery.Schema {
	s := make(bigquery.Schema, len(l.columns))
	for i, c := range l.columns {
		s[i] = c.toBQ()
	}
	return s
}

// column returns the top-level column named name (case-insensitively), or nil.
func (l *layout) column(name string) *column {
	for _, c := range l.columns {
		if strings.EqualFold(c.name, name) {
			return c
		}
	}
	return nil
}
