package clickhouse

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unsafe"

	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/event"
)

// This file turns protobuf values into the Go values clickhouse-go's columns take, for the
// column types the table actually has. A "cell" is the conversion of one value kind into one
// ClickHouse base type; a "column" buffers one batch of values for one table column. Every
// conversion checks that the value fits its column, so a value that cannot be written fails
// its record only (see Sink.Write), never the batch.

// errRange is wrapped by every "value does not fit its column" error.
var errRange = errors.New("value out of range")

// row is one record being converted.
type row struct {
	rec *event.Record
	msg protoreflect.Message // rec.Message, or its conversion to the sink schema
	now time.Time            // landing time of the batch

	// The top-level message field the last nested column read, and its value: a message's
	// leaves are adjacent columns (amount_currency_code, amount_units, amount_nanos), so
	// they read their parent once per row, not once each.
	parentFd protoreflect.FieldDescriptor
	parent   protoreflect.Message
}

// child is the message in top-level field fd of r's message (an invalid message when unset).
func (r *row) child(fd protoreflect.FieldDescriptor) protoreflect.Message {
	if r.parentFd != fd {
		r.parentFd, r.parent = fd, r.msg.Get(fd).Message()
	}
	return r.parent
}

// column buffers the values of one table column for one batch.
type column interface {
	add(r *row) error
	len() int
	truncate(n int)
	// flush appends the buffered values of rows [lo, hi) to the batch column.
	flush(bc driver.BatchColumn, lo, hi int) error
	reset()
}

// colSpec makes the buffers of one bound table column; it is shared by concurrent Writes.
type colSpec interface {
	newColumn() column
}

// cell converts values of one kind into the Go values of one ClickHouse base type.
type cell interface {
	// scalar is a spec for a column without array levels whose value comes from get.
	scalar(get func(*row) (protoreflect.Value, bool), nullable bool) colSpec
	// timeScalar is scalar for time values; ok is false unless the target is a time type.
	timeScalar(get func(*row) time.Time, nullable bool) (spec colSpec, ok bool)
	// array is a spec for a column with array levels, or for a Map leaf (key converts keys).
	array(lc *logicalColumn, key cell) colSpec
	// boxed converts one value to the column's Go type, as an interface.
	boxed(v protoreflect.Value) (any, error)
}

type typedCell[T any] struct {
	conv     func(protoreflect.Value) (T, error)
	fromTime func(time.Time) (T, error) // time targets only
}

func (c typedCell[T]) boxed(v protoreflect.Value) (any, error) { return c.conv(v) }

func (c typedCell[T]) scalar(get func(*row) (protoreflect.Value, bool), nullable bool) colSpec {
	conv := c.conv
	return scalarSpec[T]{nullable: nullable, get: func(r *row) (T, bool, error) {
		v, ok := get(r)
		if !ok && nullable {
			var zero T
			return zero, false, nil
		}
		t, err := conv(v)
		return t, ok, err
	}}
}

func (c typedCell[T]) timeScalar(get func(*row) time.Time, nullable bool) (colSpec, bool) {
	if c.fromTime == nil {
		return nil, false
	}
	from := c.fromTime
	return scalarSpec[T]{nullable: nullable, get: func(r *row) (T, bool, error) {
		t, err := from(get(r))
		return t, true, err
	}}, true
}

func (c typedCell[T]) array(lc *logicalColumn, key cell) colSpec {
	w := walker[T]{lc: lc, conv: c.conv, inner: innermostArrayStep(lc)}
	if lc.leaf == leafMap {
		w.key, w.val = key.boxed, c.boxed
	}
	return arraySpec{get: func(r *row) (any, error) { return w.build(r.msg, 0) }}
}

// scalarSpec / scalarCol: typed values, appended to the driver in one call per batch.

type scalarSpec[T any] struct {
	nullable bool
	get      func(*row) (T, bool, error)
}

func (s scalarSpec[T]) newColumn() column { return &scalarCol[T]{spec: s} }

type scalarCol[T any] struct {
	spec  scalarSpec[T]
	vals  []T
	nulls []bool
	ptrs  []*T
}

func (c *scalarCol[T]) add(r *row) error {
	v, ok, err := c.spec.get(r)
	if err != nil {
		return err
	}
	c.vals = append(c.vals, v)
	if c.spec.nullable {
		c.nulls = append(c.nulls, !ok)
	}
	return nil
}

func (c *scalarCol[T]) len() int { return len(c.vals) }

