package bqfake

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	bq "google.golang.org/api/bigquery/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Value ranges BigQuery enforces.
const (
	minTimestampMicros = -62135596800 * 1_000_000
	maxTimestampMicros = 253402300799*1_000_000 + 999_999
	minDate            = -719162
	maxDate            = 2932896
)

var (
	reInterval = regexp.MustCompile(`^-?\d+-\d+ -?\d+ -?\d+:\d+:\d+(\.\d{1,9})?$`)
	reNumeric  = regexp.MustCompile(`^[+-]?(\d+)(\.(\d+))?$`)
)

// writerDescriptor builds the message descriptor of a writer schema. The DescriptorProto must
// be self-contained (nested types only), as the Write API requires.
func writerDescriptor(dp *descriptorpb.DescriptorProto) (protoreflect.MessageDescriptor, error) {
	if dp == nil || dp.GetName() == "" {
		return nil, fmt.Errorf("writer schema has no message descriptor")
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("bqfake_writer_schema.proto"),
		Syntax:      proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{dp},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		return nil, fmt.Errorf("invalid proto schema: %v", err)
	}
	return fd.Messages().Get(0), nil
}

// wmsg is a writer message checked against a table record: how to validate its rows.
type wmsg struct {
	fields  map[protowire.Number]*wfield
	reqNums []protowire.Number // writer numbers of the REQUIRED columns
	reqName []string
}

type wfield struct {
	name     string
	fd       protoreflect.FieldDescriptor
	typ      string // normalized column type
	repeated bool
	sub      *wmsg
}

// compileWriter checks that writer message md fits columns cols, as BigQuery does when a
// connection's first request arrives.
func compileWriter(md protoreflect.MessageDescriptor, cols []*bq.TableFieldSchema, path string) (*wmsg, error) {
	byName := map[string]*bq.TableFieldSchema{}
	for _, c := range cols {
		byName[strings.ToLower(c.Name)] = c
	}
	w := &wmsg{fields: map[protowire.Number]*wfield{}}
	fields := md.Fields()
	byWriterName := map[string]protowire.Number{}
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := path + string(fd.Name())
		col, ok := byName[strings.ToLower(string(fd.Name()))]
		if !ok {
			return nil, fmt.Errorf("Input schema has more fields than BigQuery schema, extra fields: '%s'", name)
		}
		if fd.IsMap() {
			return nil, fmt.Errorf("Field '%s': map fields are not supported; write repeated key/value messages", name)
		}
		typ := normType(col.Type)
		rep := mode(col.Mode) == "REPEATED"
		if fd.IsList() != rep {
			return nil, fmt.Errorf("Field '%s' is %s in the proto schema but %s in the table", name, protoLabel(fd), mode(col.Mode))
		}
		if !compatible(typ, fd) {
			return nil, fmt.Errorf("The proto field '%s' of type %s cannot be written to a BigQuery column of type %s", name, fd.Kind(), typ)
		}
		f := &wfield{name: name, fd: fd, typ: typ, repeated: rep}
		if typ == "RECORD" {
			sub, err := compileWriter(fd.Message(), col.Fields, name+".")
			if err != nil {
				return nil, err
			}
			f.sub = sub
		}
		w.fields[fd.Number()] = f
		byWriterName[strings.ToLower(string(fd.Name()))] = fd.Number()
	}
	for _, c := range cols {
		if mode(c.Mode) != "REQUIRED" {
			continue
		}
		num, ok := byWriterName[strings.ToLower(c.Name)]
		if !ok {
			return nil, fmt.Errorf("The proto schema lacks the REQUIRED field '%s%s'", path, c.Name)
		}
		w.reqNums = append(w.reqNums, num)
		w.reqName = append(w.reqName, path+c.Name)
	}
	return w, nil
}

func protoLabel(fd protoreflect.FieldDescriptor) string {
	if fd.IsList() {
		return "repeated"
	}
	return "not repeated"
}

// compatible reports whether a proto field kind may be written to a column type (the Write
// API's supported protocol buffer types).
func compatible(typ string, fd protoreflect.FieldDescriptor) bool {
	var k string
	switch fd.Kind() {
	case protoreflect.BoolKind:
		k = "bool"
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		k = "int32"
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		k = "int64"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		k = "uint32"
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		k = "uint64"
	case protoreflect.FloatKind:
		k = "float"
	case protoreflect.DoubleKind:
		k = "double"
	case protoreflect.StringKind:
		k = "string"
	case protoreflect.BytesKind:
		k = "bytes"
	case protoreflect.EnumKind:
		k = "enum"
	case protoreflect.MessageKind, protoreflect.GroupKind:
		k = "message"
	}
	allowed := map[string]string{
		"BOOLEAN":    "bool int32 int64 uint32 uint64",
		"BYTES":      "bytes string",
		"DATE":       "int32 int64 string",
		"DATETIME":   "string int64",
		"TIME":       "string int64",
		"FLOAT":      "double float",
		"GEOGRAPHY":  "string",
		"INTEGER":    "int32 int64 uint32 enum",
		"JSON":       "string",
		"NUMERIC":    "int32 int64 uint32 uint64 double float string bytes",
		"BIGNUMERIC": "int32 int64 uint32 uint64 double float string bytes",
		"STRING":     "string enum",
		"TIMESTAMP":  "int64 int32 uint32",
		"INTERVAL":   "string",
		"RECORD":     "message",
	}[typ]
	for _, a := range strings.Fields(allowed) {
		if a == k {
			return true
		}
	}
	return false
}

