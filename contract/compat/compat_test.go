package compat_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/compat"
)

func load(t *testing.T, src string) *contract.Registry {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "x/v1/m.proto")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("syntax = \"proto3\";\npackage x.v1;\n"+src), 0o644); err != nil {
		t.Fatal(err)
	}
	reg, err := contract.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// render is one line per change: "line:col KIND wire json".
func render(cs []compat.Change) string {
	var b strings.Builder
	for _, c := range cs {
		flags := ""
		if c.Wire {
			flags += " wire"
		}
		if c.JSON {
			flags += " json"
		}
		b.WriteString(strings.TrimPrefix(c.Position(), "x/v1/m.proto:") + " " + string(c.Kind) + flags + "\n")
	}
	return b.String()
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"int32 to int64 keeps the wire", "message M { int32 a = 1; }", "message M { int64 a = 1; }", "3:13 FIELD_TYPE_CHANGED json\n"},
		{"string to bytes keeps the wire", "message M { string a = 1; }", "message M { bytes a = 1; }", "3:13 FIELD_TYPE_CHANGED json\n"},
		{"int32 to string breaks both", "message M { int32 a = 1; }", "message M { string a = 1; }", "3:13 FIELD_TYPE_CHANGED wire json\n"},
		{"singular to repeated", "message M { int32 a = 1; }", "message M { repeated int32 a = 1; }", "3:13 FIELD_CARDINALITY_CHANGED wire json\n"},
		{"singular to optional is compatible", "message M { int32 a = 1; }", "message M { optional int32 a = 1; }", "3:13 FIELD_CARDINALITY_CHANGED\n"},
		{"renamed field breaks JSON", "message M { int32 a = 1; }", "message M { int32 b = 1; }", "3:13 FIELD_JSON_NAME_CHANGED json\n"},
		{"renamed enum value breaks JSON", "enum E { E_UNSPECIFIED = 0; E_A = 1; }\nmessage M { E e = 1; }", "enum E { E_UNSPECIFIED = 0; E_B = 1; }\nmessage M { E e = 1; }", "3:29 ENUM_VALUE_REMOVED json\n"},
		{"reserved enum value only breaks JSON", "enum E { E_UNSPECIFIED = 0; E_A = 1; }\nmessage M { E e = 1; }", "enum E { E_UNSPECIFIED = 0; reserved 1; }\nmessage M { E e = 1; }", "3:1 ENUM_VALUE_REMOVED json\n"},
		{"nested message field in a map value", "message M { map<string, N> n = 1; }\nmessage N { int32 a = 1; }", "message M { map<string, N> n = 1; }\nmessage N { string a = 1; }", "4:13 FIELD_TYPE_CHANGED wire json\n"},
		{"unchanged", "message M { int32 a = 1; }", "message M { int32 a = 1; }", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := render(compat.Compare(load(t, tc.old).Files(), load(t, tc.new).Files(), []string{"x.v1.M"}))
			if got != tc.want {
				t.Fatalf("changes:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestCompare_removed_message(t *testing.T) {
	cs := compat.Compare(load(t, "message M { int32 a = 1; }").Files(), load(t, "message N { int32 a = 1; }").Files(), []string{"x.v1.M"})
	if len(cs) != 1 || cs[0].Kind != compat.MessageRemoved || !cs[0].Breaking() {
		t.Fatalf("changes: %+v", cs)
	}
}
