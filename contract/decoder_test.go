package contract_test

import (
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
)

func TestDecoder_Discard_reuses_the_last_arena(t *testing.T) {
	reg := load(t)
	gen, err := eventgen.New(reg, eventgen.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := reg.Lookup(eventgen.BidPlaced)
	if err != nil {
		t.Fatal(err)
	}
	d := ct.NewDecoder(contract.Raw)
	ev, _ := gen.Make(eventgen.BidPlaced, eventgen.Valid, contract.Raw)
	keep, err := d.Decode(ev.Payload)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := d.Decode(ev.Payload); err != nil {
			t.Fatal(err)
		}
		d.Discard()
	}
	if d.Live() != 1 {
		t.Fatalf("%d arenas live after discarding every message but one, want 1", d.Live())
	}
	// A payload rejected before parsing takes no arena: discarding it must not free the
	// kept message's.
	if _, err := d.Decode([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Fatal("garbage decoded")
	}
	d.Discard()
	if d.Live() != 1 {
		t.Fatalf("discarding a rejected payload freed a live arena (%d live)", d.Live())
	}
	if err := ct.Validate(keep); err != nil {
		t.Fatalf("the kept message was disturbed: %v", err)
	}
	d.Release()
	if d.Live() != 0 {
		t.Fatalf("%d live after Release", d.Live())
	}
}

// Arenas a Decoder released are reused by the next Decoder (they are pooled process-wide,
// not per decoder); messages parsed into a reused arena are whole, and a decoder's live
// messages are not disturbed by another's Release.
func TestDecoder_arenas_pass_between_decoders(t *testing.T) {
	reg := load(t)
	gen, err := eventgen.New(reg, eventgen.Options{Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	ct := lookup(t, reg, eventgen.BidPlaced)
	var payloads [][]byte
	for range 50 {
		ev, err := gen.Make(eventgen.BidPlaced, eventgen.Valid, contract.Raw)
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, ev.Payload)
	}
	a, b := ct.NewDecoder(contract.Raw), ct.NewDecoder(contract.Raw)
	held := make([]string, 0, len(payloads))
	kept := make([]protoreflect.Message, 0, len(payloads))
	for _, p := range payloads {
		m, err := a.Decode(p)
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, m)
		held = append(held, prototext.Format(m.Interface()))
	}
	for round := range 3 {
		for i, p := range payloads {
			m, err := b.Decode(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := ct.Validate(m); err != nil {
				t.Fatalf("round %d, event %d in a reused arena: %v", round, i, err)
			}
		}
		b.Release()
	}
	for i, m := range kept {
		if got := prototext.Format(m.Interface()); got != held[i] {
			t.Fatalf("event %d of the other decoder changed under its Release:\n%s\nwant\n%s", i, got, held[i])
		}
	}
	a.Release()
}