func (c *scalarCol[T]) truncate(n int) {
	c.vals = c.vals[:n]
	if c.spec.nullable {
		c.nulls = c.nulls[:n]
	}
}

func (c *scalarCol[T]) flush(bc driver.BatchColumn, lo, hi int) error {
	if !c.spec.nullable {
		return bc.Append(c.vals[lo:hi])
	}
	// The driver's Nullable columns take []*T; point into vals instead of allocating.
	c.ptrs = slices.Grow(c.ptrs[:0], hi-lo)[:hi-lo]
	for i := lo; i < hi; i++ {
		if c.nulls[i] {
			c.ptrs[i-lo] = nil
		} else {
			c.ptrs[i-lo] = &c.vals[i]
		}
	}
	return bc.Append(c.ptrs)
}

func (c *scalarCol[T]) reset() {
	c.truncate(0)
	clear(c.ptrs)
}

// arraySpec / arrayCol: one nested Go value per row ([]T, []any of []T, or a Map), appended
// row by row.

type arraySpec struct {
	get func(*row) (any, error)
}

func (s arraySpec) newColumn() column { return &arrayCol{get: s.get} }

type arrayCol struct {
	get  func(*row) (any, error)
	rows []any
}

func (c *arrayCol) add(r *row) error {
	v, err := c.get(r)
	if err != nil {
		return err
	}
	c.rows = append(c.rows, v)
	return nil
}

func (c *arrayCol) len() int       { return len(c.rows) }
func (c *arrayCol) truncate(n int) { clear(c.rows[n:]); c.rows = c.rows[:n] }
func (c *arrayCol) reset()         { c.truncate(0) }

func (c *arrayCol) flush(bc driver.BatchColumn, lo, hi int) error {
	for _, v := range c.rows[lo:hi] {
		if err := bc.AppendRow(v); err != nil {
			return err
		}
	}
	return nil
}

// walker builds the nested value of an array or Map column from a message.
type walker[T any] struct {
	lc       *logicalColumn
	conv     func(protoreflect.Value) (T, error)
	key, val func(protoreflect.Value) (any, error) // leafMap
	inner    int                                   // index of the innermost array step; -1 when the leaf is the innermost level
}

// innermostArrayStep is the index of the last list/map step when the leaf itself adds no
// array level (leafSingular, leafMap), else -1.
func innermostArrayStep(lc *logicalColumn) int {
	if lc.leaf != leafSingular && lc.leaf != leafMap {
		return -1
	}
	for i := len(lc.steps) - 1; i >= 0; i-- {
		if lc.steps[i].kind != stepMessage {
			return i
		}
	}
	return -1
}