// check validates one serialized row.
func (w *wmsg) check(b []byte) error {
	var seen []bool
	if len(w.reqNums) > 0 {
		seen = make([]bool, len(w.reqNums))
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("cannot parse the row: %v", protowire.ParseError(n))
		}
		b = b[n:]
		f := w.fields[num]
		if f == nil {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("cannot parse the row: %v", protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		n, err := f.checkValue(typ, b)
		if err != nil {
			return err
		}
		b = b[n:]
		for i, rn := range w.reqNums {
			if rn == num {
				seen[i] = true
			}
		}
	}
	for i, ok := range seen {
		if !ok {
			return fmt.Errorf("Field '%s' is REQUIRED but has no value", w.reqName[i])
		}
	}
	return nil
}

func wireTypeOf(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.DoubleKind, protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
		return protowire.Fixed64Type
	case protoreflect.FloatKind, protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind:
		return protowire.Fixed32Type
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return protowire.BytesType
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	}
	return protowire.VarintType
}

// checkValue validates one field occurrence at b (after its tag) and returns its length.
func (f *wfield) checkValue(typ protowire.Type, b []byte) (int, error) {
	want := wireTypeOf(f.fd.Kind())
	if typ == protowire.BytesType && want != protowire.BytesType && f.repeated {
		// Packed repeated scalars.
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, fmt.Errorf("Field '%s': cannot parse: %v", f.name, protowire.ParseError(n))
		}
		for len(v) > 0 {
			m, err := f.checkScalar(want, v)
			if err != nil {
				return 0, err
			}
			v = v[m:]
		}
		return n, nil
	}
	if typ != want {
		return 0, fmt.Errorf("Field '%s': wire type %d does not match its proto type %s", f.name, typ, f.fd.Kind())
	}
	if want == protowire.StartGroupType {
		return 0, fmt.Errorf("Field '%s': groups are not supported", f.name)
	}
	return f.checkScalar(want, b)
}

func (f *wfield) checkScalar(wt protowire.Type, b []byte) (int, error) {
	var (
		n  int
		iv int64
	)
	switch wt {
	case protowire.VarintType:
		var v uint64
		v, n = protowire.ConsumeVarint(b)
		switch f.fd.Kind() {
		case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
			iv = protowire.DecodeZigZag(v)
		case protoreflect.Int32Kind:
			iv = int64(int32(v))
		case protoreflect.Uint32Kind:
			iv = int64(uint32(v))
		default:
			iv = int64(v)
		}
	case protowire.Fixed64Type:
		var v uint64
		v, n = protowire.ConsumeFixed64(b)
		if f.fd.Kind() == protoreflect.DoubleKind {
			if x := math.Float64frombits(v); f.typ != "FLOAT" && (math.IsNaN(x) || math.IsInf(x, 0)) {
				return 0, fmt.Errorf("Field '%s': %v cannot be a %s", f.name, x, f.typ)
			}
		}
		iv = int64(v)
	case protowire.Fixed32Type:
		var v uint32
		v, n = protowire.ConsumeFixed32(b)
		iv = int64(int32(v))
	case protowire.BytesType:
		var v []byte
		v, n = protowire.ConsumeBytes(b)
		if n < 0 {
			break
		}
		if f.sub != nil {
			if err := f.sub.check(v); err != nil {
				return 0, err
			}
			return n, nil
		}
		if f.fd.Kind() == protoreflect.StringKind {
			if err := f.checkString(v); err != nil {
				return 0, err
			}
		}
		return n, nil
	}
	if n < 0 {
		return 0, fmt.Errorf("Field '%s': cannot parse: %v", f.name, protowire.ParseError(n))
	}
	switch f.typ {
	case "TIMESTAMP":
		if iv < minTimestampMicros || iv > maxTimestampMicros {
			return 0, fmt.Errorf("Field '%s': timestamp %d micros is out of range", f.name, iv)
		}
	case "DATE":
		if iv < minDate || iv > maxDate {
			return 0, fmt.Errorf("Field '%s': date %d is out of range", f.name, iv)
		}
	}
	return n, nil
}

