package contract_test

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	auctionsv1 "github.com/switchyard-dev/switchyard/gen/go/auctions/v1"
)

// zooProto has a field for every rule kind the proofs know, and fields next to them that
// they must leave to protovalidate.
const zooProto = `syntax = "proto3";
package zoo.v1;
import "buf/validate/validate.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message Zoo {
  option (buf.validate.message).cel = {id: "zoo.name_or_code", message: "m", expression: "this.name != '' || this.code == 'abc'"};
  string id = 1 [(buf.validate.field).string.uuid = true];
  string tid = 2 [(buf.validate.field).string.tuuid = true];
  string mail = 3 [(buf.validate.field).string.email = true];
  string name = 4 [(buf.validate.field).string = {min_len: 2, max_len: 5, prefix: "a", suffix: "z", contains: "b", not_contains: "x"}];
  string code = 5 [(buf.validate.field).string = {len: 3, len_bytes: 3}];
  string color = 6 [(buf.validate.field).string = {in: ["red", "green"]}];
  string not_color = 7 [(buf.validate.field).string = {not_in: ["red"], min_bytes: 1, max_bytes: 4}];
  string fixed = 8 [(buf.validate.field).string.const = "k"];
  int32 i32 = 9 [(buf.validate.field).int32 = {gt: -5, lte: 10}];
  int64 i64 = 10 [(buf.validate.field).int64 = {gt: 10, lt: 5}];
  sint32 s32 = 11 [(buf.validate.field).sint32 = {in: [1, 2, 3]}];
  uint32 u32 = 12 [(buf.validate.field).uint32 = {not_in: [0], lt: 100}];
  uint64 u64 = 13 [(buf.validate.field).uint64.gte = 7];
  fixed64 f64 = 14 [(buf.validate.field).fixed64.const = 9];
  sfixed32 sf32 = 15 [(buf.validate.field).sfixed32.gte = 0];
  Color en = 16 [(buf.validate.field).enum = {defined_only: true, not_in: [0]}];
  Color en_in = 17 [(buf.validate.field).enum = {in: [1]}];
  google.protobuf.Duration dur = 18 [(buf.validate.field).duration = {gte: {}, lt: {seconds: 60}}];
  google.protobuf.Timestamp at = 19 [(buf.validate.field).required = true];
  google.protobuf.StringValue wrapped = 20 [(buf.validate.field).string.max_len = 3];
  google.protobuf.Int32Value wrapped_int = 21 [(buf.validate.field).int32.gt = 0];
  optional string opt = 22 [(buf.validate.field).string.uuid = true];
  string req = 23 [(buf.validate.field).required = true];
  string ignored = 24 [(buf.validate.field).ignore = IGNORE_IF_ZERO_VALUE, (buf.validate.field).string.email = true];
  string with_cel = 25 [(buf.validate.field).cel = {id: "zoo.cel", message: "not bad", expression: "this != 'bad'"}];
  Inner inner = 26;
  Zoo self = 27;
  oneof choice {
    string a = 28 [(buf.validate.field).string.uuid = true];
    int32 b = 29 [(buf.validate.field).int32.gt = 0];
  }
  repeated string tags = 30 [(buf.validate.field).repeated.items.string.uuid = true];
  double d = 31 [(buf.validate.field).double.gt = 0];
  google.protobuf.Timestamp ts = 32 [(buf.validate.field).timestamp.lt_now = true];
  int32 exclusive = 33 [(buf.validate.field).int32 = {lt: 0, gt: 10}];
  // CEL outside the proofs' subset: a function, and arithmetic (which can overflow).
  string sized = 34 [(buf.validate.field).cel = {id: "zoo.sized", message: "m", expression: "size(this) < 4"}];
  int64 sum = 35 [(buf.validate.field).cel = {id: "zoo.sum", message: "m", expression: "this + 1 > 0"}];

  enum Color {
    COLOR_UNSPECIFIED = 0;
    COLOR_RED = 1;
    COLOR_GREEN = 2;
  }
}

message Inner {
  string id = 1 [(buf.validate.field).string.uuid = true];
}

// Plain has only rules the proofs know: when they prove every field, protovalidate is not
// called at all.
message Plain {
  option (buf.validate.message).cel = {id: "plain.n", message: "m", expression: "this.n < 100 || !has(this.free)"};
  string id = 1 [(buf.validate.field).string.uuid = true];
  int32 n = 2 [(buf.validate.field).int32.gt = 0];
  google.protobuf.Timestamp at = 3 [(buf.validate.field).required = true];
  Money free = 4 [
    (buf.validate.field).required = true,
    (buf.validate.field).cel = {id: "plain.positive", message: "m", expression: "this.units > 0 || (this.units == 0 && this.nanos > 0)"}
  ];
  Money other = 5;
}

message Money {
  option (buf.validate.message).cel = {id: "money.sign", message: "m", expression: "(this.units >= 0 && this.nanos >= 0) || (this.units <= 0 && this.nanos <= 0)"};
  option (buf.validate.message).cel_expression = "this.count != 7u || this.flag";
  string code = 1 [(buf.validate.field).string.pattern = "^[A-Z]{3}$"];
  int64 units = 2 [(buf.validate.field).int64 = {gte: -1000, lte: 1000}];
  int32 nanos = 3;
  uint64 count = 4;
  bool flag = 5;
}
`

