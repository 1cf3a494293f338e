package contract_test

import (
	"bytes"
	"testing"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
)

// TestEncoder_Reencode_passes_original_bytes: every input/output pair either reuses the
// payload (equal encodings, Confluent -> Raw body, Raw -> framed) or encodes the message, and
// the result always decodes in the output encoding.
func TestEncoder_Reencode_passes_original_bytes(t *testing.T) {
	reg := load(t)
	c := lookup(t, reg, eventgen.BidPlaced)
	g, err := eventgen.New(reg, eventgen.Options{Seed: 5, SchemaID: 9})
	if err != nil {
		t.Fatal(err)
	}
	encs := []contract.Encoding{contract.Confluent, contract.Raw, contract.JSON}
	for _, in := range encs {
		ev, err := g.Make(eventgen.BidPlaced, eventgen.Valid, in)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := c.NewDecoder(in).Decode(ev.Payload)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := contract.MarshalBinary(msg)
		for _, out := range encs {
			enc, err := contract.NewEncoder(out, 42, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := enc.Reencode(in, ev.Payload, msg)
			if err != nil {
				t.Fatalf("%s -> %s: %v", in, out, err)
			}
			var want []byte
			switch {
			case in == out:
				want = ev.Payload // kept as read, with its own schema id
			case in == contract.Confluent && out == contract.Raw:
				_, _, want, _ = contract.SplitConfluent(ev.Payload)
			case in == contract.Raw && out == contract.Confluent:
				want = contract.FrameConfluent(nil, 42, nil, ev.Payload)
			case out == contract.Raw:
				want = raw
			}
			if want != nil && !bytes.Equal(got, want) {
				t.Errorf("%s -> %s: %x, want %x", in, out, got, want)
			}
			if out == contract.Confluent && in != contract.Confluent {
				if id, _, _, err := contract.SplitConfluent(got); err != nil || id != 42 {
					t.Errorf("%s -> %s: schema id %d (%v), want 42", in, out, id, err)
				}
			}
			if _, err := c.NewDecoder(out).Decode(got); err != nil {
				t.Errorf("%s -> %s: output does not decode: %v", in, out, err)
			}
		}
	}
	if _, err := contract.NewEncoder(0, 0, nil); err == nil {
		t.Error("NewEncoder accepted encoding 0")
	}
}
