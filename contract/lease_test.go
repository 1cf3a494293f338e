package contract_test

import (
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
)

// A borrowed message outlives the Release of the Decoder that parsed it and is freed by
// the last holder; a Lease of a freed, discarded or failed decode borrows nothing, nor does a
// Decoder of another contract.
func TestDecoder_Borrow_holds_the_message_until_the_last_Release(t *testing.T) {
	reg := load(t)
	g, err := eventgen.New(reg, eventgen.Options{Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	ct := lookup(t, reg, eventgen.BidPlaced)
	owner, borrower := ct.NewDecoder(contract.Confluent), ct.NewDecoder(contract.Confluent)
	ev, _ := g.Make(eventgen.BidPlaced, eventgen.Valid, contract.Confluent)
	if _, err := owner.Decode(ev.Payload); err != nil {
		t.Fatal(err)
	}
	l := owner.Lease()
	m, ok := borrower.Borrow(l)
	if !ok {
		t.Fatal("Borrow of a live message failed")
	}
	if borrower.Live() != 1 {
		t.Fatalf("borrower holds %d messages, want 1", borrower.Live())
	}
	owner.Release()
	// The owner's later decodes must not reuse the borrowed arena.
	for range 50 {
		other, _ := g.Make(eventgen.BidPlaced, eventgen.Valid, contract.Confluent)
		if _, err := owner.Decode(other.Payload); err != nil {
			t.Fatal(err)
		}
	}
	if !proto.Equal(m.Interface(), ev.Message) {
		t.Fatal("the borrowed message changed after its owner's Release")
	}
	third := ct.NewDecoder(contract.Confluent)
	if _, ok := third.Borrow(l); !ok {
		t.Fatal("a message still held by the borrower could not be borrowed again")
	}
	borrower.Release()
	third.Release()
	if _, ok := borrower.Borrow(l); ok {
		t.Fatal("borrowed a message after every holder had released it")
	}
	owner.Release()
	if _, err := owner.Decode(ev.Payload); err != nil {
		t.Fatal(err)
	}
	l2 := owner.Lease()
	owner.Release()
	if _, ok := borrower.Borrow(l2); ok {
		t.Fatal("borrowed a message its only holder had released")
	}
	if borrower.Live() != 0 {
		t.Fatalf("a failed Borrow holds %d messages", borrower.Live())
	}

	// Discarded, rejected and JSON decodes lease nothing.
	if _, err := owner.Decode(ev.Payload); err != nil {
		t.Fatal(err)
	}
	l3 := owner.Lease()
	owner.Discard()
	if _, ok := borrower.Borrow(l3); ok {
		t.Fatal("borrowed a discarded message")
	}
	if _, err := owner.Decode([]byte{0, 0, 0, 0, 1, 0, 0xff}); err == nil {
		t.Fatal("garbage decoded")
	}
	if l := owner.Lease(); l.Arena != nil {
		t.Fatal("a failed decode leased its arena")
	}
	js := ct.NewDecoder(contract.JSON)
	jev, _ := g.Make(eventgen.BidPlaced, eventgen.Valid, contract.JSON)
	if _, err := js.Decode(jev.Payload); err != nil {
		t.Fatal(err)
	}
	if l := js.Lease(); l.Arena != nil {
		t.Fatal("a JSON decode leased an arena")
	}

	// Another contract's Decoder refuses the message and keeps the owner's reference intact.
	if _, err := owner.Decode(ev.Payload); err != nil {
		t.Fatal(err)
	}
	l4 := owner.Lease()
	other := lookup(t, reg, eventgen.OrderPaid).NewDecoder(contract.Confluent)
	if _, ok := other.Borrow(l4); ok {
		t.Fatal("a decoder of OrderPaid borrowed a BidPlaced")
	}
	if _, ok := borrower.Borrow(l4); !ok {
		t.Fatal("a refused Borrow dropped the owner's reference")
	}
	borrower.Release()
	owner.Release()
}

// Lanes borrow from each other concurrently: every message read through a Lease is the one
// decoded, whichever goroutine lets go last (run with -race to check the reads as well).
func TestDecoder_Borrow_concurrently(t *testing.T) {
	reg := load(t)
	g, err := eventgen.New(reg, eventgen.Options{Seed: 12})
	if err != nil {
		t.Fatal(err)
	}
	ct := lookup(t, reg, eventgen.BidPlaced)
	const n = 400
	events := make([]eventgen.Event, n)
	for i := range events {
		events[i], _ = g.Make(eventgen.BidPlaced, eventgen.Valid, contract.Confluent)
	}
	for round := range 20 {
		// leased is the lease of events[i].
		type leased struct {
			i int
			l contract.Lease
		}
		leases := make(chan leased, n)
		var wg sync.WaitGroup
		var borrowed, mismatched int
		done := make(chan struct{})
		wg.Go(func() {
			owner := ct.NewDecoder(contract.Confluent)
			for i, ev := range events {
				if _, err := owner.Decode(ev.Payload); err != nil {
					t.Error(err)
					return
				}
				leases <- leased{i, owner.Lease()}
				if i%50 == 49 && i < n-1 {
					owner.Release() // some messages are freed before they are borrowed
				}
			}
			close(leases)
			<-done // the last 50 stay held until the borrower has seen them
			owner.Release()
		})
		wg.Go(func() {
			b := ct.NewDecoder(contract.Confluent)
			for x := range leases {
				m, ok := b.Borrow(x.l)
				if !ok {
					continue
				}
				borrowed++
				if !proto.Equal(m.Interface(), events[x.i].Message) {
					mismatched++
				}
				if x.i%7 == 0 {
					b.Release()
				}
			}
			b.Release()
			close(done)
		})
		wg.Wait()
		if mismatched > 0 || borrowed < 50 {
			t.Fatalf("round %d: %d of %d borrowed messages were not the leased one (want at least the 50 held last)", round, mismatched, borrowed)
		}
	}
}
