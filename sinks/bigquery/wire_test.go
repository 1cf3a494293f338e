package bigquery

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"buf.build/go/hyperpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
)

// wireKindsProto is allKindsProto without its JSON columns (Struct, Value, ListValue), which
// only the decoding path writes.
func wireKindsProto() string {
	src := allKindsProto
	for _, f := range []string{"google.protobuf.Struct f_struct = 30;", "google.protobuf.Value f_value = 31;", "google.protobuf.ListValue f_list_value = 32;"} {
		src = strings.Replace(src, f, "", 1)
	}
	return strings.Replace(src, `import "google/protobuf/struct.proto";`, "", 1)
}

// wireKinds is allKinds without its JSON columns.
func wireKinds(t testing.TB) protoreflect.MessageDescriptor {
	return compileProto(t, "kinds.v1.AllKinds", map[string]string{"kinds/v1/kinds.proto": wireKindsProto()})
}

// hyperpbKinds is wireKinds with c_number an int32, so that hyperpb decodes it exactly
// (contract.HyperpbExact).
func hyperpbKinds(t testing.TB) protoreflect.MessageDescriptor {
	src := strings.Replace(wireKindsProto(), "int64 c_number = 49;", "int32 c_number = 49;", 1)
	md := compileProto(t, "kinds.v1.AllKinds", map[string]string{"kinds/v1/kinds.proto": src})
	if !contract.HyperpbExact(md) {
		t.Fatal("hyperpbKinds is not exact for hyperpb")
	}
	return md
}

// writerMessage returns a function parsing rows of l with its writer descriptor.
func writerMessage(t testing.TB, l *layout) func([]byte) *dynamicpb.Message {
	t.Helper()
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name: proto.String("row.proto"), Syntax: proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{l.writer},
	}, nil)
	if err != nil {
		t.Fatalf("writer descriptor: %v", err)
	}
	md := fd.Messages().Get(0)
	return func(row []byte) *dynamicpb.Message {
		t.Helper()
		m := dynamicpb.NewMessage(md)
		if err := proto.Unmarshal(row, m); err != nil {
			t.Fatalf("row does not parse with the writer descriptor: %v", err)
		}
		return m
	}
}

// sortMaps orders the key/value records of every map column of row (plan p), which
// appendRow writes in the map's iteration order.
func sortMaps(p *msgPlan, row protoreflect.Message) {
	fields := row.Descriptor().Fields()
	for _, fp := range p.fields {
		wf := fields.ByNumber(fp.num)
		if !row.Has(wf) {
			continue
		}
		v := row.Get(wf)
		switch {
		case fp.isMap:
			list := v.List()
			entries := make([]protoreflect.Value, list.Len())
			for i := range entries {
				e := list.Get(i)
				if fp.val != nil && fp.val.kind == kMessage {
					ef := e.Message().Descriptor().Fields().ByNumber(2)
					if e.Message().Has(ef) {
						sortMaps(fp.val.sub, e.Message().Get(ef).Message())
					}
				}
				entries[i] = e
			}
			key := func(e protoreflect.Value) []byte {
				b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(e.Message().Interface())
				return b
			}
			slices.SortFunc(entries, func(a, b protoreflect.Value) int { return bytes.Compare(key(a), key(b)) })
			for i, e := range entries {
				list.Set(i, e)
			}
		case fp.kind == kMessage && fp.list:
			for i := range v.List().Len() {
				sortMaps(fp.sub, v.List().Get(i).Message())
			}
		case fp.kind == kMessage:
			sortMaps(fp.sub, v.Message())
		}
	}
}

