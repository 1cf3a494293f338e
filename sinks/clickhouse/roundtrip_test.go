package clickhouse

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/event"
	sinktable "github.com/switchyard-dev/switchyard/sinks/table"
)

// allKindsJSON sets every field of kinds.v1.AllKinds, with edge values where a kind has them.
// Wrappers and optional fields are set to their zero values: they must land as values, not NULL.
const allKindsJSON = `{
  "i32": -2147483648, "i64": "-9223372036854775808", "u32": 4294967295, "u64": "18446744073709551615",
  "s32": -5, "s64": "-6", "f32": 7, "f64": "8", "sf32": -9, "sf64": "-10",
  "fl": 1.5, "db": -2.25, "b": true, "s": "héllo\tworld", "by": "AAF4", "color": "COLOR_RED",
  "occurred_at": "2026-11-26T12:34:56.789Z", "dur": "-1.500s",
  "w_double": 0.5, "w_float": 0.25, "w_int64": "-3", "w_uint64": "3", "w_int32": -4, "w_uint32": 4,
  "w_bool": false, "w_string": "", "w_bytes": "eQ==",
  "opt_i32": 0, "opt_s": "",
  "r_i64": ["1", "-2"], "r_s": ["a", "b"], "r_color": ["COLOR_GREEN", "COLOR_RED"],
  "r_ts": ["1970-01-01T00:00:01Z"], "r_b": [true, false], "r_db": [0.5], "r_w_i64": ["7"],
  "amount": {"currency": "EUR", "units": "12", "nanos": 500000000},
  "items": [
    {"sku": "a", "qty": 1, "tags": ["t1", "t2"], "price": {"currency": "EUR", "units": "1"}, "attrs": {"k": "1", "j": "2"}},
    {"sku": "b", "qty": 2}
  ],
  "counts": {"x": "1", "a": "2"},
  "by_id": {"2": {"currency": "USD", "units": "3"}, "1": {"currency": "EUR", "units": "4"}},
  "colors": {"z": "COLOR_GREEN"},
  "flags": {"true": "y", "false": "n"},
  "meta": {"k": "v"},
  "node": {"name": "n1", "next": {"name": "n2"}},
  "c_text": "t",
  "seen": {"5": "2000-01-01T00:00:00Z"}
}`

// allKindsColumns is every column of AllKinds on ClickHouse 18.16 with its value for the
// full message (row 0) and for the empty one (row 1), as TSV.
var allKindsColumns = []struct {
	name, typ  string
	full, zero string
}{
	{"i32", "Int32", "-2147483648", "0"},
	{"i64", "Int64", "-9223372036854775808", "0"},
	{"u32", "UInt32", "4294967295", "0"},
	{"u64", "UInt64", "18446744073709551615", "0"},
	{"s32", "Int32", "-5", "0"},
	{"s64", "Int64", "-6", "0"},
	{"f32", "UInt32", "7", "0"},
	{"f64", "UInt64", "8", "0"},
	{"sf32", "Int32", "-9", "0"},
	{"sf64", "Int64", "-10", "0"},
	{"fl", "Float32", "1.5", "0"},
	{"db", "Float64", "-2.25", "0"},
	{"b", "UInt8", "1", "0"},
	{"s", "String", "héllo\tworld", ""},
	{"by", "String", "\x00\x01x", ""},
	{"color", "String", "COLOR_RED", "COLOR_UNSPECIFIED"},
	{"occurred_at", "Nullable(DateTime('UTC'))", "2026-11-26 12:34:56", `\N`},
	{"dur", "Nullable(Int64)", "-1500000000", `\N`},
	{"w_double", "Nullable(Float64)", "0.5", `\N`},
	{"w_float", "Nullable(Float32)", "0.25", `\N`},
	{"w_int64", "Nullable(Int64)", "-3", `\N`},
	{"w_uint64", "Nullable(UInt64)", "3", `\N`},
	{"w_int32", "Nullable(Int32)", "-4", `\N`},
	{"w_uint32", "Nullable(UInt32)", "4", `\N`},
	{"w_bool", "Nullable(UInt8)", "0", `\N`},
	{"w_string", "Nullable(String)", "", `\N`},
	{"w_bytes", "Nullable(String)", "y", `\N`},
	{"opt_i32", "Nullable(Int32)", "0", `\N`},
	{"opt_s", "Nullable(String)", "", `\N`},
	{"r_i64", "Array(Int64)", "[1,-2]", "[]"},
	{"r_s", "Array(String)", "['a','b']", "[]"},
	{"r_color", "Array(String)", "['COLOR_GREEN','COLOR_RED']", "[]"},
	{"r_ts", "Array(DateTime('UTC'))", "['1970-01-01 00:00:01']", "[]"},
	{"r_b", "Array(UInt8)", "[1,0]", "[]"},
	{"r_db", "Array(Float64)", "[0.5]", "[]"},
	{"r_w_i64", "Array(Int64)", "[7]", "[]"},
	{"amount_currency", "String", "EUR", ""},
	{"amount_units", "Int64", "12", "0"},
	{"amount_nanos", "Int32", "500000000", "0"},
	{"items_sku", "Array(String)", "['a','b']", "[]"},
	{"items_qty", "Array(Int32)", "[1,2]", "[]"},
	{"items_tags", "Array(Array(String))", "[['t1','t2'],[]]", "[]"},
	{"items_price_currency", "Array(String)", "['EUR','']", "[]"},
	{"items_price_units", "Array(Int64)", "[1,0]", "[]"},
	{"items_price_nanos", "Array(Int32)", "[0,0]", "[]"},
	{"items_attrs_keys", "Array(Array(String))", "[['j','k'],[]]", "[]"},
	{"items_attrs_values", "Array(Array(Int64))", "[[2,1],[]]", "[]"},
	{"counts_keys", "Array(String)", "['a','x']", "[]"},
	{"counts_values", "Array(Int64)", "[2,1]", "[]"},
	{"by_id_keys", "Array(Int32)", "[1,2]", "[]"},
	{"by_id_values_currency", "Array(String)", "['EUR','USD']", "[]"},
	{"by_id_values_units", "Array(Int64)", "[4,3]", "[]"},
	{"by_id_values_nanos", "Array(Int32)", "[0,0]", "[]"},
	{"colors_keys", "Array(String)", "['z']", "[]"},
	{"colors_values", "Array(String)", "['COLOR_GREEN']", "[]"},
	{"flags_keys", "Array(UInt8)", "[0,1]", "[]"},
	{"flags_values", "Array(String)", "['n','y']", "[]"},
	{"meta", "Nullable(String)", `{"k":"v"}`, `\N`},
	{"node_name", "String", "n1", ""},
	{"node_next", "Nullable(String)", `{"name":"n2"}`, `\N`},
	{"c_text", "Nullable(String)", "t", `\N`},
	{"c_num", "Nullable(Int64)", `\N`, `\N`},
	{"seen_keys", "Array(UInt64)", "[5]", "[]"},
	{"seen_values", "Array(DateTime('UTC'))", "['2000-01-01 00:00:00']", "[]"},
	{"_topic", "String", "kinds", "kinds"},
	{"_partition", "Int32", "3", "3"},
	{"_offset", "Int64", "41", "42"},
	{"_event_time", "DateTime('UTC')", "2026-11-26 12:34:56", "2026-11-27 00:00:00"},
	{"_schema", "String", "kinds.v1.AllKinds", "kinds.v1.AllKinds"},
}