func (f *wfield) checkString(v []byte) error {
	if !utf8.Valid(v) {
		return fmt.Errorf("Field '%s': invalid UTF-8 in a string", f.name)
	}
	switch f.typ {
	case "JSON":
		if !json.Valid(v) {
			return fmt.Errorf("Field '%s': invalid JSON", f.name)
		}
	case "INTERVAL":
		if !reInterval.Match(v) {
			return fmt.Errorf("Field '%s': %q is not an INTERVAL literal", f.name, v)
		}
	case "NUMERIC", "BIGNUMERIC":
		m := reNumeric.FindSubmatch(v)
		intDigits, fracDigits := 29, 9
		if f.typ == "BIGNUMERIC" {
			intDigits, fracDigits = 38, 38
		}
		if m == nil || len(strings.TrimLeft(string(m[1]), "0")) > intDigits || len(m[3]) > fracDigits {
			return fmt.Errorf("Field '%s': %q is not a valid %s", f.name, v, f.typ)
		}
	}
	return nil
}

// decodeRow decodes a stored row for reading, by the table's current schema.
func decodeRow(desc protoreflect.MessageDescriptor, data []byte, cols []*bq.TableFieldSchema) (Row, error) {
	m := dynamicpb.NewMessage(desc)
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("bqfake: decode stored row: %w", err)
	}
	return toRow(m, cols), nil
}

func toRow(m protoreflect.Message, cols []*bq.TableFieldSchema) Row {
	row := Row{}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		var col *bq.TableFieldSchema
		for _, c := range cols {
			if strings.EqualFold(c.Name, string(fd.Name())) {
				col = c
			}
		}
		if col == nil {
			continue
		}
		if fd.IsList() {
			l := m.Get(fd).List()
			if l.Len() == 0 {
				continue
			}
			vals := make([]any, l.Len())
			for j := range l.Len() {
				vals[j] = convert(fd, col, l.Get(j))
			}
			row[col.Name] = vals
			continue
		}
		if !m.Has(fd) {
			continue
		}
		row[col.Name] = convert(fd, col, m.Get(fd))
	}
	return row
}

func convert(fd protoreflect.FieldDescriptor, col *bq.TableFieldSchema, v protoreflect.Value) any {
	asInt := func() int64 {
		switch fd.Kind() {
		case protoreflect.EnumKind:
			return int64(v.Enum())
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			return int64(v.Uint())
		case protoreflect.BoolKind:
			if v.Bool() {
				return 1
			}
			return 0
		}
		return v.Int()
	}
	switch normType(col.Type) {
	case "RECORD":
		return toRow(v.Message(), col.Fields)
	case "INTEGER", "DATE":
		return asInt()
	case "FLOAT":
		return v.Float()
	case "BOOLEAN":
		if fd.Kind() == protoreflect.BoolKind {
			return v.Bool()
		}
		return asInt() != 0
	case "TIMESTAMP":
		return time.UnixMicro(asInt()).UTC()
	case "BYTES":
		if fd.Kind() == protoreflect.StringKind {
			return []byte(v.String())
		}
		return append([]byte{}, v.Bytes()...)
	case "NUMERIC", "BIGNUMERIC":
		switch fd.Kind() {
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			return strconv.FormatUint(v.Uint(), 10)
		case protoreflect.FloatKind, protoreflect.DoubleKind:
			return strconv.FormatFloat(v.Float(), 'f', -1, 64)
		case protoreflect.StringKind:
			return v.String()
		case protoreflect.BytesKind:
			return decimalFromBytes(v.Bytes(), normType(col.Type) == "BIGNUMERIC")
		}
		return strconv.FormatInt(asInt(), 10)
	}
	// STRING, JSON, INTERVAL, GEOGRAPHY, DATETIME, TIME.
	if fd.Kind() == protoreflect.EnumKind {
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return strconv.FormatInt(int64(v.Enum()), 10)
	}
	if fd.Kind() == protoreflect.BytesKind {
		return string(v.Bytes())
	}
	if fd.Kind() == protoreflect.StringKind {
		return v.String()
	}
	return fmt.Sprint(v.Interface())
}

// decimalFromBytes decodes BigDecimalByteStringEncoder's format: little-endian two's
// complement of the value scaled by 10^9 (NUMERIC) or 10^38 (BIGNUMERIC).
func decimalFromBytes(b []byte, big38 bool) string {
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	n := new(big.Int).SetBytes(be)
	if len(be) > 0 && be[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(be))))
	}
	scale := 9
	if big38 {
		scale = 38
	}
	r := new(big.Rat).SetFrac(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil))
	return strings.TrimRight(strings.TrimRight(r.FloatString(scale), "0"), ".")
}
