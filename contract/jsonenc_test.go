package contract_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
)

const kindsProto = `syntax = "proto3";
package jk.v1;
import "google/protobuf/duration.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message Kinds {
  bool b = 1;
  string s = 2;
  bytes by = 3;
  int32 i32 = 4;
  sint32 s32 = 5;
  sfixed32 sf32 = 6;
  int64 i64 = 7;
  sint64 s64 = 8;
  sfixed64 sf64 = 9;
  uint32 u32 = 10;
  fixed32 f32 = 11;
  uint64 u64 = 12;
  fixed64 f64 = 13;
  float fl = 14;
  double db = 15;
  Color color = 16;
  optional string opt_s = 17;
  optional int64 opt_i64 = 18;
  optional double opt_db = 19;
  optional Color opt_color = 20;
  oneof choice {
    string one_s = 21;
    Inner one_inner = 22;
  }
  Inner inner = 23;
  Kinds self = 24;
  google.protobuf.Timestamp at = 25;
  google.protobuf.Duration dur = 26;
  google.protobuf.StringValue ws = 27;
  google.protobuf.Int32Value wi32 = 28;
  google.protobuf.Empty empty = 29;
  repeated string r_s = 30;
  repeated int64 r_i64 = 31;
  repeated double r_db = 32;
  repeated Color r_color = 33;
  repeated Inner r_inner = 34;
  repeated google.protobuf.Timestamp r_at = 35;
  string snake_case_name = 36;
  google.protobuf.NullValue null = 37;
  map<sint32, Inner> by_id = 38;
  map<bool, string> flags = 39;
  map<fixed64, double> by_u = 40;
  map<string, google.protobuf.Duration> durs = 41;

  enum Color {
    COLOR_UNSPECIFIED = 0;
    COLOR_RED = 1;
  }
}

message Inner {
  string id = 1;
  int64 n = 2;
}

message WithMap {
  map<string, int64> counts = 1;
  string s = 2;
}

// WithStruct keeps protojson: google.protobuf.Struct is not compiled.
message WithStruct {
  google.protobuf.Struct attrs = 1;
  string s = 2;
}
`

// TestJSONEncoder_matches_protojson: for random messages (edge values of every kind, nested,
// recursive, well-known types, invalid timestamps and durations), the compiled JSON encoder's
// output is protojson's byte for byte once protojson's random spaces are compacted away, and
// what it cannot write comes out as protojson's error.
func TestJSONEncoder_matches_protojson(t *testing.T) {
	reg, err := contract.Load(writeTree(t, map[string]string{"jk/v1/kinds.proto": kindsProto}))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, name := range []string{"jk.v1.Kinds", "jk.v1.WithMap", "jk.v1.WithStruct"} {
		c := lookup(t, reg, name)
		if fast := contract.FastJSON(c); fast != (name != "jk.v1.WithStruct") {
			t.Fatalf("%s: compiled JSON encoder = %v", name, fast)
		}
		enc, err := c.Encoder(contract.JSON, 0)
		if err != nil {
			t.Fatal(err)
		}
		dec := c.NewDecoder(contract.Raw)
		var errs, ok int
		for i := range 20_000 {
			m := dynamicpb.NewMessage(c.Descriptor())
			fill(rng, m, 2)
			raw, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := dec.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			want, wantErr := protojson.Marshal(m)
			got, gotErr := enc.Encode(msg)
			if (wantErr == nil) != (gotErr == nil) {
				t.Fatalf("%s message %d (%v): encoder error %v, protojson error %v", name, i, m, gotErr, wantErr)
			}
			if wantErr != nil {
				errs++
				continue
			}
			if !bytes.Equal(compact(t, got), compact(t, want)) || (contract.FastJSON(c) && !bytes.Equal(got, compact(t, got))) {
				t.Fatalf("%s message %d:\n got %s\nwant %s", name, i, got, want)
			}
			ok++
			if i%1000 == 999 {
				dec.Release()
			}
		}
		t.Logf("%s: %d encoded, %d refused as protojson refuses them", name, ok, errs)
		if ok < 300 || (name == "jk.v1.Kinds" && errs == 0) {
			t.Errorf("%s: %d encoded and %d refused: the messages do not exercise both paths", name, ok, errs)
		}
	}
}

// TestJSONEncoder_sample_events: the sample contracts compile, and their events encode as
// protojson does.
func TestJSONEncoder_sample_events(t *testing.T) {
	reg := load(t)
	g, err := eventgen.New(reg, eventgen.Options{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range eventgen.Names() {
		c := lookup(t, reg, name)
		if !contract.FastJSON(c) {
			t.Errorf("%s: JSON encoder not compiled", name)
		}
		enc, err := c.Encoder(contract.JSON, 0)
		if err != nil {
			t.Fatal(err)
		}
		for range 300 {
			m, err := g.Valid(name)
			if err != nil {
				t.Fatal(err)
			}
			want, err := protojson.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := enc.Encode(m)
			if err != nil || !bytes.Equal(got, compact(t, want)) {
				t.Fatalf("%s:\n got %s (%v)\nwant %s", name, got, err, want)
			}
		}
	}
}

// compact removes the insignificant spaces protojson adds at random.
func compact(t *testing.T, js []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, js); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return b.Bytes()
}
