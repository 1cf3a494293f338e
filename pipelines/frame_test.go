package pipelines_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/pipelines"
)

const framingConfig = `
kafka: {brokers: ["${BROKERS}"]}
contracts: {path: "${CONTRACTS}"${REGISTRY}}
pii: {hash_key: test-key}
pipelines:
  - name: p
    owner: {team: t, contact: c}
    source: {topics: [in], group: g}
    contract:
      encoding: confluent
      header:
        name: event-type
        values: {bid: auctions.v1.BidPlaced, order: orders.v1.OrderPaid}
      ${SCHEMA_IDS}
    sinks:
      - name: bus
        kafka: {topic: out}
        batch: {interval: 10ms}
    routes:
      - sink: bus
    dead_letter: {topic: dlq}
`

func framingYAML(registry, schemaIDs string) string {
	if registry != "" {
		registry = ", schema_registry: {url: " + registry + "}"
	}
	return strings.NewReplacer("${REGISTRY}", registry, "${SCHEMA_IDS}", schemaIDs).Replace(framingConfig)
}

// readDLQ reads n dead letters, keyed by the record key, with their class and message.
func (e *env) readDLQ(t *testing.T, n int) map[string][2]string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...), kgo.ConsumeTopics("dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[string][2]string{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(out) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var class, msg string
			for _, h := range r.Headers {
				switch h.Key {
				case pipelines.HeaderClass:
					class = string(h.Value)
				case pipelines.HeaderMessage:
					msg = string(h.Value)
				}
			}
			out[string(r.Key)] = [2]string{class, msg}
		})
	}
	return out
}

// TestEngine_dead_letters_frames_of_another_message_as_framing picks the contract by header
// and dead-letters, with class framing and what was found, frames whose index path or schema
// id does not fit the selected contract.
func TestEngine_dead_letters_frames_of_another_message_as_framing(t *testing.T) {
	e := newEnv(t, true, "in", "out", "dlq")
	_, m := e.start(t, framingYAML("", "schema_ids: [1, 2]"))
	gen, err := eventgen.New(e.reg, eventgen.Options{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	body := func(name string) []byte {
		ev, err := gen.Make(name, eventgen.Valid, contract.Raw)
		if err != nil {
			t.Fatal(err)
		}
		return ev.Payload
	}
	rec := func(key, typ string, value []byte) *kgo.Record {
		return &kgo.Record{Topic: "in", Key: []byte(key), Value: value, Headers: []kgo.RecordHeader{{Key: "event-type", Value: []byte(typ)}}}
	}
	recs := []*kgo.Record{
		rec("bid", "bid", contract.FrameConfluent(nil, 1, []int{0}, body(eventgen.BidPlaced))),
		rec("order", "order", contract.FrameConfluent(nil, 2, []int{0}, body(eventgen.OrderPaid))),
		// a nested message of the order (its first: the map entry of attributes), sent as an order
		rec("nested", "order", contract.FrameConfluent(nil, 1, []int{0, 0}, body(eventgen.OrderPaid))),
		rec("out-of-range", "bid", contract.FrameConfluent(nil, 1, []int{7}, body(eventgen.BidPlaced))),
		rec("unknown-id", "bid", contract.FrameConfluent(nil, 987654, []int{0}, body(eventgen.BidPlaced))),
	}
	if err := e.client.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "all events handled", func() bool { return e.committed(t, "g.bus", "in") == int64(len(recs)) })
	want := map[string][2]string{
		"nested":       {"framing", "decode framing: message index [0,0] selects orders.v1.OrderPaid.AttributesEntry (schema id 1), want [0] for orders.v1.OrderPaid"},
		"out-of-range": {"framing", "decode framing: message index [7] is out of range in auctions/v1/bid_placed.proto (schema id 1), want [0] for auctions.v1.BidPlaced"},
		"unknown-id":   {"framing", "decode framing: schema id 987654 is not one of the accepted schema_ids [1, 2]"},
	}
	got := e.readDLQ(t, len(want))
	for k, w := range want {
		if got[k] != w {
			t.Errorf("dead letter %s: class and message %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("dead letters %v, want %v", got, want)
	}
	if v := m.DeadLetteredCount("p", "framing"); v != 3 {
		t.Errorf("switchyard_events_dead_lettered_total{reason=framing} = %v, want 3", v)
	}
	if n := e.count(t, "out"); n != 2 {
		t.Errorf("%d events landed, want the 2 valid ones", n)
	}
}

// TestEngine_registry_outage_retries_the_batch_instead_of_dead_lettering: while the schema
// registry answers 503, no event lands and none is dead-lettered; once it answers, all land.
func TestEngine_registry_outage_retries_the_batch_instead_of_dead_lettering(t *testing.T) {
	schema, err := os.ReadFile(filepath.Join(contractsDir(), "auctions", "v1", "bid_placed.proto"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	down, asked := true, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		switch {
		case r.URL.Path != "/schemas/ids/1":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error_code": 40403, "message": "Schema not found"}`))
		case down:
			asked++
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error_code": 50003, "message": "Error while forwarding the request to the leader"}`))
		default:
			_ = json.NewEncoder(w).Encode(map[string]string{"schemaType": "PROTOBUF", "schema": string(schema)})
		}
	}))
	defer srv.Close()

	e := newEnv(t, true, "in", "out", "dlq")
	_, m := e.start(t, framingYAML(srv.URL, ""))
	e.produce(t, "in", 20, func(int) eventgen.Kind { return eventgen.Valid }, func(int) []kgo.RecordHeader {
		return []kgo.RecordHeader{{Key: "event-type", Value: []byte("bid")}}
	})
	waitFor(t, 20*time.Second, "the batch to be retried against the registry", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return asked >= 2
	})
	if n := e.committed(t, "g.bus", "in"); n != 0 {
		t.Fatalf("%d offsets committed while the registry was down", n)
	}
	if n := e.count(t, "dlq"); n != 0 {
		t.Fatalf("%d events dead-lettered because the registry was down", n)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	waitFor(t, 30*time.Second, "all events handled", func() bool { return e.committed(t, "g.bus", "in") == 20 })
	if n := e.count(t, "out"); n != 20 {
		t.Fatalf("%d events landed, want 20", n)
	}
	if n := e.count(t, "dlq"); n != 0 {
		t.Fatalf("%d events dead-lettered", n)
	}
	if v := m.DeadLetteredCount("p", "framing") + m.DeadLetteredCount("p", "decode"); v != 0 {
		t.Fatalf("dead-lettered counter = %v", v)
	}
}