// TestSink_round_trips_every_kind writes a message with every protobuf kind, and an empty one,
// through a table the sink creates, and reads every column back. It runs once with dynamic
// messages and once with hyperpb's read-only ones.
func TestSink_round_trips_every_kind(t *testing.T) {
	md := compile(t, "kinds.proto", "kinds.v1.AllKinds")
	kafkaTime := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		msg  func(js string) protoreflect.Message
	}{
		{"dynamicpb", func(js string) protoreflect.Message { return fromJSON(t, md, js) }},
		{"hyperpb", func(js string) protoreflect.Message { return asHyper(t, fromJSON(t, md, js)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := newTable(t)
			s := openSink(t, testConfig(table), testDeps(t, md))
			recs := []*event.Record{
				record("kinds", 3, 41, kafkaTime, tc.msg(allKindsJSON)),
				record("kinds", 3, 42, kafkaTime, tc.msg(`{}`)),
			}
			if err := write(t, s, recs...); err != nil {
				t.Fatalf("write: %v", err)
			}

			types := map[string]string{}
			for _, r := range server.Query(t, "SELECT name, type FROM system.columns WHERE database = 'default' AND table = '"+table+"'") {
				types[r[0]] = r[1]
			}
			for _, c := range allKindsColumns {
				if got := types[c.name]; got != c.typ {
					t.Errorf("column %s has type %q, want %q", c.name, got, c.typ)
				}
				delete(types, c.name)
				got := readColumn(t, table, quoteIdent(c.name))
				if len(got) != 2 {
					t.Fatalf("column %s: %d rows, want 2", c.name, len(got))
				}
				for i, want := range []string{c.full, c.zero} {
					if c.name == "meta" || c.name == "node_next" {
						got[i] = strings.ReplaceAll(got[i], " ", "") // protojson spacing is unstable
					}
					if got[i] != want {
						t.Errorf("column %s row %d = %q, want %q", c.name, i, got[i], want)
					}
				}
			}
			delete(types, sinktable.ColLandedAt)
			for name, typ := range types {
				t.Errorf("unexpected column %s %s", name, typ)
			}
			landed := readColumn(t, table, "toUnixTimestamp(_landed_at) >= toUnixTimestamp(now()) - 60")
			if strings.Join(landed, ",") != "1,1" {
				t.Errorf("_landed_at is not the landing time: %v", landed)
			}
		})
	}
}
