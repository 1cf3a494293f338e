package routing_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/internal/expr"
	"github.com/switchyard-dev/switchyard/routing"
)

// benchRoute compiles when for BidPlaced and returns it with one event and its record.
func benchRoute(b *testing.B, when string) (*routing.Route, *expr.Activation) {
	reg := registry(b)
	ct, err := reg.Lookup(eventgen.BidPlaced)
	if err != nil {
		b.Fatal(err)
	}
	gen, err := eventgen.New(reg, eventgen.Options{Seed: 9})
	if err != nil {
		b.Fatal(err)
	}
	ev, err := gen.Valid(eventgen.BidPlaced)
	if err != nil {
		b.Fatal(err)
	}
	routes, errs := routing.Compile([]config.Route{{Sink: "s", When: when}}, []protoreflect.MessageDescriptor{ct.Descriptor()}, "pipelines[0]", &config.Config{})
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	rec := &event.Record{Topic: "auctions.bids", Partition: 3, Offset: 42, Key: []byte("k1"),
		Timestamp: time.Unix(1700000000, 0), Headers: []event.Header{{Key: "region", Value: []byte("eu")}}}
	return routes[0], &expr.Activation{Event: ev, Record: rec}
}

func benchMatch(b *testing.B, when string) {
	r, act := benchRoute(b, when)
	b.ReportAllocs()
	b.ResetTimer()
	ev, rec := act.Event, act.Record
	for b.Loop() {
		act.Reset(ev, rec) // what the engine does per event
		ok, err := r.Match(act)
		if err != nil || !ok {
			b.Fatalf("match=%v err=%v", ok, err)
		}
	}
}

// BenchmarkMatch_event reads the event and scalar Kafka metadata, the common condition.
func BenchmarkMatch_event(b *testing.B) {
	benchMatch(b, `event.amount.units > 0 && kafka.topic == "auctions.bids" && kafka.partition == 3`)
}

// BenchmarkMatch_headers reads a header, which builds the headers map.
func BenchmarkMatch_headers(b *testing.B) {
	benchMatch(b, `kafka.headers["region"] == "eu"`)
}
