package eventgen

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/switchyard-dev/switchyard/contract"
)

func load(t testing.TB) *contract.Registry {
	t.Helper()
	reg, err := contract.Load("../../contracts")
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

var encodings = []contract.Encoding{contract.Confluent, contract.Raw, contract.JSON}

func TestGenerator_events_behave_as_labelled(t *testing.T) {
	reg := load(t)
	g, err := New(reg, Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Names() {
		c, err := reg.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, enc := range encodings {
			dec := c.NewDecoder(enc)
			for _, kind := range []Kind{Valid, Invalid, Undecodable} {
				t.Run(name+"/"+enc.String()+"/"+kind.String(), func(t *testing.T) {
					for range 50 {
						ev, err := g.Make(name, kind, enc)
						if err != nil {
							t.Fatal(err)
						}
						msg, err := dec.Decode(ev.Payload)
						if kind == Undecodable {
							var de *contract.DecodeError
							if !errors.As(err, &de) || de.Reason != ev.Rule {
								t.Fatalf("decode %x: got %v, want DecodeError with reason %q", ev.Payload, err, ev.Rule)
							}
							continue
						}
						if err != nil {
							t.Fatalf("decode: %v", err)
						}
						if !proto.Equal(msg.Interface(), ev.Message) {
							t.Fatalf("decoded message differs from generated one")
						}
						err = c.Validate(msg)
						if kind == Valid {
							if err != nil {
								t.Fatalf("valid event fails validation: %v", err)
							}
							continue
						}
						var ve *contract.ValidationError
						if !errors.As(err, &ve) || !slices.Contains(ve.Rules(), ev.Rule) {
							t.Fatalf("invalid event: got %v, want violation of %q", err, ev.Rule)
						}
					}
					dec.Release()
				})
			}
		}
	}
}

// Every breaker must trip exactly the rule it names, so tests can rely on Event.Rule.
func TestBreakers_trip_their_rule(t *testing.T) {
	reg := load(t)
	g, err := New(reg, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for name, bs := range map[string][]breaker{ViewStarted: viewStartedBreakers, BidPlaced: bidPlacedBreakers, OrderPaid: orderPaidBreakers} {
		c, _ := reg.Lookup(name)
		for _, b := range bs {
			t.Run(name+"/"+b.rule, func(t *testing.T) {
				m := g.valid(name)
				if name == BidPlaced && b.rule == "bid_placed.max_auto_bid_covers_amount" {
					setMoney(m, "max_auto_bid", "EUR", 1) // make sure the field is set before breaking it
				}
				b.apply(g, m)
				var ve *contract.ValidationError
				if err := c.Validate(m); !errors.As(err, &ve) || !slices.Contains(ve.Rules(), b.rule) {
					t.Fatalf("got %v, want violation of %q", err, b.rule)
				}
			})
		}
	}
}

func TestGenerator_is_deterministic_and_mixes_kinds(t *testing.T) {
	reg := load(t)
	gen := func() []Event {
		g, err := New(reg, Options{Seed: 42, InvalidRate: 0.2})
		if err != nil {
			t.Fatal(err)
		}
		out := make([]Event, 500)
		for i := range out {
			out[i] = g.Next(contract.Confluent)
		}
		return out
	}
	a, b := gen(), gen()
	kinds := map[Kind]int{}
	names := map[string]int{}
	for i := range a {
		if !bytes.Equal(a[i].Payload, b[i].Payload) || a[i].Kind != b[i].Kind {
			t.Fatalf("event %d differs between two generators with the same seed", i)
		}
		kinds[a[i].Kind]++
		names[a[i].Contract]++
	}
	for _, k := range []Kind{Valid, Invalid, Undecodable} {
		if kinds[k] == 0 {
			t.Errorf("no %s events in 500 at InvalidRate 0.2: %v", k, kinds)
		}
	}
	if kinds[Valid] < 300 || kinds[Valid] > 460 {
		t.Errorf("valid share far from 80%%: %v", kinds)
	}
	for _, n := range Names() {
		if names[n] == 0 {
			t.Errorf("no %s events: %v", n, names)
		}
	}
}

func TestNew_requires_sample_contracts(t *testing.T) {
	dir := t.TempDir()
	reg, err := contract.Load(writeProto(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg, Options{}); err == nil {
		t.Fatal("New succeeded on a registry without the sample contracts")
	}
}

func TestMake_rejects_unknown_contract(t *testing.T) {
	g, err := New(load(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Make("orders.v1.OrderShipped", Valid, contract.Raw); err == nil {
		t.Fatal("Make accepted an unknown contract")
	}
}

func writeProto(t *testing.T, dir string) string {
	t.Helper()
	src := "syntax = \"proto3\";\npackage other.v1;\nmessage Thing { string id = 1; }\n"
	if err := os.WriteFile(filepath.Join(dir, "thing.proto"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestGenerator_clock_tracks_wall_clock: a live generator (switchyard dev) at 2000 events/s
// must stamp events near now, never in the future, or "the last hour" queries over its
// output show nonsense. The simulated clock advanced up to 50 ms per event: 2000 events put it
// about 50 s ahead after one second of real time.
func TestGenerator_clock_tracks_wall_clock(t *testing.T) {
	reg := load(t)
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	g, err := New(reg, Options{Seed: 3, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5_000 {
		now = now.Add(500 * time.Microsecond) // 2000 events per second of the clock
		ev := g.Next(contract.Raw)
		if ev.Message == nil {
			continue
		}
		fd := ev.Message.Descriptor().Fields().ByName("occurred_at")
		if !ev.Message.Has(fd) {
			continue // a breaker cleared it
		}
		ts := ev.Message.Get(fd).Message()
		at := time.Unix(ts.Get(ts.Descriptor().Fields().ByName("seconds")).Int(), ts.Get(ts.Descriptor().Fields().ByName("nanos")).Int())
		if at.After(now) || at.Before(now.Add(-MaxLateness)) {
			t.Fatalf("event %d (%s) occurred at %s, clock at %s: want within %s before the clock", i, ev.Contract, at, now, MaxLateness)
		}
	}
}

// TestGenerator_bids_have_cents: amount_nanos of sample bids is not always 0, so queries that
// add units and nanos (the README's top_amount) have something to add.
func TestGenerator_bids_have_cents(t *testing.T) {
	reg := load(t)
	g, err := New(reg, Options{Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	withCents := 0
	for range 400 {
		ev, err := g.NextOf(BidPlaced, contract.Raw)
		if err != nil {
			t.Fatal(err)
		}
		a := ev.Message.Get(ev.Message.Descriptor().Fields().ByName("amount")).Message()
		if nanos := a.Get(a.Descriptor().Fields().ByName("nanos")).Int(); nanos != 0 {
			if nanos%10_000_000 != 0 || nanos < 0 {
				t.Fatalf("amount nanos %d: want whole cents", nanos)
			}
			withCents++
		}
	}
	if withCents < 300 {
		t.Errorf("%d of 400 bids have cents: want nearly all", withCents)
	}
}
