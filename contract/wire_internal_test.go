package contract

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// wireSamples are valid encodings of a FileDescriptorProto (nested messages, repeated
// fields, varints of every length) and a few hand-made edge cases.
func wireSamples(t testing.TB) (*wireShape, [][]byte) {
	fdp := protodesc.ToFileDescriptorProto(descriptorpb.File_google_protobuf_descriptor_proto)
	big, err := proto.Marshal(fdp)
	if err != nil {
		t.Fatal(err)
	}
	small, err := proto.Marshal(protodesc.ToFileDescriptorProto(structpb.File_google_protobuf_struct_proto))
	if err != nil {
		t.Fatal(err)
	}
	md := fdp.ProtoReflect().Descriptor()
	shape := newWireShape(md, make(map[protoreflect.FullName]*wireShape))
	var tenByte []byte
	tenByte = protowire.AppendTag(tenByte, 1, protowire.VarintType)
	tenByte = protowire.AppendVarint(tenByte, 1<<63)
	bigNum := protowire.AppendVarint(nil, uint64(1)<<40|uint64(protowire.VarintType)) // field number beyond int32
	hugeNum := protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3)
	return shape, [][]byte{
		big, small, {}, {0x00}, {0x08}, {0x08, 0x80}, {0x0d, 1, 2, 3}, {0x09, 1, 2, 3, 4, 5, 6, 7},
		{0x12, 0x05, 'a'}, {0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		{0x0b, 0x0c}, {0x0b}, {0x0c}, {0x0e}, {0x0f}, tenByte, append(bigNum, 0x01), append(hugeNum, 0x01),
		{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
	}
}

// checkWireProtowire is checkWire with every read through protowire: the reference the
// inline reads must agree with.
func checkWireProtowire(b []byte, s *wireShape, depth int) error {
	if depth > maxWireDepth {
		return errWireDepth
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return wireError(n)
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			_, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			_, n = protowire.ConsumeFixed32(b)
		case protowire.Fixed64Type:
			_, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			if n >= 0 && s != nil {
				if sub := s.sub(num); sub != nil {
					if err := checkWireProtowire(v, sub, depth+1); err != nil {
						return err
					}
				}
			}
		case protowire.StartGroupType:
			_, n = protowire.ConsumeGroup(num, b)
		case protowire.EndGroupType:
			return errWireEndGroup
		default:
			return fmt.Errorf("invalid wire format: field %d has reserved wire type %d", num, typ)
		}
		if n < 0 {
			return wireError(n)
		}
		b = b[n:]
	}
	return nil
}

func sameVerdict(t *testing.T, shape *wireShape, b []byte) {
	t.Helper()
	got, want := checkWire(b, shape, 0), checkWireProtowire(b, shape, 0)
	if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
		t.Fatalf("checkWire(%x) = %v, protowire's walk says %v", b, got, want)
	}
}

// TestCheckWire_matches_protowire holds the inline reads to protowire's over valid
// encodings, edge cases and 20,000 random mutations of them.
func TestCheckWire_matches_protowire(t *testing.T) {
	shape, samples := wireSamples(t)
	if err := checkWire(samples[0], shape, 0); err != nil {
		t.Fatalf("a valid FileDescriptorProto: %v", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rejected := 0
	for _, b := range samples {
		sameVerdict(t, shape, b)
	}
	for range 20000 {
		b := append([]byte(nil), samples[rng.IntN(len(samples))]...)
		for range 1 + rng.IntN(4) {
			if len(b) == 0 {
				b = append(b, byte(rng.Uint32()))
				continue
			}
			switch i := rng.IntN(len(b)); rng.IntN(4) {
			case 0:
				b[i] = byte(rng.Uint32())
			case 1:
				b[i] ^= 0x80
			case 2:
				b = b[:i]
			default:
				b = append(b[:i], append([]byte{byte(rng.Uint32())}, b[i:]...)...)
			}
		}
		if checkWire(b, shape, 0) != nil {
			rejected++
		}
		sameVerdict(t, shape, b)
	}
	if rejected < 1000 || rejected > 19000 {
		t.Errorf("%d of 20000 mutations rejected: the mutations do not exercise both verdicts", rejected)
	}
}

// FuzzCheckWire: go test ./contract -run '^$' -fuzz FuzzCheckWire -fuzztime 60s
func FuzzCheckWire(f *testing.F) {
	shape, samples := wireSamples(f)
	for _, b := range samples {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameVerdict(t, shape, b) })
}

func BenchmarkCheckWire(b *testing.B) {
	shape, samples := wireSamples(b)
	for _, bc := range []struct {
		name string
		fn   func([]byte, *wireShape, int) error
	}{{"inline", checkWire}, {"protowire", checkWireProtowire}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(samples[0])))
			for b.Loop() {
				if err := bc.fn(samples[0], shape, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
