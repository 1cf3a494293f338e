package clickhouse

import (
	"bytes"
	"errors"
	"testing"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestBind_hand_made_column_types: a table created by hand may use other types than the sink
// would; each compatible one converts values the driver takes, and each incompatible one is
// refused at start-up.
func TestBind_hand_made_column_types(t *testing.T) {
	md := compile(t, "kinds.proto", "kinds.v1.AllKinds")
	cols, err := contractColumns(md, featuresOf(version{18, 16, 1}), func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*logicalColumn{}
	for _, lc := range cols {
		byName[lc.name] = lc
	}
	msgs := []protoreflect.Message{fromJSON(t, md, allKindsJSON), fromJSON(t, md, `{}`)}
	ts := time.Date(2026, 11, 26, 12, 34, 56, 789e6, time.UTC)
	for _, tc := range []struct {
		col, typ string
		want     []any // decoded values of the two rows; nil when the type must be refused
	}{
		{"color", "LowCardinality(String)", []any{"COLOR_RED", "COLOR_UNSPECIFIED"}},
		{"color", "Enum16('COLOR_UNSPECIFIED' = 0, 'COLOR_RED' = 1000)", []any{"COLOR_RED", "COLOR_UNSPECIFIED"}},
		{"color", "Int16", []any{int16(1), int16(0)}},
		{"s", "LowCardinality(String)", []any{"héllo\tworld", ""}},
		{"opt_s", "LowCardinality(Nullable(String))", []any{ptr(""), (*string)(nil)}},
		{"opt_s", "String", []any{"", ""}},
		{"i32", "Nullable(Int64)", []any{ptr(int64(-2147483648)), ptr(int64(0))}},
		{"u32", "UInt64", []any{uint64(4294967295), uint64(0)}},
		{"b", "Int8", []any{int8(1), int8(0)}},
		{"b", "Bool", []any{true, false}},
		{"fl", "Float64", []any{1.5, 0.0}},
		{"db", "Float32", []any{float32(-2.25), float32(0)}},
		{"dur", "Int64", []any{int64(-1500000000), int64(0)}},
		{"occurred_at", "DateTime64(6, 'Europe/Paris')", []any{ts, time.Unix(0, 0)}},
		{"occurred_at", "Nullable(DateTime)", []any{ptr(ts.Truncate(time.Second)), (*time.Time)(nil)}},
		{"r_s", "Array(Nullable(String))", []any{[]*string{ptr("a"), ptr("b")}, []*string{}}},
		{"r_s", "Array(LowCardinality(String))", []any{[]string{"a", "b"}, []string{}}},
		{"r_i64", "Array(Int32)", []any{[]int32{1, -2}, []int32{}}},
		{"counts_values", "Array(UInt16)", []any{[]uint16{2, 1}, []uint16{}}},
		// Refused: no conversion, or the wrong shape.
		{"s", "FixedString(4)", nil},
		{"s", "UUID", nil},
		{"amount_units", "Decimal(18, 2)", nil},
		{"amount_units", "String", nil},
		{"i64", "Float64", nil},
		{"fl", "Int64", nil},
		{"b", "String", nil},
		{"occurred_at", "Int64", nil},
		{"occurred_at", "Date", nil},
		{"r_s", "String", nil},
		{"r_s", "Array(Array(String))", nil},
		{"items_tags", "Array(String)", nil},
		{"s", "Array(String)", nil},
		{"s", "Tuple(String)", nil},
		{"meta", "Int64", nil},
	} {
		t.Run(tc.col+"_"+tc.typ, func(t *testing.T) {
			lc := byName[tc.col]
			spec, typ, err := bind(lc, tc.typ)
			if tc.want == nil {
				if !errors.Is(err, errIncompatible) {
					t.Fatalf("bind %s to %s: %v, want errIncompatible", tc.col, tc.typ, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("bind %s to %s: %v", tc.col, tc.typ, err)
			}
			c := spec.newColumn()
			for i, m := range msgs {
				if err := c.add(&row{rec: record("t", 0, int64(i), ts, m), msg: m, now: ts}); err != nil {
					t.Fatalf("row %d: %v", i, err)
				}
			}
			got := roundTrip(t, typ, c)
			for i, want := range tc.want {
				if !equalValues(got[i], want) {
					t.Errorf("row %d = %#v, want %#v", i, got[i], want)
				}
			}
		})
	}
}

// roundTrip flushes c into a clickhouse-go column of type typ, sends it through the native
// block encoding and returns the decoded values.
func roundTrip(t *testing.T, typ chType, c column) []any {
	t.Helper()
	block := proto.NewBlock()
	if err := block.AddColumn("c", chcol.Type(typ.String())); err != nil {
		t.Fatalf("driver column %s: %v", typ, err)
	}
	if err := c.flush(batchColumn{block.Columns[0]}, 0, c.len()); err != nil {
		t.Fatalf("append to %s: %v", typ, err)
	}
	const revision = 54460
	var buf chproto.Buffer
	if err := block.Encode(&buf, revision); err != nil {
		t.Fatalf("encode: %v", err)
	}
	out := proto.NewBlock()
	if err := out.Decode(chproto.NewReader(bytes.NewReader(buf.Buf)), revision); err != nil {
		t.Fatalf("decode: %v", err)
	}
	var vals []any
	for i := range out.Rows() {
		vals = append(vals, out.Columns[0].Row(i, false))
	}
	return vals
}

func TestParseType(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Int64", "Int64"},
		{"Nullable(DateTime('UTC'))", "Nullable(DateTime('UTC'))"},
		{"Array(Array(Nullable(String)))", "Array(Array(Nullable(String)))"},
		{"Map(String,  Array(Int64))", "Map(String, Array(Int64))"},
		{"Enum8('a, b' = 1, 'c\\'d' = 2)", "Enum8('a, b' = 1, 'c\\'d' = 2)"},
		{"DateTime64(3, 'UTC')", "DateTime64(3, 'UTC')"},
	} {
		got, err := parseType(tc.in)
		if err != nil || got.String() != tc.want {
			t.Errorf("parseType(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	e, _ := parseType("Enum8('a, b' = 1, 'c\\'d' = 2)")
	vals, err := enumValues(e)
	if err != nil || vals["a, b"] != 1 || vals["c'd"] != 2 {
		t.Errorf("enumValues = %v, %v", vals, err)
	}
	for _, bad := range []string{"", "Array(String", "Nullable()", "Map(String)", "Enum8('a = 1)"} {
		if _, err := parseType(bad); err == nil {
			t.Errorf("parseType(%q) succeeded", bad)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := quoteString("it's a \\ test\n"); got != `'it\'s a \\ test\n'` {
		t.Errorf("quoteString = %s", got)
	}
	if got := quoteIdent("we`ird"); got != "`we\\`ird`" {
		t.Errorf("quoteIdent = %s", got)
	}
}