// validBases are valid messages that the test mutates a few fields of.
var validBases = map[string]string{
	"zoo.v1.Zoo": `id: "0f8fad5b-d9cb-469f-a165-70867728950e" tid: "0f8fad5bd9cb469fa16570867728950e" mail: "a@b.c"
		name: "abz" code: "abc" color: "red" not_color: "blue" fixed: "k" i32: 0 i64: 11 s32: 1 u32: 5 u64: 7 f64: 9
		sf32: 0 en: COLOR_RED en_in: COLOR_RED dur {seconds: 1} at {seconds: 1} wrapped {value: "ab"}
		wrapped_int {value: 1} opt: "0f8fad5b-d9cb-469f-a165-70867728950e" req: "x" with_cel: "good"
		inner {id: "0f8fad5b-d9cb-469f-a165-70867728950e"} a: "0f8fad5b-d9cb-469f-a165-70867728950e"
		tags: "0f8fad5b-d9cb-469f-a165-70867728950e" d: 1 ts {seconds: 1} exclusive: 11`,
	"zoo.v1.Plain": `id: "0f8fad5b-d9cb-469f-a165-70867728950e" n: 1 at {seconds: 1}
		free {code: "USD" units: 5 count: 7 flag: true} other {code: "EUR" units: -1 nanos: -5}`,
}

