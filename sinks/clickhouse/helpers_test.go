package clickhouse

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"buf.build/go/hyperpb"
	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
)

// compile compiles testdata/<file> on its own and returns message name from it.
func compile(t testing.TB, file, name string) protoreflect.MessageDescriptor {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(map[string]string{file: string(src)}),
	})}
	files, err := c.Compile(context.Background(), file)
	if err != nil {
		t.Fatalf("compile %s: %v", file, err)
	}
	md := files[0].FindDescriptorByName(protoreflect.FullName(name))
	if md == nil {
		t.Fatalf("%s has no message %s", file, name)
	}
	return md.(protoreflect.MessageDescriptor)
}

// fromJSON builds a dynamic message of md from protojson.
func fromJSON(t testing.TB, md protoreflect.MessageDescriptor, js string) *dynamicpb.Message {
	t.Helper()
	m := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal([]byte(js), m); err != nil {
		t.Fatalf("decode %s from JSON: %v", md.FullName(), err)
	}
	return m
}

var hyperTypes sync.Map // protoreflect.MessageDescriptor -> *hyperpb.MessageType

// asHyper re-decodes m as a hyperpb message (read-only, as the engine's fast path hands them).
func asHyper(t testing.TB, m proto.Message) protoreflect.Message {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	md := m.ProtoReflect().Descriptor()
	ty, ok := hyperTypes.Load(md)
	if !ok {
		ty, _ = hyperTypes.LoadOrStore(md, hyperpb.CompileMessageDescriptor(md))
	}
	hm := hyperpb.NewMessage(ty.(*hyperpb.MessageType))
	if err := proto.Unmarshal(b, hm); err != nil {
		t.Fatalf("decode as hyperpb: %v", err)
	}
	return hm.ProtoReflect()
}

// record wraps a message as the engine would.
func record(topic string, partition int32, offset int64, ts time.Time, m protoreflect.Message) *event.Record {
	value, _ := proto.Marshal(m.Interface())
	return &event.Record{
		Topic:     topic,
		Partition: partition,
		Offset:    offset,
		Timestamp: ts,
		Value:     value,
		Message:   m,
		Contract:  string(m.Descriptor().FullName()),
	}
}

func testDeps(t testing.TB, md protoreflect.MessageDescriptor) sinks.Deps {
	return sinks.Deps{Pipeline: "test", Sink: "olap", Schema: md, Logger: testLogger(t)}
}

func write(t testing.TB, s *Sink, recs ...*event.Record) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.Write(ctx, recs)
}

// readColumn reads one column of a table in offset order, one TSV cell per row.
func readColumn(t testing.TB, table, expr string) []string {
	t.Helper()
	var out []string
	for _, r := range server.Query(t, "SELECT "+expr+" FROM default."+table+" ORDER BY _topic, _partition, _offset") {
		out = append(out, r[0])
	}
	return out
}

func oneLineSQL(s string) string { return strings.Join(strings.Fields(s), " ") }
