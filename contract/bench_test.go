package contract_test

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
)

// benchBatch mirrors the engine: decode a batch, then release it.
const benchBatch = 1000

// BenchmarkDecodeValidate decodes (and optionally validates) BidPlaced events of about
// 200 bytes, comparing the hyperpb Decoder with plain dynamicpb unmarshaling. The
// confluent/ cases decode the same events in Confluent frames, whose header check must
// stay at zero allocations.
//
//	go test ./contract -run '^$' -bench DecodeValidate -benchmem
func BenchmarkDecodeValidate(b *testing.B) {
	reg := load(b)
	c, err := reg.Lookup(eventgen.BidPlaced)
	if err != nil {
		b.Fatal(err)
	}
	g, err := eventgen.New(reg, eventgen.Options{Seed: 3})
	if err != nil {
		b.Fatal(err)
	}
	payloads := make([][]byte, benchBatch)
	framed := make([][]byte, benchBatch)
	var size int
	for i := range payloads {
		ev, err := g.Make(eventgen.BidPlaced, eventgen.Valid, contract.Raw)
		if err != nil {
			b.Fatal(err)
		}
		payloads[i] = ev.Payload
		framed[i] = contract.FrameConfluent(nil, 7, c.MessageIndexes(), ev.Payload)
		size += len(ev.Payload)
	}
	avg := int64(size / len(payloads))

	b.Run("confluent/hyperpb/decode", func(b *testing.B) {
		dec := c.NewDecoder(contract.Confluent)
		benchFramed(b, dec, framed, avg)
	})
	b.Run("confluent/hyperpb/decode+schema_ids", func(b *testing.B) {
		dec := c.NewDecoder(contract.Confluent).CheckSchemas(contract.NewSchemas([]uint32{5, 6, 7}, nil))
		benchFramed(b, dec, framed, avg)
	})

	for _, validate := range []bool{false, true} {
		name := "decode"
		if validate {
			name = "decode+validate"
		}
		b.Run("hyperpb/"+name, func(b *testing.B) {
			dec := c.NewDecoder(contract.Raw)
			b.SetBytes(avg)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				m, err := dec.Decode(payloads[i])
				if err != nil {
					b.Fatal(err)
				}
				if validate {
					if err := c.Validate(m); err != nil {
						b.Fatal(err)
					}
				}
				if i++; i == len(payloads) {
					dec.Release()
					i = 0
				}
			}
			b.ReportMetric(float64(avg), "payload_bytes")
		})
		b.Run("dynamicpb/"+name, func(b *testing.B) {
			b.SetBytes(avg)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				m := dynamicpb.NewMessage(c.Descriptor())
				if err := proto.Unmarshal(payloads[i], m); err != nil {
					b.Fatal(err)
				}
				if validate {
					if err := c.Validate(m); err != nil {
						b.Fatal(err)
					}
				}
				if i++; i == len(payloads) {
					i = 0
				}
			}
			b.ReportMetric(float64(avg), "payload_bytes")
		})
	}
}

func benchFramed(b *testing.B, dec *contract.Decoder, framed [][]byte, avg int64) {
	b.SetBytes(avg)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := dec.Decode(framed[i]); err != nil {
			b.Fatal(err)
		}
		if i++; i == len(framed) {
			dec.Release()
			i = 0
		}
	}
}

// BenchmarkEncodeJSON encodes decoded BidPlaced events as protobuf JSON with the contract's
// compiled encoder and with protojson.Marshal.
//
//	go test ./contract -run '^$' -bench EncodeJSON -benchmem
func BenchmarkEncodeJSON(b *testing.B) {
	reg := load(b)
	c := lookup(b, reg, eventgen.BidPlaced)
	g, err := eventgen.New(reg, eventgen.Options{Seed: 3})
	if err != nil {
		b.Fatal(err)
	}
	dec := c.NewDecoder(contract.Raw)
	msgs := make([]protoreflect.Message, benchBatch)
	for i := range msgs {
		ev, err := g.Make(eventgen.BidPlaced, eventgen.Valid, contract.Raw)
		if err != nil {
			b.Fatal(err)
		}
		if msgs[i], err = dec.Decode(ev.Payload); err != nil {
			b.Fatal(err)
		}
	}
	enc, err := c.Encoder(contract.JSON, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("compiled", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := enc.Encode(msgs[i%len(msgs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("protojson", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := protojson.Marshal(msgs[i%len(msgs)].Interface()); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