// wireCase checks that the row transcoded from body is the row appendRow writes for body
// decoded as a lane decodes it, error for error.
func wireCase(t *testing.T, l *layout, parse func([]byte) *dynamicpb.Message, tc *transcoder, body []byte) {
	t.Helper()
	if !parses(l.contract, body) {
		return // never reaches a sink: no lane finds it valid
	}
	// The message the lane hands over, and so the reference: protobuf-go's for a contract
	// hyperpb cannot decode exactly, else hyperpb's (which differs from protobuf-go's on some
	// payloads no encoder writes, e.g. a field again after one of the wrong wire type).
	var m protoreflect.Message
	name := "hyperpb"
	if ty := l.hyperType(); ty != nil {
		hm := hyperpb.NewMessage(ty)
		if !hyperpbParses(hm, body) {
			return // the lane's hyperpb rejects it (a tag over 32 bits, say): dead-lettered
		}
		m = hm
	} else {
		dm := dynamicpb.NewMessage(l.contract)
		if err := proto.Unmarshal(body, dm); err != nil {
			t.Fatal(err)
		}
		m, name = dm, "protobuf-go"
	}
	rec := &event.Record{Topic: "kinds", Partition: 2, Offset: 9, Timestamp: time.Unix(1_700_000_000, 5000), Value: body}
	got, gerr := l.appendWireRow(tc, nil, rec, body, 42)
	dec := *rec
	dec.Message = m
	want, werr := l.appendRow(nil, &dec, 42)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("body %x: error from a %s message %v, transcoding error %v", body, name, werr, gerr)
	}
	if werr != nil {
		return
	}
	wm, gm := parse(want), parse(got)
	sortMaps(l.root, wm)
	sortMaps(l.root, gm)
	if !proto.Equal(wm, gm) {
		t.Fatalf("body %x:\n %s:    %v\n transcoded: %v", body, name, wm, gm)
	}
}

func TestWire_rows_match_the_decoding_path(t *testing.T) {
	for _, c := range []struct {
		name string
		md   protoreflect.MessageDescriptor
		ev   string
	}{
		{"every_kind", wireKinds(t), "f_timestamp"},
		// The same with an int32 oneof member, which hyperpb decodes exactly, so that rows are
		// compared with hyperpb's messages too.
		{"every_kind_hyperpb", hyperpbKinds(t), "f_timestamp"},
		{"order_paid", compileProto(t, "bench.v1.OrderPaid", map[string]string{"bench/v1/order.proto": benchProto}), "paid_at"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := compile(c.md, c.ev)
			if err != nil {
				t.Fatal(err)
			}
			if !l.wire {
				t.Fatal("layout cannot be transcoded")
			}
			parse := writerMessage(t, l)
			rng := rand.New(rand.NewPCG(1, 2))
			var tc transcoder
			canonical := 0
			for i := range 3000 {
				m := randomMessage(rng, c.md, 0)
				body, err := proto.MarshalOptions{Deterministic: i%2 == 0}.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := l.appendWireRow(&tc, nil, &event.Record{}, body, 1); err == nil {
					canonical++
				}
				wireCase(t, l, parse, &tc, body)
				// The same events in forms a parser merges: fields again, map entries again,
				// a oneof's other member, unknown fields.
				other, _ := proto.Marshal(randomMessage(rng, c.md, 0))
				wireCase(t, l, parse, &tc, append(slices.Clip(body), other...))
				wireCase(t, l, parse, &tc, append(slices.Clip(body), body...))
				wireCase(t, l, parse, &tc, protowire.AppendBytes(protowire.AppendTag(slices.Clip(body), 999, protowire.BytesType), []byte("newer")))
				if len(body) > 3 {
					wireCase(t, l, parse, &tc, body[:len(body)-3]) // truncated: both fail, or both parse
				}
			}
			if canonical < 2900 {
				t.Fatalf("only %d of 3000 marshaled events were transcoded without decoding", canonical)
			}
		})
	}
}

