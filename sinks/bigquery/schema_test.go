package bigquery

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/bigquery/bqfake"
	sinktable "github.com/switchyard-dev/switchyard/sinks/table"
)

// compileProto compiles .proto sources (imports resolve among them and to the well-known
// types) and returns the message named msg.
func compileProto(t testing.TB, msg string, files map[string]string) protoreflect.MessageDescriptor {
	t.Helper()
	var names []string
	for name := range files {
		names = append(names, name)
	}
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(files),
	})}
	out, err := c.Compile(context.Background(), names...)
	if err != nil {
		t.Fatalf("compile protos: %v", err)
	}
	for _, f := range out {
		if d, _ := f.FindDescriptorByName(protoreflect.FullName(msg)).(protoreflect.MessageDescriptor); d != nil {
			return d
		}
	}
	t.Fatalf("no message %s", msg)
	return nil
}

// allKinds has a field of every protobuf kind and every well-known type the mapping treats
// specially.
const allKindsProto = `
syntax = "proto3";
package kinds.v1;

import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Color {
  COLOR_UNSPECIFIED = 0;
  COLOR_RED = 1;
  COLOR_GREEN = 2;
}

message Inner {
  string name = 1;
  int64 count = 2;
  repeated string labels = 3;
  Leaf leaf = 4;
}

message Leaf {
  bool ok = 1;
}

message AllKinds {
  string id = 1;
  bool f_bool = 2;
  int32 f_int32 = 3;
  sint32 f_sint32 = 4;
  sfixed32 f_sfixed32 = 5;
  int64 f_int64 = 6;
  sint64 f_sint64 = 7;
  sfixed64 f_sfixed64 = 8;
  uint32 f_uint32 = 9;
  fixed32 f_fixed32 = 10;
  uint64 f_uint64 = 11;
  fixed64 f_fixed64 = 12;
  float f_float = 13;
  double f_double = 14;
  string f_string = 15;
  bytes f_bytes = 16;
  Color f_enum = 17;
  Inner f_message = 18;
  google.protobuf.Timestamp f_timestamp = 19;
  google.protobuf.Duration f_duration = 20;
  google.protobuf.DoubleValue w_double = 21;
  google.protobuf.FloatValue w_float = 22;
  google.protobuf.Int64Value w_int64 = 23;
  google.protobuf.UInt64Value w_uint64 = 24;
  google.protobuf.Int32Value w_int32 = 25;
  google.protobuf.UInt32Value w_uint32 = 26;
  google.protobuf.BoolValue w_bool = 27;
  google.protobuf.StringValue w_string = 28;
  google.protobuf.BytesValue w_bytes = 29;
  google.protobuf.Struct f_struct = 30;
  google.protobuf.Value f_value = 31;
  google.protobuf.ListValue f_list_value = 32;
  google.protobuf.Any f_any = 33;
  google.protobuf.Empty f_empty = 34;
  repeated int64 r_int64 = 35;
  repeated double r_double = 36;
  repeated string r_string = 37;
  repeated Color r_enum = 38;
  repeated Inner r_message = 39;
  repeated google.protobuf.Timestamp r_timestamp = 40;
  repeated bool r_bool = 41;
  repeated uint64 r_uint64 = 42;
  map<string, int64> m_string_int64 = 43;
  map<int32, Inner> m_int32_inner = 44;
  map<bool, Color> m_bool_enum = 45;
  optional int64 o_int64 = 46;
  optional string o_string = 47;
  oneof choice {
    string c_text = 48;
    int64 c_number = 49;
  }
  bytes f_bytes_empty = 50;
}
`

func allKinds(t testing.TB) protoreflect.MessageDescriptor {
	return compileProto(t, "kinds.v1.AllKinds", map[string]string{"kinds/v1/kinds.proto": allKindsProto})
}

