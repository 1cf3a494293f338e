package contract_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile/reporter"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
)

func TestLoad_directory_declares_sample_contracts(t *testing.T) {
	reg := load(t)
	want := []string{
		"auctions.v1.BidPlaced", "common.v1.Money", "livestream.v1.ViewStarted", "livestream.v1.ViewStarted.Client",
		"orders.v1.OrderPaid", "orders.v1.OrderPaid.LineItem", "orders.v1.OrderPaid.Payment",
		"orders.v1.OrderPaid.Payment.BankTransfer", "orders.v1.OrderPaid.Payment.Card", "orders.v1.OrderPaid.Payment.Wallet",
	}
	if got := reg.Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, path := range []string{"buf/validate/validate.proto", "google/protobuf/timestamp.proto", "common/v1/money.proto"} {
		if _, err := reg.Files().FindFileByPath(path); err != nil {
			t.Errorf("Files() lacks %s: %v", path, err)
		}
	}
}

func TestContract_MessageIndexes(t *testing.T) {
	reg := load(t)
	for _, tc := range []struct {
		name string
		want []int
	}{
		{"auctions.v1.BidPlaced", []int{0}},
		{"orders.v1.OrderPaid.LineItem", []int{0, 1}}, // 0 is the synthetic AttributesEntry
		{"orders.v1.OrderPaid.Payment.Card", []int{0, 2, 0}},
		{"orders.v1.OrderPaid.Payment.BankTransfer", []int{0, 2, 2}},
	} {
		if got := lookup(t, reg, tc.name).MessageIndexes(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: MessageIndexes() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLoad_reports_every_error_with_position(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string // DIR stands for the directory
	}{
		{
			name:  "syntax error",
			files: map[string]string{"a.proto": "syntax = \"proto3\";\npackage a.v1;\nmessage A {\n  string id = 1\n}\n"},
			want:  "DIR/a.proto:5:1: syntax error: expecting ';'",
		},
		{
			name:  "unknown type",
			files: map[string]string{"b/v1/b.proto": "syntax = \"proto3\";\npackage b.v1;\nmessage B {\n  Foo bar = 1;\n}\n"},
			want:  "DIR/b/v1/b.proto:4:3: field b.v1.B.bar: unknown type Foo",
		},
		{
			name:  "missing import",
			files: map[string]string{"c.proto": "syntax = \"proto3\";\npackage c.v1;\nimport \"missing/thing.proto\";\nmessage C {}\n"},
			want:  "DIR/c.proto:3:8: \"missing/thing.proto\" is not a well-known import and not in DIR",
		},
		{
			name: "unknown rule",
			files: map[string]string{"d.proto": "syntax = \"proto3\";\npackage d.v1;\nimport \"buf/validate/validate.proto\";\n" +
				"message D {\n  string id = 1 [(buf.validate.field).string.uuidd = true];\n}\n"},
			want: "DIR/d.proto:5:46: field d.v1.D.id: option (buf.validate.field).string.uuidd: field uuidd of buf.validate.StringRules does not exist",
		},
		{
			name: "two files, two errors",
			files: map[string]string{
				"e1.proto": "syntax = \"proto3\";\npackage e.v1;\nmessage E1 { Nope n = 1; }\n",
				"e2.proto": "syntax = \"proto3\";\npackage e.v1;\nmessage E2 { int32 x = 1; int32 y = 1; }\n",
			},
			want: "DIR/e1.proto:3:14: field e.v1.E1.n: unknown type Nope\n" +
				"DIR/e2.proto:3:37: message e.v1.E2: fields x and y both have the same tag 1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTree(t, tc.files)
			_, err := contract.Load(dir)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if got := strings.ReplaceAll(err.Error(), dir, "DIR"); got != tc.want {
				t.Fatalf("error:\n%s\nwant:\n%s", got, tc.want)
			}
			var withPos reporter.ErrorWithPos
			if !errors.As(err, &withPos) {
				t.Fatalf("error %T does not match reporter.ErrorWithPos", err)
			}
		})
	}
}

func TestLoad_rejects_bad_paths(t *testing.T) {
	empty := t.TempDir()
	garbage := filepath.Join(t.TempDir(), "set.binpb")
	if err := os.WriteFile(garbage, []byte("definitely not protobuf \xff\xff\xff"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(empty, "nope"), "no such file"},
		{empty, "no .proto files"},
		{garbage, "want a directory of .proto files or a binary FileDescriptorSet"},
	} {
		if _, err := contract.Load(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%s) = %v, want error containing %q", tc.path, err, tc.want)
		}
	}
}