// TestWire_timestamp_out_of_range: a TIMESTAMP BigQuery cannot hold fails the row in both
// paths, naming the field.
func TestWire_timestamp_out_of_range(t *testing.T) {
	md := wireKinds(t)
	l, err := compile(md, "f_timestamp")
	if err != nil {
		t.Fatal(err)
	}
	m := dynamicpb.NewMessage(md)
	ts := dynamicpb.NewMessage(md.Fields().ByName("f_timestamp").Message())
	ts.Set(ts.Descriptor().Fields().ByNumber(1), protoreflect.ValueOfInt64(-70_000_000_000))
	m.Set(md.Fields().ByName("f_timestamp"), protoreflect.ValueOfMessage(ts))
	body, _ := proto.Marshal(m)
	var tc transcoder
	if _, err := l.appendWireRow(&tc, nil, &event.Record{}, body, 1); err == nil || !strings.Contains(err.Error(), "f_timestamp") {
		t.Fatalf("transcoding error %v, want one about f_timestamp", err)
	}
}

// TestWire_sink_writes_payloads: a sink of a Raw or Confluent pipeline writes rows from
// payloads; a JSON pipeline's, or one whose contract has a JSON column, from messages.
func TestWire_sink_writes_payloads(t *testing.T) {
	md := wireKinds(t)
	for _, c := range []struct {
		md   protoreflect.MessageDescriptor
		in   contract.Encoding
		want bool
	}{
		{md, contract.Raw, true}, {md, contract.Confluent, true}, {md, contract.JSON, false},
		{md, 0, false}, {allKinds(t), contract.Raw, false},
	} {
		s, err := New(Config{Project: "p", Dataset: "d"}, Options{Input: c.in}, sinks.Deps{Schema: c.md})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.WritesPayload(); got != c.want {
			t.Errorf("%s input %d: WritesPayload %v, want %v", c.md.FullName(), c.in, got, c.want)
		}
	}
	// A Confluent payload's frame is stripped; a record of another contract fails.
	s, _ := New(Config{Project: "p", Dataset: "d"}, Options{Input: contract.Confluent}, sinks.Deps{Schema: md})
	rng := rand.New(rand.NewPCG(3, 4))
	m := randomMessage(rng, md, 0)
	for _, err := s.lay.appendRow(nil, &event.Record{Message: m}, 0); err != nil; _, err = s.lay.appendRow(nil, &event.Record{Message: m}, 0) {
		m = randomMessage(rng, md, 0) // one with a row
	}
	body, _ := proto.Marshal(m)
	framed := append([]byte{0, 0, 0, 0, 7, 0}, body...)
	b := s.encode([]*event.Record{
		{Topic: "kinds", Value: framed, Contract: string(md.FullName())},
		{Topic: "kinds", Value: framed, Contract: "other.v1.Event"},
		{Topic: "kinds", Value: body, Contract: string(md.FullName())}, // no frame
	})
	if len(b.rows) != 1 || len(b.failed) != 2 || b.failed[1] == nil || b.failed[2] == nil {
		t.Fatalf("rows %d, failed %v; want the framed record's row and two failures", len(b.rows), b.failed)
	}
	l := s.lay
	dec := &event.Record{Topic: "kinds", Message: m, Contract: string(md.FullName())}
	want, err := l.appendRow(nil, dec, 0)
	if err != nil {
		t.Fatal(err)
	}
	parse := writerMessage(t, l)
	got, wantRow := parse(b.rows[0]), parse(want)
	for _, meta := range []protowire.Number{l.meta[3], l.meta[4]} { // both the landing time here
		f := got.Descriptor().Fields().ByNumber(meta)
		got.Clear(f)
		wantRow.Clear(f)
	}
	sortMaps(l.root, got)
	sortMaps(l.root, wantRow)
	if !proto.Equal(got, wantRow) {
		t.Fatalf("framed payload row:\n got %v\nwant %v", got, wantRow)
	}
}

