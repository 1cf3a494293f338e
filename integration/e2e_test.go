package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/internal/telemetry"
	"github.com/switchyard-dev/switchyard/pipelines"
	"github.com/switchyard-dev/switchyard/sinks"
)

// produced is what a test produced, by expected outcome.
type produced struct {
	emails  map[string]bool // bidder_email of every event (PII marked HASH)
	valid   map[string]bool // event_id of valid events
	large   map[string]bool // valid events with amount.units >= 1000
	invalid map[string]bool // "topic/partition/offset" of invalid and undecodable events
}

// produceBids produces n BidPlaced events to topic, every 50th invalid and every 97th
// undecodable, and returns what was produced.
func produceBids(t *testing.T, topic string, n int, seed uint64) produced {
	t.Helper()
	reg, err := contract.Load(repoRootContracts())
	if err != nil {
		t.Fatal(err)
	}
	gen, err := eventgen.New(reg, eventgen.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	cl := kafka.NewClient(t, kgo.DefaultProduceTopic(topic))
	defer cl.Close()
	p := produced{emails: map[string]bool{}, valid: map[string]bool{}, large: map[string]bool{}, invalid: map[string]bool{}}
	var recs []*kgo.Record
	var kinds []eventgen.Event
	for i := range n {
		kind := eventgen.Valid
		switch {
		case i%97 == 96:
			kind = eventgen.Undecodable
		case i%50 == 49:
			kind = eventgen.Invalid
		}
		ev, err := gen.Make(eventgen.BidPlaced, kind, contract.Confluent)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: ev.Payload, Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte{0, 1, 2}}}})
		kinds = append(kinds, ev)
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		ev := kinds[i]
		if ev.Message != nil {
			if e := ev.Message.Get(ev.Message.Descriptor().Fields().ByName("bidder_email")).String(); e != "" {
				p.emails[e] = true
			}
		}
		if ev.Kind != eventgen.Valid {
			p.invalid[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)] = true
			continue
		}
		id := bidID(ev)
		p.valid[id] = true
		amount := ev.Message.Get(ev.Message.Descriptor().Fields().ByName("amount")).Message()
		if amount.Get(amount.Descriptor().Fields().ByName("units")).Int() >= 1000 {
			p.large[id] = true
		}
	}
	return p
}

func bidID(ev eventgen.Event) string {
	return ev.Message.Get(ev.Message.Descriptor().Fields().ByName("event_id")).String()
}

func repoRootContracts() string { return repoRoot() + "/contracts" }