// descriptorSet builds the FileDescriptorSet `buf build -o` would write for reg, with or
// without the imported well-known and validate files.
func descriptorSet(t *testing.T, reg *contract.Registry, withImports bool) string {
	t.Helper()
	set := new(descriptorpb.FileDescriptorSet)
	reg.Files().RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		p := fd.Path()
		if withImports || !(strings.HasPrefix(p, "google/") || strings.HasPrefix(p, "buf/")) {
			set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
		}
		return true
	})
	b, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "contracts.binpb")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad_descriptor_set(t *testing.T) {
	src := load(t)
	g, err := eventgen.New(src, eventgen.Options{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	for _, withImports := range []bool{true, false} {
		t.Run(map[bool]string{true: "with imports", false: "exclude imports"}[withImports], func(t *testing.T) {
			reg, err := contract.Load(descriptorSet(t, src, withImports))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(reg.Names(), src.Names()) {
				t.Fatalf("Names() = %v, want %v", reg.Names(), src.Names())
			}
			for _, name := range eventgen.Names() {
				c := lookup(t, reg, name)
				if !c.HasRules() {
					t.Errorf("%s lost its rules in the descriptor set", name)
				}
				dec := c.NewDecoder(contract.Confluent)
				valid, _ := g.Make(name, eventgen.Valid, contract.Confluent)
				invalid, _ := g.Make(name, eventgen.Invalid, contract.Confluent)
				for _, ev := range []eventgen.Event{valid, invalid} {
					m, err := dec.Decode(ev.Payload)
					if err != nil {
						t.Fatal(err)
					}
					err = c.Validate(m)
					var ve *contract.ValidationError
					switch {
					case ev.Kind == eventgen.Valid && err != nil:
						t.Errorf("%s: valid event: %v", name, err)
					case ev.Kind == eventgen.Invalid && (!errors.As(err, &ve) || !slices.Contains(ve.Rules(), ev.Rule)):
						t.Errorf("%s: invalid event: got %v, want %s", name, err, ev.Rule)
					}
				}
				dec.Release()
			}
		})
	}
}

func TestLoad_descriptor_set_missing_import(t *testing.T) {
	src := load(t)
	set := new(descriptorpb.FileDescriptorSet)
	fd, err := src.Files().FindFileByPath("auctions/v1/bid_placed.proto")
	if err != nil {
		t.Fatal(err)
	}
	set.File = append(set.File, protodesc.ToFileDescriptorProto(fd)) // without common/v1/money.proto
	b, _ := proto.Marshal(set)
	path := filepath.Join(t.TempDir(), "set.binpb")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = contract.Load(path)
	if err == nil || !strings.Contains(err.Error(), `auctions/v1/bid_placed.proto imports "common/v1/money.proto", which the descriptor set does not contain`) {
		t.Fatalf("got %v", err)
	}
}

func TestLookup_errors_suggest_names(t *testing.T) {
	reg := load(t)
	for _, tc := range []struct{ name, want string }{
		{"BidPlaced", `contract "BidPlaced" not found in ../contracts (did you mean "auctions.v1.BidPlaced"?)`},
		{"auctions.v1.BidPlace", `contract "auctions.v1.BidPlace" not found in ../contracts (did you mean "auctions.v1.BidPlaced"?)`},
		{"orders.v2.OrderPaid", `contract "orders.v2.OrderPaid" not found in ../contracts (did you mean "orders.v1.OrderPaid"?)`},
		{"orders.v1.OrderPaid.Method", `contract "orders.v1.OrderPaid.Method" in ../contracts is an enum, not a message`},
		{"auctions.v1.BidPlaced.amount", `contract "auctions.v1.BidPlaced.amount" in ../contracts is a field, not a message`},
		{"zzz", `contract "zzz" not found in ../contracts (declared: auctions.v1.BidPlaced, common.v1.Money,`},
		{"", `contract "" not found`},
	} {
		_, err := reg.Lookup(tc.name)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Lookup(%q) = %v, want prefix %q", tc.name, err, tc.want)
		}
	}
	a, b := lookup(t, reg, eventgen.BidPlaced), lookup(t, reg, "."+eventgen.BidPlaced)
	if a != b {
		t.Error("Lookup built the same contract twice")
	}
}

const rulesProto = `syntax = "proto3";
package r.v1;
import "buf/validate/validate.proto";
import "google/protobuf/timestamp.proto";

message NoRules { string id = 1; google.protobuf.Timestamp at = 2; Tree tree = 3; }
message Tree { string name = 1; repeated Tree children = 2; }
message NestedRules { Inner inner = 1; }
message Inner { string id = 1 [(buf.validate.field).string.uuid = true]; }
message MapRules { map<string, Inner> byKey = 1; }
message ListRules { repeated Inner items = 1; }
message MessageCEL {
  option (buf.validate.message).cel = {id: "m.x_positive", message: "x", expression: "this.x > 0"};
  int32 x = 1;
}
message OneofRules {
  oneof pick {
    option (buf.validate.oneof).required = true;
    string a = 1;
    string b = 2;
  }
}
`

func TestContract_HasRules(t *testing.T) {
	reg, err := contract.Load(writeTree(t, map[string]string{"r.proto": rulesProto}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"r.v1.NoRules", false},
		{"r.v1.Tree", false},
		{"r.v1.NestedRules", true},
		{"r.v1.Inner", true},
		{"r.v1.MapRules", true},
		{"r.v1.ListRules", true},
		{"r.v1.MessageCEL", true},
		{"r.v1.OneofRules", true},
	} {
		c := lookup(t, reg, tc.name)
		if got := c.HasRules(); got != tc.want {
			t.Errorf("%s: HasRules() = %v, want %v", tc.name, got, tc.want)
		}
		// An empty message violates every rule-bearing contract above except the nested
		// ones (unset submessages are not validated); without rules Validate is nil.
		err := c.Validate(dynamicpb.NewMessage(c.Descriptor()))
		if !tc.want && err != nil {
			t.Errorf("%s: Validate() = %v without rules", tc.name, err)
		}
	}
}

func TestLookup_reports_rules_that_do_not_compile(t *testing.T) {
	reg, err := contract.Load(writeTree(t, map[string]string{"bad.proto": `syntax = "proto3";
package bad.v1;
import "buf/validate/validate.proto";
message Bad {
  option (buf.validate.message).cel = {id: "bad.nope", expression: "this.nope > 0"};
  int32 x = 1;
}
`}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = reg.Lookup("bad.v1.Bad")
	if err == nil || !strings.Contains(err.Error(), "compile buf.validate rules of bad.v1.Bad") {
		t.Fatalf("Lookup = %v, want a rule compilation error", err)
	}
}

func TestRegistry_Types(t *testing.T) {
	reg := load(t)
	mt, err := reg.Types().FindMessageByName("auctions.v1.BidPlaced")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mt.New().Interface().(*dynamicpb.Message); !ok {
		t.Errorf("contract type is %T, want dynamicpb", mt.New().Interface())
	}
	ts, err := reg.Types().FindMessageByName("google.protobuf.Timestamp")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ts.New().Interface().(*timestamppb.Timestamp); !ok {
		t.Errorf("well-known type is %T, want *timestamppb.Timestamp", ts.New().Interface())
	}
	if _, err := reg.Types().FindEnumByName("orders.v1.OrderPaid.Method"); err != nil {
		t.Error(err)
	}
	if _, err := reg.Types().FindExtensionByName("buf.validate.field"); err != nil {
		t.Error(err)
	}
}
