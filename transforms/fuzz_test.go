package transforms_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/transforms"
)

// fuzzRoutes are chains whose expressions and casts can fail on hostile events: division,
// overflow, parsing, indexing, map lookups, time arithmetic, explode of every list.
var fuzzRoutes = map[string][]string{
	eventgen.BidPlaced: {
		`transforms:
  - flatten: true
  - drop: [max_auto_bid_currency_code]
  - set: {a: "event.amount.units * 1000000000 + event.amount.nanos", b: "event.amount.units / int(event.quantity)"}
  - set: {c: "event.occurred_at + event.time_remaining", d: "event.lot_id.matches('^-?[0-9]+$') ? int(event.lot_id) % event.client_clock_skew_ms : 0"}
  - filter: "!('x' in kafka.headers) || event.sequence / 0u > 0u"
  - cast: {occurred_at: date, time_remaining: millis, sequence: int32, quantity: uint32, promo_code: int64, source: string}`,
		`transforms:
  - set: {t: "event.event_id.startsWith('2') ? timestamp(event.event_id) : event.occurred_at", l: "[1, 2, 3][event.quantity % 4]"}
  - cast: {client_clock_skew_ms: uint32, promo_code: timestamp, auction_id: bytes}
  - enrich: {_k: key, _h: "header:h", _at: ingestion_time}`,
	},
	eventgen.OrderPaid: {
		`transforms:
  - explode: items
  - flatten: true
  - set: {total: "element.unit_price.units * int(element.quantity)", sku_n: "element.sku.matches('^[0-9]+$') ? int(element.sku) : -1"}
  - filter: "element.unit_price.units / element.unit_price.units >= 0"
  - cast: {items_quantity: int32, items_auction_id: date, fx_rate_to_usd: int64, shipping_country: bytes}`,
		`transforms:
  - set: {codes: "event.coupon_codes.map(c, c + c)", attrs: "event.attributes", first: "size(event.coupon_codes) > 0 ? event.coupon_codes[0] : ''"}
  - explode: codes
  - set: {n: "size(element) / (size(element) - 4)"}
  - cast: {payment_attempt: int32, checkout_duration: string, loyalty_points_earned: uint64}`,
	},
	eventgen.ViewStarted: {
		`transforms:
  - flatten: true
  - set: {r: "event.dropped_frame_ratio * 1e308 * 10.0", e: "event.show_id in event.experiments ? event.experiments[event.show_id] : ''"}
  - cast: {dropped_frame_ratio: int64, playback_position_ms: int32, trace_id: string, client_platform: int32, referrer: double}`,
	},
}

// FuzzApply feeds arbitrary payloads of the sample contracts to chains with failing
// expressions and casts. No event may make a chain panic (Apply turns panics into "internal
// error" *Errors, which this test rejects); every result must encode, and every failure
// must be a *transforms.Error. The seed corpus (generated events plus
// testdata/fuzz/FuzzApply) runs with plain go test.
func FuzzApply(f *testing.F) {
	reg := registry(f)
	gen, err := eventgen.New(reg, eventgen.Options{Seed: 3})
	if err != nil {
		f.Fatal(err)
	}
	names := []string{eventgen.BidPlaced, eventgen.OrderPaid, eventgen.ViewStarted}
	for i, name := range names {
		for range 5 {
			ev, err := gen.Make(name, eventgen.Valid, contract.Raw)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(i), ev.Payload)
		}
		ev, err := gen.Make(name, eventgen.Invalid, contract.Raw)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), ev.Payload)
		f.Add(uint8(i), []byte{})
	}
	type compiled struct {
		c      *contract.Contract
		chains []*transforms.Chain
	}
	var all []compiled
	for _, name := range names {
		cc := compiled{c: lookup(f, name)}
		for _, route := range fuzzRoutes[name] {
			chain, errs := compile(f, configWith(f, name, route))
			if errs != nil {
				f.Fatalf("%s: %v", name, errs)
			}
			cc.chains = append(cc.chains, chain)
		}
		all = append(all, cc)
	}
	rec := &event.Record{Topic: "t", Key: []byte{0xff, 'k'}, Headers: []event.Header{{Key: "h", Value: []byte{0xc3, 0x28}}}}
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		cc := all[int(which)%len(all)]
		in, err := cc.c.NewDecoder(contract.Raw).Decode(payload)
		if err != nil {
			return // the engine dead-letters undecodable payloads before any route
		}
		for _, chain := range cc.chains {
			out, err := chain.Apply(in, rec, nil)
			if err != nil {
				if _, ok := err.(*transforms.Error); !ok {
					t.Fatalf("Apply error is a %T, want *transforms.Error: %v", err, err)
				}
				if strings.Contains(err.Error(), "internal error") {
					t.Fatalf("Apply panicked: %v", err)
				}
				if len(out) != 0 {
					t.Fatalf("Apply returned %d results with an error", len(out))
				}
				continue
			}
			for _, m := range out {
				if m.Descriptor() != chain.Schema() {
					t.Fatalf("result is a %s, want %s", m.Descriptor().FullName(), chain.Schema().FullName())
				}
				if _, err := proto.Marshal(m.Interface()); err != nil {
					t.Fatalf("result does not encode: %v", err)
				}
				_ = protoreflect.Message(m)
			}
		}
	})
}

// TestFuzzRoutes_transform_valid_events keeps FuzzApply meaningful: each of its chains
// transforms at least some valid generated events instead of failing on all of them.
func TestFuzzRoutes_transform_valid_events(t *testing.T) {
	gen, err := eventgen.New(registry(t), eventgen.Options{Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	for name, routes := range fuzzRoutes {
		c := lookup(t, name)
		for i, route := range routes {
			chain, errs := compile(t, configWith(t, name, route))
			if errs != nil {
				t.Fatalf("%s route %d: %v", name, i, errs)
			}
			ok := 0
			for range 50 {
				ev, err := gen.Make(name, eventgen.Valid, contract.Raw)
				if err != nil {
					t.Fatal(err)
				}
				in, err := c.NewDecoder(contract.Raw).Decode(ev.Payload)
				if err != nil {
					t.Fatal(err)
				}
				if out, err := chain.Apply(in, nil, nil); err == nil && len(out) > 0 {
					ok++
				}
			}
			if ok == 0 {
				t.Errorf("%s route %d transforms none of 50 valid events", name, i)
			}
		}
	}
}