// parses reports whether protobuf-go parses body as md: the payloads a lane can find valid
// (contract.Decoder checks the wire structure first, since hyperpb v0.1.3 reads past the end
// of some malformed groups). protobuf-go panics on some map entries hyperpb accepts.
func parses(md protoreflect.MessageDescriptor, body []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return proto.Unmarshal(body, dynamicpb.NewMessage(md)) == nil
}

// hyperpbParses reports whether hyperpb parses body into m. hyperpb v0.1.3 panics on some
// payloads protobuf-go parses (a nil dereference in its parser); a lane's handler recovers
// and dead-letters those, so they never reach a sink either.
func hyperpbParses(m *hyperpb.Message, body []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return m.Unmarshal(body) == nil
}

// randomMessage fills about half the fields of md with random values.
func randomMessage(rng *rand.Rand, md protoreflect.MessageDescriptor, depth int) *dynamicpb.Message {
	m := dynamicpb.NewMessage(md)
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if rng.IntN(2) == 0 || (depth > 2 && fd.Message() != nil) {
			continue
		}
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for range rng.IntN(4) {
				mp.Set(randomValue(rng, fd.MapKey(), depth).MapKey(), randomValue(rng, fd.MapValue(), depth))
			}
		case fd.IsList():
			list := m.Mutable(fd).List()
			for range rng.IntN(4) {
				list.Append(randomValue(rng, fd, depth))
			}
		default:
			m.Set(fd, randomValue(rng, fd, depth))
		}
	}
	return m
}

func randomValue(rng *rand.Rand, fd protoreflect.FieldDescriptor, depth int) protoreflect.Value {
	big := func() uint64 {
		switch rng.IntN(4) {
		case 0:
			return 0
		case 1:
			return uint64(rng.IntN(300))
		case 2:
			return math.MaxUint64 - uint64(rng.IntN(3))
		}
		return rng.Uint64()
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(rng.IntN(2) == 0)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(big()))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(big()))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(big()))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(big())
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(rng.NormFloat64()))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(rng.NormFloat64() * 1e6)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString([]string{"", "a", "héllo", fmt.Sprint(rng.IntN(1000))}[rng.IntN(4)])
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(fmt.Sprint(rng.Uint32()))[:rng.IntN(5)])
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(rng.IntN(4))) // 3 is unknown
	}
	md := fd.Message()
	switch md.FullName() {
	case "google.protobuf.Timestamp", "google.protobuf.Duration":
		m := dynamicpb.NewMessage(md)
		sec := rng.Int64N(4_000_000_000) - 1_000_000_000
		if rng.IntN(50) == 0 {
			sec = -70_000_000_000 // outside BigQuery's range
		}
		m.Set(md.Fields().ByNumber(1), protoreflect.ValueOfInt64(sec))
		m.Set(md.Fields().ByNumber(2), protoreflect.ValueOfInt32(rng.Int32N(1_000_000_000)))
		return protoreflect.ValueOfMessage(m)
	}
	return protoreflect.ValueOfMessage(randomMessage(rng, md, depth+1))
}

// FuzzWireRow: for any payload protobuf-go parses as the contract, the transcoded row is the
// row of the decoded message (or both fail); nothing panics on the rest.
func FuzzWireRow(f *testing.F) {
	md := hyperpbKinds(f)
	l, err := compile(md, "f_timestamp")
	if err != nil {
		f.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		body, _ := proto.Marshal(randomMessage(rng, md, 0))
		f.Add(body)
		other, _ := proto.Marshal(randomMessage(rng, md, 0))
		f.Add(append(slices.Clip(body), other...))
	}
	f.Add([]byte{})
	f.Add([]byte{0x9a, 0x01, 0x00, 0x9a, 0x01, 0x02, 0x08, 0x01}) // f_timestamp twice
	var parse func([]byte) *dynamicpb.Message
	f.Fuzz(func(t *testing.T, body []byte) {
		if parse == nil {
			parse = writerMessage(t, l)
		}
		var tc transcoder
		wireCase(t, l, parse, &tc, body)
	})
}
