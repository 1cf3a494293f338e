package transforms_test

import (
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/transforms"
)

// typicalChain is the chain of BenchmarkTypicalChain: flatten, drop, two set steps and the
// contract's HASH of bidder_email.
const typicalChain = `transforms:
  - flatten: true
  - drop: [max_auto_bid_currency_code, max_auto_bid_units, max_auto_bid_nanos, client_clock_skew_ms]
  - set: {amount_cents: "event.amount.units * 100 + event.amount.nanos / 10000000"}
  - set: {is_auto_bid: "event.source == auctions.v1.BidPlaced.Source.SOURCE_AUTO_BID"}`

// BenchmarkTypicalChain measures one event through the typical chain, from the read-only
// hyperpb message the engine decodes to the output message a sink receives. ns/event and
// allocs/event are per input event (one output each).
func BenchmarkTypicalChain(b *testing.B) {
	benchChain(b, typicalChain)
}

// BenchmarkIdentityChain is a route without transforms over a contract without PII: Apply
// hands the input through.
func BenchmarkIdentityChain(b *testing.B) {
	c := lookup(b, eventgen.ViewStarted)
	chain, errs := transforms.Compile(configWith(b, eventgen.ViewStarted, "").Pipelines[0].Routes[0], c.Descriptor(), transforms.Options{}, nil, "pipelines[0].routes[0]")
	if errs != nil {
		b.Fatal(errs)
	}
	run(b, chain, c, eventgen.ViewStarted)
}

func benchChain(b *testing.B, route string) {
	cfg := configWith(b, eventgen.BidPlaced, route)
	chain, errs := compile(b, cfg)
	if errs != nil {
		b.Fatal(errs)
	}
	run(b, chain, lookup(b, eventgen.BidPlaced), eventgen.BidPlaced)
}

func run(b *testing.B, chain *transforms.Chain, c *contract.Contract, name string) {
	gen, err := eventgen.New(registry(b), eventgen.Options{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	dec := c.NewDecoder(contract.Raw)
	const n = 1024
	events := make([]protoreflect.Message, n)
	for i := range events {
		ev, err := gen.Make(name, eventgen.Valid, contract.Raw)
		if err != nil {
			b.Fatal(err)
		}
		if events[i], err = dec.Decode(ev.Payload); err != nil {
			b.Fatal(err)
		}
	}
	rec := &event.Record{Topic: "auctions.bids", Partition: 1, Offset: 42}
	dst := make([]protoreflect.Message, 0, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		out, err := chain.Apply(events[i%n], rec, dst[:0])
		if err != nil || len(out) != 1 {
			b.Fatalf("Apply = %d results, %v", len(out), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}

// TestApply_concurrent shares one chain between goroutines, as the engine's lanes do (run
// with -race): every goroutine gets the results a lone call gets.
func TestApply_concurrent(t *testing.T) {
	chain, errs := compile(t, configWith(t, eventgen.OrderPaid, `transforms:
  - explode: items
  - flatten: true
  - set: {line_total: "element.unit_price.units * int(element.quantity)", seen: "kafka.headers['h']"}
  - enrich: {_at: ingestion_time}`))
	if errs != nil {
		t.Fatal(errs)
	}
	c := lookup(t, eventgen.OrderPaid)
	gen, err := eventgen.New(registry(t), eventgen.Options{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	var payloads [][]byte
	for range 64 {
		ev, err := gen.Make(eventgen.OrderPaid, eventgen.Valid, contract.Raw)
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, ev.Payload)
	}
	rec := &event.Record{Headers: []event.Header{{Key: "h", Value: []byte("v")}}}
	render := func(dec *contract.Decoder, p []byte) string {
		in, err := dec.Decode(p)
		if err != nil {
			t.Error(err)
			return ""
		}
		out, err := chain.Apply(in, rec, nil)
		if err != nil {
			t.Error(err)
			return ""
		}
		var sb strings.Builder
		for _, m := range out {
			sb.WriteString(transforms.Redact(m))
			sb.WriteByte('\n')
		}
		return sb.String()
	}
	want := make([]string, len(payloads))
	dec := c.NewDecoder(contract.Raw)
	for i, p := range payloads {
		want[i] = render(dec, p)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dec := c.NewDecoder(contract.Raw)
			for i, p := range payloads {
				if got := render(dec, p); got != want[i] {
					t.Errorf("event %d: concurrent result differs:\n%s\nwant\n%s", i, got, want[i])
				}
			}
		}()
	}
	wg.Wait()
}

// TestCompile_shared_schema gives two routes to one sink one descriptor: the second chain's
// results use the first chain's Schema, and a route of another shape is refused.
func TestCompile_shared_schema(t *testing.T) {
	const shape = `transforms:
  - select: [event_id, bidder_email, amount]
  - drop: [amount.nanos]`
	first, errs := compile(t, configWith(t, eventgen.BidPlaced, shape))
	if errs != nil {
		t.Fatal(errs)
	}
	cfg := configWith(t, eventgen.BidPlaced, shape+"\n  - filter: \"event.quantity > 1\"")
	c := lookup(t, eventgen.BidPlaced)
	opts := transforms.Options{Pipeline: "bids", Route: "second", HashKey: testKey, Schema: first.Schema()}
	second, errs := transforms.Compile(cfg.Pipelines[0].Routes[0], c.Descriptor(), opts, cfg.Pos, "pipelines[0].routes[0]")
	if errs != nil {
		t.Fatal(errs)
	}
	if second.Schema() != first.Schema() {
		t.Fatalf("Schema() = %s, want the shared one", second.Schema().FullName())
	}
	_, in := decodeJSON(t, c, []byte(`{"eventId":"e1","bidderEmail":"a@b.c","amount":{"units":3,"nanos":5},"quantity":2}`))
	out, err := second.Apply(in, nil, nil)
	if err != nil || len(out) != 1 {
		t.Fatalf("Apply = %d, %v", len(out), err)
	}
	m := out[0]
	if m.Descriptor() != first.Schema() {
		t.Errorf("result is a %s of another descriptor", m.Descriptor().FullName())
	}
	amount := m.Get(first.Schema().Fields().ByName("amount")).Message()
	if amount.Descriptor() != first.Schema().Fields().ByName("amount").Message() {
		t.Error("nested result does not use the shared nested descriptor")
	}
	cfg = configWith(t, eventgen.BidPlaced, `transforms:
  - select: [event_id, amount]`)
	_, errs = transforms.Compile(cfg.Pipelines[0].Routes[0], c.Descriptor(), opts, cfg.Pos, "pipelines[0].routes[0]")
	want := `case.yaml:11:9: pipeline "bids" route "second": the route's output cannot use switchyard.out.bids_out_0.Event, the schema it shares with its sink: Event has 2 fields here and 3 in the shared schema`
	if errs.Error() != want {
		t.Errorf("errors:\n%v\nwant\n%s", errs, want)
	}
}
