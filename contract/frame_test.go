package contract_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/contract"
)

// frameDir holds test.v1: Other [0], BidPlaced [1] (nested Lot [1,0], Audit [1,1], Note
// [1,2], Flag [1,3]) and Closed [2].
const frameDir = "testdata/frame"

func loadFrame(t testing.TB) *contract.Registry {
	t.Helper()
	reg, err := contract.Load(frameDir)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// bidBody is a test.v1.BidPlaced{bid_id: "b-1", amount_cents: 5} body.
var bidBody = []byte{0x0a, 0x03, 'b', '-', '1', 0x10, 0x05}

func frame(id uint32, header ...byte) []byte {
	b := []byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
	return append(b, header...)
}

// decodeWant decodes payload with dec and checks the outcome: wantErr "" means accepted as
// the decoder's contract, else a framing DecodeError with exactly that message.
func decodeWant(t *testing.T, dec *contract.Decoder, payload []byte, wantErr string) protoreflect.Message {
	t.Helper()
	defer dec.Release()
	msg, err := dec.Decode(payload)
	if wantErr == "" {
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if got := string(msg.Descriptor().FullName()); got != dec.Contract().Name() {
			t.Fatalf("decoded a %s, want %s", got, dec.Contract().Name())
		}
		return msg
	}
	var de *contract.DecodeError
	if !errors.As(err, &de) || de.Reason != contract.ReasonFraming {
		t.Fatalf("Decode = %v, want a DecodeError with reason framing", err)
	}
	if err.Error() != wantErr {
		t.Fatalf("Decode error\n%q, want\n%q", err, wantErr)
	}
	if msg != nil {
		t.Fatal("Decode returned a message with an error")
	}
	return nil
}

func TestDecode_confluent_checks_the_message_index_path(t *testing.T) {
	reg := loadFrame(t)
	for _, tc := range []struct {
		contract string
		name     string
		payload  []byte
		wantErr  string // "" accepted
	}{
		{"test.v1.BidPlaced", "its own path [1]", contract.FrameConfluent(nil, 1, []int{1}, bidBody), ""},
		{"test.v1.BidPlaced", "[1] in a non-minimal varint", append(frame(1, 0x02, 0x82, 0x00), bidBody...), ""},
		{"test.v1.BidPlaced", "[0], the first message of the file", contract.FrameConfluent(nil, 1, []int{0}, bidBody),
			"decode framing: message index [0] selects test.v1.Other (schema id 1), want [1] for test.v1.BidPlaced"},
		{"test.v1.BidPlaced", "[0] written as count 1, index 0", append(frame(1, 0x02, 0x00), bidBody...),
			"decode framing: message index [0] selects test.v1.Other (schema id 1), want [1] for test.v1.BidPlaced"},
		{"test.v1.BidPlaced", "another top-level message [2]", contract.FrameConfluent(nil, 1, []int{2}, bidBody),
			"decode framing: message index [2] selects test.v1.Closed (schema id 1), want [1] for test.v1.BidPlaced"},
		{"test.v1.BidPlaced", "out of range [7]", contract.FrameConfluent(nil, 987654, []int{7}, bidBody),
			"decode framing: message index [7] is out of range in test/v1/frame.proto (schema id 987654), want [1] for test.v1.BidPlaced"},
		{"test.v1.BidPlaced", "nested [1,3]", contract.FrameConfluent(nil, 1, []int{1, 3}, bidBody),
			"decode framing: message index [1,3] selects test.v1.BidPlaced.Flag (schema id 1), want [1] for test.v1.BidPlaced"},
		{"test.v1.BidPlaced", "nested out of range [1,4]", contract.FrameConfluent(nil, 1, []int{1, 4}, bidBody),
			"decode framing: message index [1,4] is out of range in test/v1/frame.proto (schema id 1), want [1] for test.v1.BidPlaced"},
		{"test.v1.BidPlaced", "[1] prefix of a longer path", contract.FrameConfluent(nil, 1, []int{1, 0}, bidBody),
			"decode framing: message index [1,0] selects test.v1.BidPlaced.Lot (schema id 1), want [1] for test.v1.BidPlaced"},
		{"test.v1.BidPlaced", "truncated index list", frame(1, 0x04, 0x02), "decode framing: malformed message index"},
		{"test.v1.BidPlaced", "unterminated count varint", frame(1, 0x82), "decode framing: malformed message-index count"},
		{"test.v1.BidPlaced", "garbage count", append(frame(1, 0x7f), bidBody...), "decode framing: message-index count -64 out of range [0, 64]"},
		{"test.v1.BidPlaced", "count larger than the indexes given", append(frame(1, 0x06, 0x02), 0xff), "decode framing: malformed message index"},
		{"test.v1.Other", "[0] as the single byte 0", contract.FrameConfluent(nil, 1, nil, []byte{0x0a, 0x01, 'x'}), ""},
		{"test.v1.Other", "[0] as count 1, index 0", append(frame(1, 0x02, 0x00), 0x0a, 0x01, 'x'), ""},
		{"test.v1.Other", "[1]", contract.FrameConfluent(nil, 1, []int{1}, bidBody),
			"decode framing: message index [1] selects test.v1.BidPlaced (schema id 1), want [0] for test.v1.Other"},
		{"test.v1.BidPlaced.Lot", "its own nested path [1,0]", contract.FrameConfluent(nil, 1, []int{1, 0}, nil), ""},
		{"test.v1.BidPlaced.Lot", "[1,3]", contract.FrameConfluent(nil, 1, []int{1, 3}, nil),
			"decode framing: message index [1,3] selects test.v1.BidPlaced.Flag (schema id 1), want [1,0] for test.v1.BidPlaced.Lot"},
		{"test.v1.BidPlaced.Lot", "[0,0], a path Other does not have", contract.FrameConfluent(nil, 1, []int{0, 0}, nil),
			"decode framing: message index [0,0] is out of range in test/v1/frame.proto (schema id 1), want [1,0] for test.v1.BidPlaced.Lot"},
	} {
		t.Run(tc.contract+"/"+tc.name, func(t *testing.T) {
			c := lookup(t, reg, tc.contract)
			decodeWant(t, c.NewDecoder(contract.Confluent), tc.payload, tc.wantErr)
		})
	}
}

func TestDecode_confluent_broken_body_after_a_good_frame_is_protobuf(t *testing.T) {
	c := lookup(t, loadFrame(t), "test.v1.BidPlaced")
	_, err := c.NewDecoder(contract.Confluent).Decode(contract.FrameConfluent(nil, 1, []int{1}, []byte{0x0f}))
	var de *contract.DecodeError
	if !errors.As(err, &de) || de.Reason != contract.ReasonProtobuf {
		t.Fatalf("Decode = %v, want a DecodeError with reason protobuf", err)
	}
}

func TestDecode_confluent_schema_ids(t *testing.T) {
	c := lookup(t, loadFrame(t), "test.v1.BidPlaced")
	dec := c.NewDecoder(contract.Confluent).CheckSchemas(contract.NewSchemas([]uint32{3, 4}, nil))
	for _, tc := range []struct {
		name    string
		payload []byte
		wantErr string
	}{
		{"accepted id", contract.FrameConfluent(nil, 3, []int{1}, bidBody), ""},
		{"the other accepted id", contract.FrameConfluent(nil, 4, []int{1}, bidBody), ""},
		{"unknown id", contract.FrameConfluent(nil, 987654, []int{1}, bidBody),
			"decode framing: schema id 987654 is not one of the accepted schema_ids [3, 4]"},
		{"accepted id again after a refused one", contract.FrameConfluent(nil, 3, []int{1}, bidBody), ""},
		{"accepted id, wrong index path", contract.FrameConfluent(nil, 3, []int{2}, bidBody),
			"decode framing: message index [2] selects test.v1.Closed (schema id 3), want [1] for test.v1.BidPlaced"},
	} {
		t.Run(tc.name, func(t *testing.T) { decodeWant(t, dec, tc.payload, tc.wantErr) })
	}
}

func TestNewSchemas_String(t *testing.T) {
	reg, err := contract.NewSchemaRegistry(contract.SchemaRegistryConfig{URL: "http://registry:8081"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		s    *contract.Schemas
		want string
	}{
		{contract.NewSchemas(nil, nil), "schema ids: not checked"},
		{contract.NewSchemas([]uint32{1, 2, 3}, nil), "schema ids: 3 accepted"},
		{contract.NewSchemas(nil, reg), "schema ids: registry http://registry:8081"},
		{contract.NewSchemas([]uint32{1}, reg), "schema ids: 1 accepted, registry http://registry:8081"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

// TestDecode_confluent_golden decodes frames written by confluent-kafka-python's
// ProtobufSerializer (testdata/golden/gen_confluent.py): a message that is not the first of
// its file, a nested one and the first one.
func TestDecode_confluent_golden(t *testing.T) {
	reg := loadFrame(t)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "golden", "confluent_"+name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	str := func(m protoreflect.Message, field string) string {
		return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(field))).String()
	}
	list := func(m protoreflect.Message, field string) []string {
		l := m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(field))).List()
		var out []string
		for i := range l.Len() {
			out = append(out, l.Get(i).String())
		}
		return out
	}

	for _, tc := range []struct {
		file, contract string
		id             uint32
		check          func(t *testing.T, m protoreflect.Message)
	}{
		{"bid_placed", "test.v1.BidPlaced", 1, func(t *testing.T, m protoreflect.Message) {
			amount := m.Get(m.Descriptor().Fields().ByName("amount_cents")).Int()
			lot := m.Get(m.Descriptor().Fields().ByName("lot")).Message()
			if str(m, "bid_id") != "b-17" || amount != 4250 || str(lot, "lot_id") != "lot-9" || !slices.Equal(list(lot, "tags"), []string{"art", "oil"}) {
				t.Fatalf("decoded bid_id=%q amount_cents=%d lot=%q tags=%q", str(m, "bid_id"), amount, str(lot, "lot_id"), list(lot, "tags"))
			}
		}},
		{"bid_placed_lot", "test.v1.BidPlaced.Lot", 2, func(t *testing.T, m protoreflect.Message) {
			if str(m, "lot_id") != "lot-3" || !slices.Equal(list(m, "tags"), []string{"coin"}) {
				t.Fatalf("decoded lot_id=%q tags=%q", str(m, "lot_id"), list(m, "tags"))
			}
		}},
		{"other", "test.v1.Other", 3, func(t *testing.T, m protoreflect.Message) {
			if str(m, "note") != "hello" {
				t.Fatalf("decoded note=%q", str(m, "note"))
			}
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			payload := read(tc.file)
			c := lookup(t, reg, tc.contract)
			msg := decodeWant(t, c.NewDecoder(contract.Confluent), payload, "")
			// decodeWant released the decoder; decode again to read the fields.
			dec := c.NewDecoder(contract.Confluent)
			defer dec.Release()
			msg, err := dec.Decode(payload)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, msg)

			// FrameConfluent writes the same header as confluent-kafka-python.
			id, _, body, err := contract.SplitConfluent(payload)
			if err != nil || id != tc.id {
				t.Fatalf("SplitConfluent: id %d, %v; want id %d", id, err, tc.id)
			}
			if got := contract.FrameConfluent(nil, id, c.MessageIndexes(), body); !bytes.Equal(got, payload) {
				t.Fatalf("FrameConfluent = % x, confluent-kafka-python wrote % x", got, payload)
			}
		})
	}

	// A wire-compatible message framed for another message of the file is refused.
	other := lookup(t, reg, "test.v1.Other")
	decodeWant(t, other.NewDecoder(contract.Confluent), read("bid_placed"),
		"decode framing: message index [1] selects test.v1.BidPlaced (schema id 1), want [0] for test.v1.Other")
}