// TestSchema_every_kind checks the column derived for every protobuf kind.
func TestSchema_every_kind(t *testing.T) {
	lay, err := compile(allKinds(t), "f_timestamp")
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	inner := "STRUCT<`name` STRING, `count` INT64, `labels` ARRAY<STRING>, `leaf` STRUCT<`ok` BOOL>>"
	want := map[string]string{
		"id": "STRING", "f_bool": "BOOL",
		"f_int32": "INT64", "f_sint32": "INT64", "f_sfixed32": "INT64",
		"f_int64": "INT64", "f_sint64": "INT64", "f_sfixed64": "INT64",
		"f_uint32": "INT64", "f_fixed32": "INT64",
		"f_uint64": "NUMERIC", "f_fixed64": "NUMERIC",
		"f_float": "FLOAT64", "f_double": "FLOAT64",
		"f_string": "STRING", "f_bytes": "BYTES", "f_bytes_empty": "BYTES",
		"f_enum":      "STRING",
		"f_message":   inner,
		"f_timestamp": "TIMESTAMP",
		"f_duration":  "INTERVAL",
		"w_double":    "FLOAT64", "w_float": "FLOAT64", "w_int64": "INT64", "w_uint64": "NUMERIC",
		"w_int32": "INT64", "w_uint32": "INT64", "w_bool": "BOOL", "w_string": "STRING", "w_bytes": "BYTES",
		"f_struct": "JSON", "f_value": "JSON", "f_list_value": "JSON",
		"f_any":          "STRUCT<`type_url` STRING, `value` BYTES>",
		"r_int64":        "ARRAY<INT64>",
		"r_double":       "ARRAY<FLOAT64>",
		"r_string":       "ARRAY<STRING>",
		"r_enum":         "ARRAY<STRING>",
		"r_message":      "ARRAY<" + inner + ">",
		"r_timestamp":    "ARRAY<TIMESTAMP>",
		"r_bool":         "ARRAY<BOOL>",
		"r_uint64":       "ARRAY<NUMERIC>",
		"m_string_int64": "ARRAY<STRUCT<`key` STRING, `value` INT64>>",
		"m_int32_inner":  "ARRAY<STRUCT<`key` INT64, `value` " + inner + ">>",
		"m_bool_enum":    "ARRAY<STRUCT<`key` BOOL, `value` STRING>>",
		"o_int64":        "INT64", "o_string": "STRING",
		"c_text": "STRING", "c_number": "INT64",
		sinktable.ColTopic: "STRING NOT NULL", sinktable.ColPartition: "INT64 NOT NULL", sinktable.ColOffset: "INT64 NOT NULL",
		sinktable.ColEventTime: "TIMESTAMP NOT NULL", sinktable.ColLandedAt: "TIMESTAMP NOT NULL", sinktable.ColSchema: "STRING NOT NULL",
	}
	got := map[string]string{}
	for _, c := range lay.columns {
		got[c.name] = c.sqlType()
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("column %s: got %q, want %q", name, got[name], w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected column %s %s", name, got[name])
		}
	}
	if !reflect.DeepEqual(lay.skipped, []string{"AllKinds.f_empty"}) {
		t.Errorf("skipped fields: got %v, want [AllKinds.f_empty]", lay.skipped)
	}
}

