package transforms_test

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/transforms"
)

// testKey is the HMAC key of the tests' HASH fields.
var testKey = []byte("test-hash-key")

// testNow is the ingestion time the tests' chains see.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

var (
	regOnce sync.Once
	reg     *contract.Registry
	regErr  error
)

// registry loads, once, the repository's sample contracts together with the test contracts
// in testdata/contracts (test.v1.*), compiled from one directory as the engine would.
func registry(t testing.TB) *contract.Registry {
	t.Helper()
	regOnce.Do(func() {
		var dir string
		if dir, regErr = os.MkdirTemp("", "transforms-contracts-"); regErr != nil {
			return
		}
		defer os.RemoveAll(dir)
		for _, src := range []string{"../contracts", "testdata/contracts"} {
			if regErr = os.CopyFS(dir, os.DirFS(src)); regErr != nil {
				return
			}
		}
		reg, regErr = contract.Load(dir)
	})
	if regErr != nil {
		t.Fatal(regErr)
	}
	return reg
}

func lookup(t testing.TB, name string) *contract.Contract {
	t.Helper()
	c, err := registry(t).Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// configWith wraps route (YAML mapping lines, without sink) in a complete configuration whose
// one pipeline decodes contract, and loads it.
func configWith(t testing.TB, contract, route string) *config.Config {
	t.Helper()
	var sb strings.Builder
	sb.WriteString(`kafka: {brokers: ["localhost:9092"]}
pii: {hash_key: test-hash-key}
pipelines:
  - name: bids
    owner: {team: auctions, contact: "#auctions"}
    source: {topics: [in]}
    contract: {message: ` + contract + `}
    sinks: [{name: out, kafka: {topic: out}}]
    dead_letter: {topic: dlq}
    routes:
      - sink: out
`)
	for _, l := range strings.Split(strings.TrimRight(route, "\n"), "\n") {
		sb.WriteString("        " + l + "\n")
	}
	cfg, err := config.Parse("case.yaml", []byte(sb.String()))
	if err != nil {
		t.Fatalf("configuration does not load: %v\n%s", err, sb.String())
	}
	return cfg
}

// compile compiles the first route of cfg against its contract.
func compile(t testing.TB, cfg *config.Config) (*transforms.Chain, config.Errors) {
	t.Helper()
	p := cfg.Pipelines[0]
	c := lookup(t, p.Contract.Message)
	key, err := transforms.HashKey(cfg.PII)
	if err != nil {
		t.Fatal(err)
	}
	return transforms.Compile(p.Routes[0], c.Descriptor(), transforms.Options{Pipeline: p.Name, HashKey: key, Now: func() time.Time { return testNow }}, cfg.Pos, p.Path+".routes[0]")
}

// decodeJSON reads a contract event from protojson, both as a dynamicpb message and, through
// the binary decoder, as the read-only hyperpb message the engine hands to chains.
func decodeJSON(t testing.TB, c *contract.Contract, js []byte) (dynamic, hyper protoreflect.Message) {
	t.Helper()
	m := c.New()
	if err := (protojson.UnmarshalOptions{Resolver: registry(t).Types()}).Unmarshal(js, m); err != nil {
		t.Fatalf("input is not a %s: %v\n%s", c.Name(), err, js)
	}
	raw, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.NewDecoder(contract.Raw).Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return m, h
}

// fieldList describes a message type as "name type" lines, e.g. "amount_units int64",
// "occurred_at google.protobuf.Timestamp", "items repeated orders.v1.OrderPaid.LineItem".
func fieldList(md protoreflect.MessageDescriptor) []string {
	var out []string
	fields := md.Fields()
	for i := range fields.Len() {
		out = append(out, string(fields.Get(i).Name())+" "+typeName(fields.Get(i)))
	}
	return out
}

func typeName(fd protoreflect.FieldDescriptor) string {
	elem := func(fd protoreflect.FieldDescriptor) string {
		switch {
		case fd.Message() != nil:
			return string(fd.Message().FullName())
		case fd.Enum() != nil:
			return string(fd.Enum().FullName())
		}
		return fd.Kind().String()
	}
	switch {
	case fd.IsMap():
		return "map<" + elem(fd.MapKey()) + ", " + elem(fd.MapValue()) + ">"
	case fd.IsList():
		return "repeated " + elem(fd)
	case fd.HasPresence() && fd.Message() == nil:
		return "optional " + elem(fd)
	}
	return elem(fd)
}
