package transforms_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/transforms"
)

// applyCase is one table case of testdata/cases/*.yaml.
type applyCase struct {
	Name     string    `yaml:"name"`
	Contract string    `yaml:"contract"`
	Route    yaml.Node `yaml:"route"` // the route's keys besides sink: transforms, pii, pii_reason
	Meta     struct {
		Topic     string            `yaml:"topic"`
		Partition int32             `yaml:"partition"`
		Offset    int64             `yaml:"offset"`
		Key       string            `yaml:"key"`
		Headers   map[string]string `yaml:"headers"`
		Timestamp time.Time         `yaml:"timestamp"`
	} `yaml:"meta"`
	Input  yaml.Node   `yaml:"input"`  // the event, as protojson
	Output []yaml.Node `yaml:"output"` // every result, as protojson with proto field names
	// Schema, when given, lists the output fields as "name type" (see fieldList).
	Schema []string `yaml:"schema"`
	// Error, when given, is the exact text of Apply's error.
	Error string `yaml:"error"`
	// Identity: the chain passes events through untouched.
	Identity bool `yaml:"identity"`
}

// TestApply runs the cases in testdata/cases: each compiles a route's transforms (written as
// YAML, loaded through the config loader), applies them to an input event given as JSON, both
// as a dynamicpb message and as a read-only hyperpb message, and compares the results.
// Strings "HMAC(x)" in expected outputs stand for the HASH of x under the test key.
func TestApply(t *testing.T) {
	files, err := filepath.Glob("testdata/cases/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases in testdata/cases: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var cases []applyCase
		if err := yaml.Unmarshal(data, &cases); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, tc := range cases {
			t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml")+"/"+tc.Name, func(t *testing.T) {
				runCase(t, tc)
			})
		}
	}
}

func runCase(t *testing.T, tc applyCase) {
	route := ""
	if tc.Route.Kind != 0 {
		b, err := yaml.Marshal(&tc.Route)
		if err != nil {
			t.Fatal(err)
		}
		route = string(b)
	}
	cfg := configWith(t, tc.Contract, route)
	chain, errs := compile(t, cfg)
	if errs != nil {
		t.Fatalf("compile: %v", errs)
	}
	if chain.Identity() != tc.Identity {
		t.Errorf("Identity() = %v, want %v", chain.Identity(), tc.Identity)
	}
	if tc.Schema != nil {
		if got := fieldList(chain.Schema()); !slices.Equal(got, tc.Schema) {
			t.Errorf("schema:\n got  %q\n want %q", got, tc.Schema)
		}
	}
	var input any
	if err := tc.Input.Decode(&input); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	c := lookup(t, tc.Contract)
	dyn, hyper := decodeJSON(t, c, js)
	rec := &event.Record{Topic: tc.Meta.Topic, Partition: tc.Meta.Partition, Offset: tc.Meta.Offset, Key: []byte(tc.Meta.Key), Timestamp: tc.Meta.Timestamp}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range tc.Meta.Headers {
			if !yield(k) {
				return
			}
		}
	}) {
		rec.Headers = append(rec.Headers, event.Header{Key: k, Value: []byte(tc.Meta.Headers[k])})
	}
	want := make([]any, len(tc.Output))
	for i, n := range tc.Output {
		var v any
		if err := n.Decode(&v); err != nil {
			t.Fatal(err)
		}
		want[i] = canonical(t, chain.Schema(), normalize(t, hmacs(v)))
	}
	for _, in := range []struct {
		name string
		msg  protoreflect.Message
	}{{"dynamicpb", dyn}, {"hyperpb", hyper}} {
		before := dynamicpb.NewMessage(in.msg.Descriptor())
		proto.Merge(before, in.msg.Interface())
		prefix := []protoreflect.Message{nil} // Apply appends after what dst holds
		out, err := chain.Apply(in.msg, rec, prefix)
		if tc.Error != "" {
			if err == nil || err.Error() != tc.Error {
				t.Errorf("%s: Apply error = %v, want %q", in.name, err, tc.Error)
			}
			if len(out) != 1 {
				t.Errorf("%s: Apply returned %d messages with an error, want dst unchanged", in.name, len(out)-1)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: Apply: %v", in.name, err)
		}
		out = out[1:]
		got := make([]any, len(out))
		for i, m := range out {
			if m.Descriptor() != chain.Schema() {
				t.Errorf("%s: result %d is a %s, want the chain's schema %s", in.name, i, m.Descriptor().FullName(), chain.Schema().FullName())
			}
			b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m.Interface())
			if err != nil {
				t.Fatalf("%s: result %d does not encode as JSON: %v", in.name, i, err)
			}
			if _, err := proto.Marshal(m.Interface()); err != nil {
				t.Fatalf("%s: result %d does not encode: %v", in.name, i, err)
			}
			got[i] = normalize(t, mustJSON(t, b))
		}
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.MarshalIndent(got, "", "  ")
			wj, _ := json.MarshalIndent(want, "", "  ")
			t.Errorf("%s: results differ\n got  %s\n want %s", in.name, gj, wj)
		}
		if !proto.Equal(before, in.msg.Interface()) {
			t.Errorf("%s: Apply modified its input", in.name)
		}
	}
}

func mustJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// normalize round-trips v through JSON so YAML and protojson values compare equal.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, b)
}

// canonical re-encodes an expected result through the output schema, so it compares with
// protojson's rendering (int64 as strings, enum names...) and must fit the schema.
func canonical(t *testing.T, md protoreflect.MessageDescriptor, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	m := dynamicpb.NewMessage(md)
	if err := (protojson.UnmarshalOptions{Resolver: registry(t).Types()}).Unmarshal(b, m); err != nil {
		t.Fatalf("expected output is not a %s: %v\n%s", md.FullName(), err, b)
	}
	out, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, out)
}

// hmacs replaces "HMAC(x)" strings with the HASH of x under the test key.
func hmacs(v any) any {
	switch x := v.(type) {
	case string:
		if strings.HasPrefix(x, "HMAC(") && strings.HasSuffix(x, ")") {
			return transforms.Hash(testKey, x[5:len(x)-1])
		}
	case map[string]any:
		for k, e := range x {
			x[k] = hmacs(e)
		}
	case []any:
		for i, e := range x {
			x[i] = hmacs(e)
		}
	}
	return v
}