func (w *walker[T]) build(m protoreflect.Message, i int) (any, error) {
	steps := w.lc.steps
	for i < len(steps) && steps[i].kind == stepMessage {
		m = m.Get(steps[i].fd).Message()
		i++
	}
	if i == len(steps) {
		return w.leaf(m)
	}
	elems := stepElements(m, steps[i])
	if i == w.inner && w.lc.leaf == leafSingular {
		out := make([]T, 0, len(elems))
		for _, e := range elems {
			v, err := w.single(e, i+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	out := make([]any, 0, len(elems))
	for _, e := range elems {
		v, err := w.build(e, i+1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// single is the singular leaf value under the innermost array level.
func (w *walker[T]) single(m protoreflect.Message, i int) (T, error) {
	for ; i < len(w.lc.steps); i++ {
		m = m.Get(w.lc.steps[i].fd).Message()
	}
	v, _ := leafGet(m, w.lc)
	return w.conv(v)
}

func (w *walker[T]) leaf(m protoreflect.Message) (any, error) {
	lc := w.lc
	switch lc.leaf {
	case leafSingular:
		v, _ := leafGet(m, lc)
		return w.conv(v)
	case leafList:
		list := m.Get(lc.fd).List()
		out := make([]T, 0, list.Len())
		for j := range list.Len() {
			t, err := w.conv(lc.element(list.Get(j)))
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
		return out, nil
	case leafMapKeys, leafMapValues:
		mp := m.Get(lc.fd).Map()
		keys := sortedKeys(mp, lc.fd.MapKey().Kind())
		out := make([]T, 0, len(keys))
		for _, k := range keys {
			v := k.Value()
			if lc.leaf == leafMapValues {
				v = lc.element(mp.Get(k))
			}
			t, err := w.conv(v)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
		return out, nil
	case leafMap:
		mp := m.Get(lc.fd).Map()
		keys := sortedKeys(mp, lc.fd.MapKey().Kind())
		om := &orderedMap{keys: make([]any, 0, len(keys)), vals: make([]any, 0, len(keys))}
		for _, k := range keys {
			kv, err := w.key(k.Value())
			if err != nil {
				return nil, err
			}
			vv, err := w.val(lc.element(mp.Get(k)))
			if err != nil {
				return nil, err
			}
			om.Put(kv, vv)
		}
		return om, nil
	}
	return nil, fmt.Errorf("internal error: leaf kind %d", lc.leaf)
}

// stepElements returns the messages one array step iterates: list elements, or map values in
// key order.
func stepElements(m protoreflect.Message, s step) []protoreflect.Message {
	switch s.kind {
	case stepList:
		list := m.Get(s.fd).List()
		out := make([]protoreflect.Message, list.Len())
		for j := range out {
			out[j] = list.Get(j).Message()
		}
		return out
	case stepMapValues:
		mp := m.Get(s.fd).Map()
		keys := sortedKeys(mp, s.fd.MapKey().Kind())
		out := make([]protoreflect.Message, len(keys))
		for j, k := range keys {
			out[j] = mp.Get(k).Message()
		}
		return out
	}
	return nil
}

// sortedKeys returns the keys of a map in ascending order, so that the parallel key and value
// columns of one map agree and equal maps land equal.
func sortedKeys(mp protoreflect.Map, kind protoreflect.Kind) []protoreflect.MapKey {
	keys := make([]protoreflect.MapKey, 0, mp.Len())
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	slices.SortFunc(keys, func(a, b protoreflect.MapKey) int {
		switch kind {
		case protoreflect.StringKind:
			return cmpOrdered(a.String(), b.String())
		case protoreflect.BoolKind:
			return cmpBool(a.Bool(), b.Bool())
		case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
			return cmpOrdered(a.Uint(), b.Uint())
		default:
			return cmpOrdered(a.Int(), b.Int())
		}
	})
	return keys
}

func cmpOrdered[T int64 | uint64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// orderedMap is a Map(K, V) value in key order, for clickhouse-go's IterableOrderedMap.
type orderedMap struct{ keys, vals []any }

func (m *orderedMap) Put(k, v any) { m.keys, m.vals = append(m.keys, k), append(m.vals, v) }

func (m *orderedMap) Iterator() chcol.MapIterator { return &mapIter{m: m, i: -1} }

type mapIter struct {
	m *orderedMap
	i int
}

func (it *mapIter) Next() bool { it.i++; return it.i < len(it.m.keys) }
func (it *mapIter) Key() any   { return it.m.keys[it.i] }
func (it *mapIter) Value() any { return it.m.vals[it.i] }

// leafGet returns the value of a singular leaf of m and whether it is present.
func leafGet(m protoreflect.Message, lc *logicalColumn) (protoreflect.Value, bool) {
	fd := lc.fd
	// A message field is read once, not with Has and Get: unset, it reads as an invalid
	// (empty, read-only) message.
	if lc.wrapped {
		w := m.Get(fd).Message()
		if !w.IsValid() {
			return lc.vfd.Default(), false
		}
		return lc.unwrap(w), true
	}
	if lc.presence {
		if lc.message {
			v := m.Get(fd)
			return v, v.Message().IsValid()
		}
		return m.Get(fd), m.Has(fd)
	}
	return m.Get(fd), true
}

// newCell returns the conversion of values of lc (its value kind, or for key, its map key
// kind) into base type t, or an error that says why the column cannot hold them.
func newCell(lc *logicalColumn, t chType, key bool) (cell, error) {
	vk, fd := lc.vk, lc.vfd
	if key {
		vk, fd = lc.kk, lc.kfd
	}
	t = t.base()
	if r, ok := intType(t); ok {
		switch r.bits {
		case 8:
			if r.signed {
				return intCell[int8](vk, fd, r, lc)
			}
			return intCell[uint8](vk, fd, r, lc)
		case 16:
			if r.signed {
				return intCell[int16](vk, fd, r, lc)
			}
			return intCell[uint16](vk, fd, r, lc)
		case 32:
			if r.signed {
				return intCell[int32](vk, fd, r, lc)
			}
			return intCell[uint32](vk, fd, r, lc)
		default:
			if r.signed {
				return intCell[int64](vk, fd, r, lc)
			}
			return intCell[uint64](vk, fd, r, lc)
		}
	}
	switch t.name {
	case "Float32":
		if vk == vkFloat || vk == vkDouble {
			return typedCell[float32]{conv: func(v protoreflect.Value) (float32, error) {
				f := v.Float()
				if math.Abs(f) > math.MaxFloat32 && !math.IsInf(f, 0) {
					return 0, fmt.Errorf("%w for Float32", errRange)
				}
				return float32(f), nil
			}}, nil
		}
	case "Float64":
		if vk == vkFloat || vk == vkDouble {
			return typedCell[float64]{conv: func(v protoreflect.Value) (float64, error) { return v.Float(), nil }}, nil
		}
	case "Bool":
		if vk == vkBool {
			return typedCell[bool]{conv: func(v protoreflect.Value) (bool, error) { return v.Bool(), nil }}, nil
		}
	case "String":
		switch vk {
		case vkString:
			return typedCell[string]{conv: func(v protoreflect.Value) (string, error) { return v.String(), nil }}, nil
		case vkBytes:
			return typedCell[string]{conv: func(v protoreflect.Value) (string, error) { return bytesString(v.Bytes()), nil }}, nil
		case vkEnum:
			names := enumNames(fd)
			return typedCell[string]{conv: func(v protoreflect.Value) (string, error) {
				if name, ok := names[v.Enum()]; ok {
					return name, nil
				}
				return strconv.Itoa(int(v.Enum())), nil
			}}, nil
		case vkJSON:
			return typedCell[string]{conv: jsonString}, nil
		}
	case "Enum8", "Enum16":
		if vk == vkEnum || vk == vkString {
			elems, err := enumValues(t)
			if err != nil {
				return nil, err
			}
			names := enumNames(fd)
			return typedCell[string]{conv: func(v protoreflect.Value) (string, error) {
				var name string
				if vk == vkString {
					name = v.String()
				} else if name = names[v.Enum()]; name == "" {
					return "", fmt.Errorf("%w: the enum number has no name in the contract", errRange)
				}
				if _, ok := elems[name]; !ok {
					// Errors never carry values (they reach logs and dead-letter headers).
					return "", fmt.Errorf("%w: not an element of the %s", errRange, t.name)
				}
				return name, nil
			}}, nil
		}
	case "DateTime":
		if vk == vkTimestamp {
			from := func(tm time.Time) (time.Time, error) {
				if tm.Before(minTime32) || tm.After(maxTime32) {
					return time.Time{}, fmt.Errorf("%w for DateTime (1970-01-01 to 2106-02-07)", errRange)
				}
				return tm, nil
			}
			ts := newWKT(fd)
			return typedCell[time.Time]{fromTime: from, conv: func(v protoreflect.Value) (time.Time, error) {
				tm, err := ts.timestamp(v.Message())
				if err != nil {
					return time.Time{}, err
				}
				return from(tm)
			}}, nil
		}
	case "DateTime64":
		if vk == vkTimestamp {
			p, err := dateTime64Precision(t)
			if err != nil {
				return nil, err
			}
			unit := time.Duration(math.Pow10(9 - p))
			from := func(tm time.Time) (time.Time, error) {
				if tm.Before(minTime64) || tm.After(maxTime64) {
					return time.Time{}, fmt.Errorf("%w for DateTime64 (1900-01-01 to 2262-04-11)", errRange)
				}
				// Floor to the column's precision (the driver truncates toward zero).
				if d := time.Duration(tm.Nanosecond()) % unit; d != 0 {
					tm = tm.Add(-d)
				}
				return tm, nil
			}
			ts := newWKT(fd)
			return typedCell[time.Time]{fromTime: from, conv: func(v protoreflect.Value) (time.Time, error) {
				tm, err := ts.timestamp(v.Message())
				if err != nil {
					return time.Time{}, err
				}
				return from(tm)
			}}, nil
		}
	}
	return nil, errIncompatible
}

var errIncompatible = errors.New("incompatible column type")

var (
	minTime32 = time.Unix(0, 0)
	maxTime32 = time.Unix(math.MaxUint32, 0)
	minTime64 = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime64 = time.Unix(0, math.MaxInt64)
)

type integer interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// intCell converts integer-like values (ints, enums as numbers, bools as 0/1, durations as
// nanoseconds) into an integer column, checking the column's range.
func intCell[T integer](vk valueKind, fd protoreflect.FieldDescriptor, r intRange, lc *logicalColumn) (cell, error) {
	lo, hi := r.min(), r.max()
	var typ string
	if r.signed {
		typ = "Int" + strconv.Itoa(r.bits)
	} else {
		typ = "UInt" + strconv.Itoa(r.bits)
	}
	signed := func(x int64) (T, error) {
		if x < lo || (x > 0 && uint64(x) > hi) {
			return 0, fmt.Errorf("%w for %s", errRange, typ)
		}
		return T(x), nil
	}
	switch vk {
	case vkInt:
		return typedCell[T]{conv: func(v protoreflect.Value) (T, error) { return signed(v.Int()) }}, nil
	case vkUint:
		return typedCell[T]{conv: func(v protoreflect.Value) (T, error) {
			if u := v.Uint(); u > hi {
				return 0, fmt.Errorf("%w for %s", errRange, typ)
			}
			return T(v.Uint()), nil
		}}, nil
	case vkEnum:
		return typedCell[T]{conv: func(v protoreflect.Value) (T, error) { return signed(int64(v.Enum())) }}, nil
	case vkBool:
		return typedCell[T]{conv: func(v protoreflect.Value) (T, error) {
			if v.Bool() {
				return 1, nil
			}
			return 0, nil
		}}, nil
	case vkDuration:
		d := newWKT(fd)
		return typedCell[T]{conv: func(v protoreflect.Value) (T, error) {
			ns, err := d.durationNanos(v.Message())
			if err != nil {
				return 0, err
			}
			return signed(ns)
		}}, nil
	}
	return nil, errIncompatible
}

// wkt reads the two fields (seconds, nanos) of google.protobuf.Timestamp and Duration.
type wkt struct {
	md            protoreflect.MessageDescriptor
	seconds, nano protoreflect.FieldDescriptor
}

func newWKT(fd protoreflect.FieldDescriptor) *wkt {
	if fd == nil || fd.Message() == nil {
		return &wkt{}
	}
	md := fd.Message()
	return &wkt{md: md, seconds: md.Fields().ByNumber(1), nano: md.Fields().ByNumber(2)}
}

func (w *wkt) get(m protoreflect.Message) (int64, int64) {
	sf, nf := w.seconds, w.nano
	if md := m.Descriptor(); md != w.md {
		// A message built from another copy of the well-known type (say a generated
		// timestamppb inside a dynamic message): look its fields up by number.
		fs := md.Fields()
		sf, nf = fs.ByNumber(1), fs.ByNumber(2)
	}
	return m.Get(sf).Int(), m.Get(nf).Int()
}

const (
	minTimestampSeconds = -62135596800 // 0001-01-01T00:00:00Z
	maxTimestampSeconds = 253402300799 // 9999-12-31T23:59:59Z
)

func (w *wkt) timestamp(m protoreflect.Message) (time.Time, error) {
	s, n := w.get(m)
	if s < minTimestampSeconds || s > maxTimestampSeconds || n < 0 || n >= 1e9 {
		return time.Time{}, errors.New("invalid google.protobuf.Timestamp")
	}
	return time.Unix(s, n).UTC(), nil
}

func (w *wkt) durationNanos(m protoreflect.Message) (int64, error) {
	s, n := w.get(m)
	if n <= -1e9 || n >= 1e9 || (s > 0 && n < 0) || (s < 0 && n > 0) {
		return 0, errors.New("invalid google.protobuf.Duration")
	}
	if s > math.MaxInt64/int64(1e9) || s < math.MinInt64/int64(1e9) {
		return 0, fmt.Errorf("%w: duration does not fit Int64 nanoseconds", errRange)
	}
	ns := s * 1e9
	if (n > 0 && ns > math.MaxInt64-n) || (n < 0 && ns < math.MinInt64-n) {
		return 0, fmt.Errorf("%w: duration does not fit Int64 nanoseconds", errRange)
	}
	return ns + n, nil
}

func enumNames(fd protoreflect.FieldDescriptor) map[protoreflect.EnumNumber]string {
	if fd == nil || fd.Enum() == nil {
		return nil
	}
	vals := fd.Enum().Values()
	out := make(map[protoreflect.EnumNumber]string, vals.Len())
	for i := range vals.Len() {
		v := vals.Get(i)
		if _, dup := out[v.Number()]; !dup { // aliases: the first name wins
			out[v.Number()] = string(v.Name())
		}
	}
	return out
}

var jsonOptions = protojson.MarshalOptions{UseProtoNames: true}

func jsonString(v protoreflect.Value) (string, error) {
	b, err := jsonOptions.Marshal(v.Message().Interface())
	if err != nil {
		return "", fmt.Errorf("encode message as JSON: %w", err)
	}
	return string(b), nil
}

// bytesString views b as a string without copying. Records are read-only and outlive the
// Write that reads them, and the driver copies the bytes when the batch is flushed.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
