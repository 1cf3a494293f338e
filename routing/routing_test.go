package routing_test

import (
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/internal/expr"
	"github.com/switchyard-dev/switchyard/routing"
)

func registry(t testing.TB) *contract.Registry {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	reg, err := contract.Load(filepath.Join(filepath.Dir(filepath.Dir(file)), "contracts"))
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestMatch(t *testing.T) {
	reg := registry(t)
	ct, err := reg.Lookup(eventgen.BidPlaced)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := eventgen.New(reg, eventgen.Options{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := gen.Valid(eventgen.BidPlaced)
	if err != nil {
		t.Fatal(err)
	}
	units := ev.Get(ev.Descriptor().Fields().ByName("amount")).Message()
	amount := units.Get(units.Descriptor().Fields().ByName("units")).Int()
	rec := &event.Record{Topic: "auctions.bids", Partition: 3, Offset: 42, Key: []byte("k1"),
		Timestamp: time.Unix(1700000000, 0), Headers: []event.Header{{Key: "region", Value: []byte("eu")}}}
	for _, tc := range []struct {
		when    string
		match   bool
		evalErr bool
	}{
		{"", true, false},
		{"event.amount.units == " + strconv.FormatInt(amount, 10), true, false},
		{"event.amount.units != " + strconv.FormatInt(amount, 10), false, false},
		{`kafka.topic == "auctions.bids" && kafka.partition == 3 && kafka.offset == 42`, true, false},
		{`kafka.key == "k1" && kafka.headers["region"] == "eu"`, true, false},
		{`kafka.timestamp > timestamp("2023-01-01T00:00:00Z")`, true, false},
		{`kafka.headers["missing"] == "x"`, false, true},
		{`has(event.max_auto_bid) || !has(event.max_auto_bid)`, true, false},
	} {
		cfg := &config.Config{}
		routes, errs := routing.Compile([]config.Route{{Sink: "s", When: tc.when}}, []protoreflect.MessageDescriptor{ct.Descriptor()}, "pipelines[0]", cfg)
		if len(errs) > 0 {
			t.Fatalf("%q: %v", tc.when, errs)
		}
		got, err := routes[0].Match(&expr.Activation{Event: ev, Record: rec})
		if (err != nil) != tc.evalErr || got != tc.match {
			t.Errorf("%q: match=%v err=%v, want match=%v err=%v", tc.when, got, err, tc.match, tc.evalErr)
		}
		if routes[0].Unconditional() != (tc.when == "") {
			t.Errorf("%q: Unconditional() = %v", tc.when, routes[0].Unconditional())
		}
	}
}

func TestCompile_rejects_non_bool_and_unknown_fields(t *testing.T) {
	reg := registry(t)
	ct, _ := reg.Lookup(eventgen.BidPlaced)
	cfg := &config.Config{ValuePositions: map[string]config.Position{
		"pipelines[0].routes[0].when": {File: "f.yaml", Line: 7, Col: 15},
		"pipelines[0].routes[1].when": {File: "f.yaml", Line: 9, Col: 16},
	}}
	_, errs := routing.Compile([]config.Route{
		{Sink: "s", When: "event.quantity"},
		{Sink: "s", When: "event.nope == 1"},
	}, []protoreflect.MessageDescriptor{ct.Descriptor()}, "pipelines[0]", cfg)
	if len(errs) != 2 {
		t.Fatalf("want 2 errors, got %v", errs)
	}
	if errs[0].Pos.Line != 7 || errs[0].Pos.Col != 15 || errs[1].Pos.Line != 9 || errs[1].Pos.Col != 21 {
		t.Fatalf("positions: %v", errs)
	}
}