// TestSchema_round_trip writes an event with every kind set through the real client into
// the fake and reads the row back.
func TestSchema_round_trip(t *testing.T) {
	md := allKinds(t)
	e := newFakeEnv(t)
	table := e.table("kinds")
	cfg := e.config(table)
	cfg.EventTimeField = "f_timestamp"
	cfg.Clustering = []string{sinktable.ColTopic, "f_enum"}
	s := e.open(t, cfg, md)

	m := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal([]byte(`{
		"id": "row-1", "fBool": true,
		"fInt32": -32, "fSint32": -33, "fSfixed32": -34,
		"fInt64": "-9223372036854775808", "fSint64": "-64", "fSfixed64": "9223372036854775807",
		"fUint32": 4294967295, "fFixed32": 7,
		"fUint64": "18446744073709551615", "fFixed64": "42",
		"fFloat": 1.5, "fDouble": -2.25,
		"fString": "héllo", "fBytes": "AAEC",
		"fEnum": "COLOR_GREEN",
		"fMessage": {"name": "n", "count": "3", "labels": ["a", "b"], "leaf": {"ok": true}},
		"fTimestamp": "2026-11-26T12:34:56.123456789Z",
		"fDuration": "-3725.5s",
		"wDouble": 0, "wFloat": 2.5, "wInt64": "0", "wUint64": "18446744073709551615", "wInt32": -1,
		"wUint32": 5, "wBool": false, "wString": "", "wBytes": "",
		"fStruct": {"a": 1, "b": [true, null]},
		"fValue": "text",
		"fListValue": [1, "two"],
		"fAny": {"@type": "type.googleapis.com/google.protobuf.Int64Value", "value": "5"},
		"fEmpty": {},
		"rInt64": ["1", "-2", "3"], "rDouble": [0.5, -1],
		"rString": ["x", ""], "rEnum": ["COLOR_RED", "COLOR_UNSPECIFIED"],
		"rMessage": [{"name": "first"}, {"count": "2"}],
		"rTimestamp": ["1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z"],
		"rBool": [true, false], "rUint64": ["18446744073709551615"],
		"mStringInt64": {"k": "7"},
		"mInt32Inner": {"-1": {"name": "neg"}},
		"mBoolEnum": {"true": "COLOR_RED"},
		"oInt64": "0",
		"cNumber": "99"
	}`), m); err != nil {
		t.Fatalf("build event: %v", err)
	}
	rec := &event.Record{Topic: "kinds", Partition: 3, Offset: 77, Timestamp: time.Unix(1, 0), Message: m, Contract: string(md.FullName())}
	if err := s.Write(context.Background(), []*event.Record{rec}); err != nil {
		t.Fatalf("write: %v", err)
	}
	rows, err := e.fake.Rows(testProject, testDataset, table)
	if err != nil || len(rows) != 1 {
		t.Fatalf("rows: %v, %v", rows, err)
	}
	row := rows[0]
	ts := time.Date(2026, 11, 26, 12, 34, 56, 123456000, time.UTC)
	inner := bqfake.Row{"name": "n", "count": int64(3), "labels": []any{"a", "b"}, "leaf": bqfake.Row{"ok": true}}
	want := bqfake.Row{
		"id": "row-1", "f_bool": true,
		"f_int32": int64(-32), "f_sint32": int64(-33), "f_sfixed32": int64(-34),
		"f_int64": int64(math.MinInt64), "f_sint64": int64(-64), "f_sfixed64": int64(math.MaxInt64),
		"f_uint32": int64(4294967295), "f_fixed32": int64(7),
		"f_uint64": "18446744073709551615", "f_fixed64": "42",
		"f_float": 1.5, "f_double": -2.25,
		"f_string": "héllo", "f_bytes": []byte{0, 1, 2}, "f_bytes_empty": []byte{},
		"f_enum":      "COLOR_GREEN",
		"f_message":   inner,
		"f_timestamp": ts,
		"f_duration":  "0-0 0 -1:02:05.500000",
		"w_double":    0.0, "w_float": 2.5, "w_int64": int64(0), "w_uint64": "18446744073709551615", "w_int32": int64(-1),
		"w_uint32": int64(5), "w_bool": false, "w_string": "", "w_bytes": []byte{},
		"f_struct":         `{"a":1,"b":[true,null]}`,
		"f_value":          `"text"`,
		"f_list_value":     `[1,"two"]`,
		"f_any":            bqfake.Row{"type_url": "type.googleapis.com/google.protobuf.Int64Value", "value": []byte{8, 5}},
		"r_int64":          []any{int64(1), int64(-2), int64(3)},
		"r_double":         []any{0.5, -1.0},
		"r_string":         []any{"x", ""},
		"r_enum":           []any{"COLOR_RED", "COLOR_UNSPECIFIED"},
		"r_message":        []any{bqfake.Row{"name": "first", "count": int64(0)}, bqfake.Row{"name": "", "count": int64(2)}},
		"r_timestamp":      []any{time.Unix(0, 0).UTC(), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		"r_bool":           []any{true, false},
		"r_uint64":         []any{"18446744073709551615"},
		"m_string_int64":   []any{bqfake.Row{"key": "k", "value": int64(7)}},
		"m_int32_inner":    []any{bqfake.Row{"key": int64(-1), "value": bqfake.Row{"name": "neg", "count": int64(0)}}},
		"m_bool_enum":      []any{bqfake.Row{"key": true, "value": "COLOR_RED"}},
		"o_int64":          int64(0),
		"c_number":         int64(99),
		sinktable.ColTopic: "kinds", sinktable.ColPartition: int64(3), sinktable.ColOffset: int64(77),
		sinktable.ColEventTime: ts, sinktable.ColSchema: "kinds.v1.AllKinds",
	}
	landed, ok := row[sinktable.ColLandedAt].(time.Time)
	if !ok || time.Since(landed) > time.Minute {
		t.Errorf("_landed_at: got %v", row[sinktable.ColLandedAt])
	}
	delete(row, sinktable.ColLandedAt)
	for _, k := range []string{"f_struct", "f_value", "f_list_value"} { // JSON: compare values, not spacing
		var g, w any
		gs, _ := row[k].(string)
		if err := json.Unmarshal([]byte(gs), &g); err != nil {
			t.Errorf("column %s: %q is not JSON: %v", k, gs, err)
		}
		_ = json.Unmarshal([]byte(want[k].(string)), &w)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("column %s: got %s, want %s", k, gs, want[k])
		}
		delete(row, k)
		delete(want, k)
	}
	for k, w := range want {
		if g := row[k]; !reflect.DeepEqual(g, w) {
			t.Errorf("column %s: got %#v, want %#v", k, g, w)
		}
	}
	for k, g := range row {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected column %s = %#v (unset fields must be NULL)", k, g)
		}
	}
	meta := e.fake.Table(testProject, testDataset, table)
	if meta.TimePartitioning == nil || meta.TimePartitioning.Field != sinktable.ColEventTime || meta.TimePartitioning.Type != "DAY" {
		t.Errorf("time partitioning: got %+v, want DAY on %s", meta.TimePartitioning, sinktable.ColEventTime)
	}
	if meta.Clustering == nil || !reflect.DeepEqual(meta.Clustering.Fields, []string{sinktable.ColTopic, "f_enum"}) {
		t.Errorf("clustering: got %+v", meta.Clustering)
	}
}