func zooRegistry(t testing.TB) *contract.Registry {
	t.Helper()
	validate, err := os.ReadFile(filepath.Join(contractsDir, "buf", "validate", "validate.proto"))
	if err != nil {
		t.Fatal(err)
	}
	dir := writeTree(t, map[string]string{
		"zoo/v1/zoo.proto":            zooProto,
		"buf/validate/validate.proto": string(validate),
	})
	reg, err := contract.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestProofs_cover_the_rule_kinds_they_know(t *testing.T) {
	reg := zooRegistry(t)
	zoo := lookup(t, reg, "zoo.v1.Zoo")
	want := []string{"id", "tid", "mail", "name", "code", "color", "not_color", "fixed", "i32", "i64",
		"s32", "u32", "u64", "f64", "sf32", "en", "en_in", "dur", "at", "wrapped", "wrapped_int", "opt",
		"req", "ignored", "with_cel", "inner", "a", "b", "exclusive"}
	if got := contract.ProvenFields(zoo); !slices.Equal(got, want) {
		t.Errorf("proven fields of Zoo:\n got %v\nwant %v", got, want)
	}
	if contract.ProvesWhole(zoo) {
		t.Error("Zoo has CEL, repeated, double and timestamp rules: its proofs cannot be whole")
	}
	if plain := lookup(t, reg, "zoo.v1.Plain"); !contract.ProvesWhole(plain) {
		t.Error("every rule of Plain is proven, yet its proofs are not whole")
	}
	// BidPlaced: every rule is of a kind the proofs know, CEL included.
	if bid := lookup(t, load(t), eventgen.BidPlaced); !contract.ProvesWhole(bid) {
		t.Errorf("BidPlaced is not proven whole; proven fields: %v", contract.ProvenFields(bid))
	}
}

// TestProofs_agree_with_protovalidate validates random messages, decoded by hyperpb, with
// the proofs and with protovalidate alone: the verdicts and every violation must be equal.
// The values sit on and around each rule's edges, so most fields pass in some messages and
// fail in others; the test also requires that the proofs did skip fields, and that messages
// failing only in proven fields were caught.
func TestProofs_agree_with_protovalidate(t *testing.T) {
	reg := zooRegistry(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range []string{"zoo.v1.Zoo", "zoo.v1.Plain"} {
		c := lookup(t, reg, name)
		dec := c.NewDecoder(contract.Raw)
		var proven, valid, invalid int
		for i := range 20_000 {
			m := dynamicpb.NewMessage(c.Descriptor())
			if err := prototext.Unmarshal([]byte(validBases[name]), m); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				if err := contract.ValidateWithoutProofs(c, m); err != nil {
					t.Fatalf("base %s is invalid: %v", name, err)
				}
			}
			mutate(rng, m, rng.IntN(4))
			raw, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := dec.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			got, want := c.Validate(msg), contract.ValidateWithoutProofs(c, msg)
			if !reflect.DeepEqual(violations(got), violations(want)) || (got == nil) != (want == nil) {
				t.Fatalf("%s message %d (%v):\nwith proofs:    %v\nprotovalidate: %v", name, i, m, got, want)
			}
			// The dynamicpb message too: the proofs read any protoreflect.Message.
			if got := c.Validate(m); !reflect.DeepEqual(violations(got), violations(want)) {
				t.Fatalf("%s message %d as dynamicpb: %v, protovalidate %v", name, i, got, want)
			}
			proven += contract.Proven(c, msg)
			if want == nil {
				valid++
			} else {
				invalid++
			}
			if i%1000 == 999 {
				dec.Release()
			}
		}
		t.Logf("%s: %d valid, %d invalid, %d fields proven", name, valid, invalid, proven)
		if proven == 0 || valid < 100 || invalid < 100 {
			t.Errorf("%s: %d fields proven, %d valid, %d invalid: the messages do not exercise the proofs", name, proven, valid, invalid)
		}
	}
}

// TestProofs_agree_on_sample_events: the sample contracts' valid and invalid events get the
// same verdicts with and without proofs.
func TestProofs_agree_on_sample_events(t *testing.T) {
	reg := load(t)
	g, err := eventgen.New(reg, eventgen.Options{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range eventgen.Names() {
		c := lookup(t, reg, name)
		for _, kind := range []eventgen.Kind{eventgen.Valid, eventgen.Invalid} {
			for range 500 {
				ev, err := g.Make(name, kind, contract.Raw)
				if err != nil {
					t.Fatal(err)
				}
				msg, err := c.NewDecoder(contract.Raw).Decode(ev.Payload)
				if err != nil {
					t.Fatal(err)
				}
				got, want := c.Validate(msg), contract.ValidateWithoutProofs(c, msg)
				if !reflect.DeepEqual(violations(got), violations(want)) || (got == nil) != (kind == eventgen.Valid) {
					t.Fatalf("%s %v: with proofs %v, protovalidate %v", name, kind, got, want)
				}
			}
		}
	}
}

func violations(err error) []contract.Violation {
	if err == nil {
		return nil
	}
	if verr, ok := err.(*contract.ValidationError); ok {
		return verr.Violations
	}
	return []contract.Violation{{Rule: "error: " + err.Error()}}
}

// Edge values for the rules of zooProto.
var (
	edgeStrings = []string{
		"", "k", "a", "ab", "abz", "abbz", "axbz", "abcdz", "abcdez", "red", "green", "blue", "abc", "héllo", "hé", "日本語",
		"0f8fad5b-d9cb-469f-a165-70867728950e", "0F8FAD5B-D9CB-469F-A165-70867728950E",
		"0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5b-d9cb-469f-a165-70867728950e0", "0f8fad5bd9cb469fa16570867728950e",
		"0f8fad5b-d9cb-469f-a165_70867728950e", "0g8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5bxd9cb-469f-a165-70867728950e",
		"0f8fad5bd9cb469fa16570867728950", "0f8fad5bd9cb469fa16570867728950G",
		"a@b", "a@b.c", "a.b+c@d-e.f", "@b", "a@", "a@-b", "a@b-", "a@b..c", "a@b.", "a b@c", "ä@b", "a@@b", "a@b@c",
		"x@" + strings.Repeat("a", 63), "x@" + strings.Repeat("a", 64), "x@a." + strings.Repeat("b", 63) + ".c", "x@a-b.c-d", "x@1.2",
		"bad", "USD", "usd", "US", "USDX", "q\"uote\\back\nnl\ttab\x01\x1f\u2028\u00e9", "\x7f<>&",
	}
	edgeFloats = []float64{0, math.Copysign(0, -1), 1, -1.5, 1e-7, 1e21, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64,
		math.Inf(1), math.Inf(-1), math.NaN(), 3.4e38, 1.17549435e-38}
	edgeInts  = []int64{math.MinInt64, math.MinInt32, -6, -5, -4, -1, 0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 99, 100, 101, math.MaxInt32, math.MaxInt64}
	edgeNanos = []int64{0, 1, -1, 999_999_999, -999_999_999, 1_000_000_000}
	edgeSecs  = []int64{0, 1, -1, 59, 60, 61, math.MaxInt64, math.MinInt64, 315_576_000_000}
)

// mutate clears n random fields of m or sets them to an edge value of their kind.
func mutate(rng *rand.Rand, m protoreflect.Message, n int) {
	fields := m.Descriptor().Fields()
	for range n {
		fd := fields.Get(rng.IntN(fields.Len()))
		if v, ok := edgeValue(rng, m, fd, 1); ok && !fd.IsList() && rng.IntN(4) > 0 {
			m.Set(fd, v)
		} else {
			m.Clear(fd)
		}
	}
}

// fill sets each field of m, at random, to nothing or to an edge value of its kind; depth
// bounds the recursion into Zoo.self.
func fill(rng *rand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if rng.IntN(5) == 0 {
			continue
		}
		if fd.IsMap() {
			mp := m.Mutable(fd).Map()
			for range rng.IntN(3) {
				k, ok := edgeValue(rng, m, fd.MapKey(), depth)
				v, ok2 := edgeValue(rng, m, fd.MapValue(), depth)
				if ok && ok2 {
					mp.Set(k.MapKey(), v)
				}
			}
			continue
		}
		if fd.IsList() {
			l := m.Mutable(fd).List()
			for range rng.IntN(3) {
				if v, ok := edgeValue(rng, m, fd, depth); ok {
					if fd.Message() != nil {
						v = protoreflect.ValueOfMessage(v.Message())
					}
					l.Append(v)
				}
			}
			continue
		}
		if v, ok := edgeValue(rng, m, fd, depth); ok {
			m.Set(fd, v)
		}
	}
}

func edgeValue(rng *rand.Rand, m protoreflect.Message, fd protoreflect.FieldDescriptor, depth int) (protoreflect.Value, bool) {
	n := edgeInts[rng.IntN(len(edgeInts))]
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(edgeStrings[rng.IntN(len(edgeStrings))]), true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(max(math.MinInt32, min(math.MaxInt32, n)))), true
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(n), true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(n)), true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(n)), true
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(rng.IntN(2) == 0), true
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(rng.IntN(4) - 1)), true
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(edgeFloats[rng.IntN(len(edgeFloats))]), true
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(edgeFloats[rng.IntN(len(edgeFloats))])), true
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(edgeStrings[rng.IntN(len(edgeStrings))])), true
	case protoreflect.MessageKind:
		sub := dynamicpb.NewMessage(fd.Message())
		switch fd.Message().FullName() {
		case "google.protobuf.Duration", "google.protobuf.Timestamp":
			sub.Set(sub.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(edgeSecs[rng.IntN(len(edgeSecs))]))
			sub.Set(sub.Descriptor().Fields().ByName("nanos"), protoreflect.ValueOfInt32(int32(edgeNanos[rng.IntN(len(edgeNanos))])))
		case "google.protobuf.Empty":
		case "google.protobuf.StringValue", "google.protobuf.Int32Value":
			inner := sub.Descriptor().Fields().ByName("value")
			if v, ok := edgeValue(rng, sub, inner, depth); ok {
				sub.Set(inner, v)
			}
		default:
			if depth == 0 {
				return protoreflect.Value{}, false
			}
			fill(rng, sub, depth-1)
		}
		return protoreflect.ValueOfMessage(sub), true
	}
	return protoreflect.Value{}, false
}