// eventIDs decodes raw protobuf BidPlaced values and returns their event ids with counts.
func eventIDs(t *testing.T, recs []*kgo.Record) map[string]int {
	t.Helper()
	reg, err := contract.Load(repoRootContracts())
	if err != nil {
		t.Fatal(err)
	}
	ct, err := reg.Lookup(eventgen.BidPlaced)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range recs {
		m := ct.New()
		if err := proto.Unmarshal(r.Value, m); err != nil {
			t.Fatalf("downstream record at %s/%d/%d is not a raw BidPlaced: %v", r.Topic, r.Partition, r.Offset, err)
		}
		out[m.Get(m.Descriptor().Fields().ByName("event_id")).String()]++
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

const bidsConfig = `
kafka:
  brokers: ["${BROKERS}"]
contracts:
  path: ${CONTRACTS}
pii:
  hash_key: integration-test-key
admin:
  address: ""
pipelines:
  - name: bids
    owner: {team: auctions, contact: "#auctions"}
    source:
      topics: [%[1]s]
      group: %[1]s-group
      max_batch: 200
    contract:
      encoding: confluent
      message: auctions.v1.BidPlaced
    sinks:
      - name: bus
        kafka: {topic: %[1]s-out}
        batch: {max_rows: 500, interval: 20ms}
      - name: audit
        kafka: {topic: %[1]s-audit}
        batch: {max_rows: 500, interval: 20ms}
        retry: {max_attempts: 2, initial_backoff: 10ms, max_backoff: 50ms}
    routes:
      - sink: bus
      - name: large
        when: event.amount.units >= 1000
        sink: bus
        topic: %[1]s-large
      - sink: audit
    dead_letter:
      topic: %[1]s-dlq
`

func startEngine(t *testing.T, yaml string, newSink func(context.Context, *config.Sink, pipelines.SinkDeps) (sinks.Sink, error)) (*pipelines.Engine, *telemetry.Metrics) {
	t.Helper()
	cfg, err := config.Load(writeConfig(t, yaml))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := contract.Load(cfg.Contracts.Path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pipelines.Compile(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	m := telemetry.New()
	engineLog = &syncBuffer{}
	eng, err := pipelines.New(c, pipelines.Options{Logger: slog.New(slog.NewTextHandler(testLogWriter{t, engineLog}, nil)), Metrics: m, NewSink: newSink})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, eng) })
	return eng, m
}

// testLogWriter sends the engine's log to the test log and keeps a copy for assertions.
type testLogWriter struct {
	t   *testing.T
	buf *syncBuffer
}

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	if w.buf != nil {
		w.buf.Write(p)
	}
	return len(p), nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) {
	s.mu.Lock()
	s.b = append(s.b, p...)
	s.mu.Unlock()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// engineLog is the log of the engine the last startEngine call started.
var engineLog *syncBuffer

// shutdown stops eng; a second call is a no-op.
func shutdown(t *testing.T, eng *pipelines.Engine) {
	t.Helper()
	if !eng.Ready() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := eng.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// outageSink wraps a real sink and fails every write while down is set.
type outageSink struct {
	sinks.Sink
	down *atomic.Bool
}

func (s outageSink) Write(ctx context.Context, recs []*event.Record) error {
	if s.down.Load() {
		return errors.New("injected outage: connection refused")
	}
	return s.Sink.Write(ctx, recs)
}

func TestEndToEnd_routes_dead_letters_and_survives_a_sink_outage(t *testing.T) {
	topic := uniqueName(t, "bids")
	kafka.CreateTopic(t, topic, 4)
	var auditDown atomic.Bool
	auditDown.Store(true)
	var mu sync.Mutex
	eng, m := startEngine(t, fmt.Sprintf(bidsConfig, topic), func(ctx context.Context, sc *config.Sink, deps pipelines.SinkDeps) (sinks.Sink, error) {
		s, err := pipelines.NewSink(ctx, sc, deps)
		if err != nil || sc.Name != "audit" {
			return s, err
		}
		mu.Lock()
		defer mu.Unlock()
		return outageSink{Sink: s, down: &auditDown}, nil
	})

	const n = 3000
	p := produceBids(t, topic, n, 7)

	// The audit sink is down; the bus sink must still land every valid event.
	out := readAll(t, topic+"-out", len(p.valid), time.Minute)
	ids := eventIDs(t, out)
	for id := range p.valid {
		if ids[id] != 1 {
			t.Fatalf("event %s landed %d times in %s-out while the audit sink was down", id, ids[id], topic)
		}
	}
	large := eventIDs(t, readAll(t, topic+"-large", len(p.large), time.Minute))
	if len(large) != len(p.large) {
		t.Fatalf("large-bids route: got %d events, want %d", len(large), len(p.large))
	}
	for id := range large {
		if !p.large[id] {
			t.Fatalf("event %s is not a large bid but was routed to %s-large", id, topic)
		}
	}

	// Invalid events reach the dead-letter topic once (not once per sink), with the reason.
	dlq := readAll(t, topic+"-dlq", len(p.invalid), time.Minute)
	seen := map[string]bool{}
	for _, r := range dlq {
		coord := dlqCoord(r)
		if !p.invalid[coord] {
			t.Fatalf("unexpected dead letter %s (class %s: %s)", coord, header(r, pipelines.HeaderClass), header(r, pipelines.HeaderMessage))
		}
		if seen[coord] {
			t.Fatalf("event %s dead-lettered twice", coord)
		}
		seen[coord] = true
		class := header(r, pipelines.HeaderClass)
		if class != "decode" && class != "framing" && class != "validate" {
			t.Fatalf("dead letter %s has class %q", coord, class)
		}
		if header(r, pipelines.HeaderPipeline) != "bids" || header(r, pipelines.HeaderMessage) == "" || header(r, "trace") != "\x00\x01\x02" {
			t.Fatalf("dead letter %s lacks its headers: %v", coord, r.Headers)
		}
		if class == "validate" && header(r, pipelines.HeaderContract) != eventgen.BidPlaced {
			t.Fatalf("dead letter %s names contract %q", coord, header(r, pipelines.HeaderContract))
		}
	}

	// bidder_email is marked pii = HASH: no raw address reaches a sink, a dead letter's
	// headers or the log (dead letters keep the original value bytes, by design).
	var dlqHeaders strings.Builder
	for _, r := range dlq {
		for _, h := range r.Headers {
			if strings.HasPrefix(h.Key, "switchyard.") {
				dlqHeaders.Write(h.Value)
				dlqHeaders.WriteByte('\n')
			}
		}
	}
	var outValues strings.Builder
	for _, r := range out {
		outValues.Write(r.Value)
	}
	for email := range p.emails {
		for where, text := range map[string]string{"the bus sink": outValues.String(), "dead-letter headers": dlqHeaders.String(), "the log": engineLog.String()} {
			if strings.Contains(text, email) {
				t.Fatalf("raw bidder_email %q appears in %s", email, where)
			}
		}
	}
	if len(p.emails) == 0 {
		t.Fatal("the generator produced no bidder emails to check")
	}

	// The audit sink comes back and catches up, without loss.
	auditDown.Store(false)
	// Handed-back batches may land twice (at-least-once), so read until every event is there,
	// not until the topic holds as many records as there are events.
	audit := eventIDs(t, readUntil(t, topic+"-audit", 2*time.Minute, func(recs []*kgo.Record) bool {
		return len(recs) >= len(p.valid) && len(eventIDs(t, recs)) >= len(p.valid)
	}))
	for id := range p.valid {
		if audit[id] == 0 {
			t.Fatalf("event %s never reached the audit sink after the outage", id)
		}
	}
	shutdown(t, eng)

	if got := counter(t, m.Consumed.WithLabelValues("bids")); got != n {
		t.Fatalf("switchyard_events_consumed_total = %v, want %d", got, n)
	}
	dead := m.DeadLetteredCount("bids", "decode") + m.DeadLetteredCount("bids", "framing") + m.DeadLetteredCount("bids", "validate")
	if dead != float64(len(p.invalid)) {
		t.Fatalf("switchyard_events_dead_lettered_total = %v, want %d", dead, len(p.invalid))
	}
	if got := counter(t, m.WriteErrors.WithLabelValues("bids", "audit")); got == 0 {
		t.Fatal("the audit outage was not counted in switchyard_sink_write_errors_total")
	}
}

func TestEndToEnd_shutdown_commits_so_a_restart_does_not_redeliver(t *testing.T) {
	topic := uniqueName(t, "bids")
	kafka.CreateTopic(t, topic, 2)
	cfg := fmt.Sprintf(bidsConfig, topic)
	eng, _ := startEngine(t, cfg, nil)
	p := produceBids(t, topic, 500, 11)
	readAll(t, topic+"-out", len(p.valid), time.Minute)
	readAll(t, topic+"-audit", len(p.valid), time.Minute)
	shutdown(t, eng)

	// A second run of the same groups finds nothing new to do.
	eng, m := startEngine(t, cfg, nil)
	time.Sleep(3 * time.Second) // give a wrongly uncommitted group time to re-consume
	shutdown(t, eng)
	if got := counter(t, m.Consumed.WithLabelValues("bids")); got != 0 {
		t.Fatalf("restart re-consumed %v events", got)
	}
	ids := eventIDs(t, readAll(t, topic+"-out", len(p.valid)+1, 5*time.Second))
	if len(ids) != len(p.valid) {
		t.Fatalf("%d distinct events downstream, want %d", len(ids), len(p.valid))
	}
	for id, c := range ids {
		if c != 1 {
			t.Fatalf("event %s landed %d times across a clean restart", id, c)
		}
	}
}