// TestSchema_unsupported checks the contracts that cannot become a table.
func TestSchema_unsupported(t *testing.T) {
	deep := "syntax = \"proto3\";\npackage d.v1;\n"
	for i := 0; i < 17; i++ {
		deep += "message L" + string(rune('a'+i)) + " { L" + string(rune('a'+i+1)) + " next = 1; }\n"
	}
	deep += "message L" + string(rune('a'+17)) + " { string leaf = 1; }\n"
	for _, tc := range []struct {
		name, msg, src, want string
	}{
		{"recursive", "r.v1.Node", `syntax = "proto3"; package r.v1; message Node { string id = 1; repeated Node children = 2; }`,
			"recursive message r.v1.Node"},
		{"case_collision", "c.v1.Event", `syntax = "proto3"; package c.v1; message Event { string id = 1; string ID = 2; }`,
			"differ only in case"},
		{"metadata_collision", "m.v1.Event", `syntax = "proto3"; package m.v1; message Event { string _topic = 1; }`,
			"collides with metadata column _topic"},
		{"too_deep", "d.v1.La", deep, "nested deeper than BigQuery's 15 RECORD levels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := compileProto(t, tc.msg, map[string]string{"x.proto": tc.src})
			_, err := New(Config{Project: "p", Dataset: "d"}, Options{}, sinks.Deps{Schema: md})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestConfig_checks covers the configuration problems New reports.
func TestConfig_checks(t *testing.T) {
	md := allKinds(t)
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"no_project", func(c *Config) { c.Project = "" }, "project is required"},
		{"bad_dataset", func(c *Config) { c.Dataset = "my-dataset" }, `dataset "my-dataset"`},
		{"partition_not_timestamp", func(c *Config) { c.PartitionField = "f_string" }, `partition_field "f_string" is a STRING column`},
		{"partition_missing", func(c *Config) { c.PartitionField = "nope" }, `partition_field "nope" is not a top-level column`},
		{"clustering_float", func(c *Config) { c.Clustering = []string{"f_double"} }, `clustering column "f_double" is a FLOAT64 column`},
		{"clustering_five", func(c *Config) { c.Clustering = []string{"id", "f_string", "f_enum", "f_int64", "f_bool"} }, "at most 4"},
		{"event_time_not_timestamp", func(c *Config) { c.EventTimeField = "f_string" }, `event_time_field "f_string" is not a top-level google.protobuf.Timestamp`},
		{"request_too_big", func(c *Config) { c.MaxRequestBytes = 20 << 20 }, "10MB request limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Project: "p", Dataset: "d", PartitionGranularity: "day", PartitionField: sinktable.ColEventTime}
			tc.edit(&cfg)
			problems := ValidateConfig(cfg, md)
			if len(problems) != 1 || !strings.Contains(problems[0], tc.want) {
				t.Fatalf("got %q, want one problem containing %q", problems, tc.want)
			}
		})
	}
	if p := ValidateConfig(Config{Project: "p", Dataset: "d"}, md); p != nil {
		t.Errorf("zero-value options: got %q, want no problems", p)
	}
}
