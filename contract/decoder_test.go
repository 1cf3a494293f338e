package contract_test

import (
	"testing"

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