// TestProofs_leave_other_descriptors_to_protovalidate: the producer validates generated Go
// types, whose descriptors are not the registry's; the proofs must not read them with the
// registry's field descriptors (dynamicpb and generated messages panic on that).
func TestProofs_leave_other_descriptors_to_protovalidate(t *testing.T) {
	reg := load(t)
	c := lookup(t, reg, eventgen.BidPlaced)
	g, err := eventgen.New(reg, eventgen.Options{Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	valid, err := g.Valid(eventgen.BidPlaced)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := proto.Marshal(valid)
	if err != nil {
		t.Fatal(err)
	}
	generated := &auctionsv1.BidPlaced{}
	if err := proto.Unmarshal(raw, generated); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(generated.ProtoReflect()); err != nil {
		t.Fatalf("valid generated BidPlaced: %v", err)
	}
	generated.EventId = "not-a-uuid"
	got := violations(c.Validate(generated.ProtoReflect()))
	if want := []contract.Violation{{Field: "event_id", Rule: "string.uuid"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("generated BidPlaced with a bad event_id: %v, want %v", got, want)
	}
	// The same message type from another Load: equal names, other descriptors.
	other := lookup(t, load(t), eventgen.BidPlaced).New()
	if err := proto.Unmarshal(raw, other); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(other); err != nil {
		t.Fatalf("valid BidPlaced of another registry: %v", err)
	}
	// A contract whose proofs are whole reads the top-level fields itself.
	plain := lookup(t, zooRegistry(t), "zoo.v1.Plain")
	for text, want := range map[string]string{validBases["zoo.v1.Plain"]: "", `id: "x" n: 1 at {seconds: 1} free {units: 1 code: "USD"}`: "id"} {
		m := lookup(t, zooRegistry(t), "zoo.v1.Plain").New()
		if err := prototext.Unmarshal([]byte(text), m); err != nil {
			t.Fatal(err)
		}
		got := violations(plain.Validate(m))
		if (want == "" && got != nil) || (want != "" && (len(got) != 1 || got[0].Field != want)) {
			t.Errorf("Plain of another registry %q: %v, want a violation of %q", text, got, want)
		}
	}
}
