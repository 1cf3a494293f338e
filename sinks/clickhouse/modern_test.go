package clickhouse

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// The test server is Debian's 18.16; users run 24.x and later. These tests cover the column
// types only newer servers have (DateTime64, Bool, Map) without a server: the sink converts
// records for the modern table, clickhouse-go's own columns take the values, and the block
// survives the native wire encoding.

var modern = featuresOf(version{24, 8, 0})

// modernTypes are the AllKinds columns whose type differs on a modern server.
var modernTypes = map[string]string{
	"b":            "Bool",
	"occurred_at":  "Nullable(DateTime64(3, 'UTC'))",
	"w_bool":       "Nullable(Bool)",
	"r_ts":         "Array(DateTime64(3, 'UTC'))",
	"r_b":          "Array(Bool)",
	"items_attrs":  "Array(Map(String, Int64))",
	"counts":       "Map(String, Int64)",
	"colors":       "Map(String, String)",
	"flags":        "Map(Bool, String)",
	"seen":         "Map(UInt64, DateTime64(3, 'UTC'))",
	"_event_time":  "DateTime64(3, 'UTC')",
	"_landed_at":   "DateTime64(3, 'UTC')",
	"by_id_keys":   "Array(Int32)", // message-valued maps stay parallel arrays
	"items_sku":    "Array(String)",
	"amount_units": "Int64",
}

func TestModernServer_column_types(t *testing.T) {
	md := compile(t, "kinds.proto", "kinds.v1.AllKinds")
	cols, err := contractColumns(md, modern, func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, lc := range cols {
		got[lc.name] = lc.desiredType(modern)
	}
	for name, want := range modernTypes {
		if got[name] != want {
			t.Errorf("column %s: %q, want %q", name, got[name], want)
		}
	}
	for _, gone := range []string{"counts_keys", "counts_values", "items_attrs_keys", "flags_keys"} {
		if typ, ok := got[gone]; ok {
			t.Errorf("column %s %s exists; maps with scalar values should be one Map column", gone, typ)
		}
	}
}

// TestModernServer_driver_takes_values converts both AllKinds rows for a modern table, appends
// them to clickhouse-go columns of the modern types, encodes and decodes the block, and checks
// the values that use modern types.
func TestModernServer_driver_takes_values(t *testing.T) {
	md := compile(t, "kinds.proto", "kinds.v1.AllKinds")
	s, err := New(&Config{Addresses: []string{"127.0.0.1:1"}, Table: "x"}, testDeps(t, md))
	if err != nil {
		t.Fatal(err)
	}
	cols, err := contractColumns(md, modern, func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	tbl := &table{exists: true}
	for _, lc := range cols {
		tbl.columns = append(tbl.columns, tableColumn{name: lc.name, typ: lc.desiredType(modern)})
	}
	stmts, bound, _, err := s.reconcile(modern, tbl)
	if err != nil || len(stmts) > 0 {
		t.Fatalf("reconcile with the modern table: %v %v", stmts, err)
	}
	w := newWriter(s.fqtn, bound, modern)
	b := w.pool.Get().(*builder)
	b.reset(2)
	kafkaTime := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	for i, js := range []string{allKindsJSON, `{}`} {
		for _, m := range []bool{false, true} {
			msg := fromJSON(t, md, js).ProtoReflect()
			if m {
				msg = asHyper(t, fromJSON(t, md, js))
			}
			if err := b.add(s, record("kinds", 0, int64(i), kafkaTime, msg), kafkaTime); err != nil {
				t.Fatalf("convert row %d: %v", i, err)
			}
		}
	}

	block := proto.NewBlock()
	for _, c := range bound {
		if err := block.AddColumn(c.lc.name, chcol.Type(c.typ.String())); err != nil {
			t.Fatalf("driver column %s %s: %v", c.lc.name, c.typ, err)
		}
	}
	for i, c := range b.cols {
		if err := c.flush(batchColumn{block.Columns[i]}, 0, c.len()); err != nil {
			t.Fatalf("append to column %s %s: %v", bound[i].lc.name, bound[i].typ, err)
		}
	}
	const revision = 54460
	var buf chproto.Buffer
	if err := block.Encode(&buf, revision); err != nil {
		t.Fatalf("encode block: %v", err)
	}
	out := proto.NewBlock()
	if err := out.Decode(chproto.NewReader(bytes.NewReader(buf.Buf)), revision); err != nil {
		t.Fatalf("decode block: %v", err)
	}
	if out.Rows() != 4 {
		t.Fatalf("block has %d rows, want 4", out.Rows())
	}
	value := func(name string, row int) any {
		for i, c := range bound {
			if c.lc.name == name {
				return out.Columns[i].Row(row, false)
			}
		}
		t.Fatalf("no column %s", name)
		return nil
	}
	ts := time.Date(2026, 11, 26, 12, 34, 56, 789e6, time.UTC)
	for _, tc := range []struct {
		col  string
		row  int
		want any
	}{
		{"b", 0, true},
		{"b", 2, false},
		{"occurred_at", 1, &ts},
		{"occurred_at", 3, (*time.Time)(nil)},
		{"_event_time", 0, ts},
		{"_event_time", 2, kafkaTime},
		{"w_bool", 0, ptr(false)},
		{"r_b", 0, []bool{true, false}},
		{"counts", 1, map[string]int64{"a": 2, "x": 1}},
		{"counts", 2, map[string]int64{}},
		{"flags", 0, map[bool]string{false: "n", true: "y"}},
		{"colors", 0, map[string]string{"z": "COLOR_GREEN"}},
		{"items_attrs", 0, []map[string]int64{{"j": 2, "k": 1}, {}}},
		{"seen", 0, map[uint64]time.Time{5: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"r_ts", 1, []time.Time{time.Unix(1, 0).UTC()}},
	} {
		got := value(tc.col, tc.row)
		if !equalValues(got, tc.want) {
			t.Errorf("column %s row %d = %#v, want %#v", tc.col, tc.row, got, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// equalValues compares decoded values, times by instant.
func equalValues(got, want any) bool {
	norm := func(v any) any {
		switch x := v.(type) {
		case time.Time:
			return x.UnixNano()
		case *time.Time:
			if x == nil {
				return nil
			}
			return x.UnixNano()
		case []time.Time:
			out := make([]int64, len(x))
			for i, t := range x {
				out[i] = t.UnixNano()
			}
			return out
		case map[uint64]time.Time:
			out := map[uint64]int64{}
			for k, t := range x {
				out[k] = t.UnixNano()
			}
			return out
		}
		return v
	}
	g, w := norm(got), norm(want)
	if isNil(g) || isNil(w) {
		return isNil(g) && isNil(w)
	}
	return reflect.DeepEqual(g, w)
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// batchColumn adapts a clickhouse-go column to driver.BatchColumn.
type batchColumn struct{ col chcol.Interface }

func (c batchColumn) Append(v any) error    { _, err := c.col.Append(v); return err }
func (c batchColumn) AppendRow(v any) error { return c.col.AppendRow(v) }