// TestDecoder_confluent_check_does_not_allocate decodes Confluent frames with each
// schema-id policy: the frame check must add no allocation to the steady state.
func TestDecoder_confluent_check_does_not_allocate(t *testing.T) {
	c := lookup(t, loadFrame(t), "test.v1.BidPlaced")
	m := dynamicpb.NewMessage(c.Descriptor())
	m.Set(c.Descriptor().Fields().ByName("bid_id"), protoreflect.ValueOfString("b-1"))
	payload, err := c.Encode(m, contract.Confluent, 1)
	if err != nil {
		t.Fatal(err)
	}
	reg := newRegistryServer(t).client(t)
	for name, s := range map[string]*contract.Schemas{
		"no policy":  nil,
		"schema ids": contract.NewSchemas([]uint32{3, 2, 1}, nil),
		"registry":   contract.NewSchemas(nil, reg),
	} {
		t.Run(name, func(t *testing.T) {
			dec := c.NewDecoder(contract.Confluent).CheckSchemas(s)
			batch := func() {
				for range 200 {
					if _, err := dec.Decode(payload); err != nil {
						t.Fatal(err)
					}
				}
				dec.Release()
			}
			batch() // size the arenas, fill the caches
			perEvent := testing.AllocsPerRun(20, batch) / 200
			// As in TestDecoder_binary_decode_does_not_allocate_in_steady_state: hyperpb's
			// pools refill after a GC, and race builds copy every payload.
			limit := 0.05
			if raceBuild {
				limit = 3
			}
			if perEvent > limit {
				t.Fatalf("Decode allocates %.3f times per frame, want at most %v", perEvent, limit)
			}
		})
	}
}
