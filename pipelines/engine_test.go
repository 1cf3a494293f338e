package pipelines_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/telemetry"
	"github.com/switchyard-dev/switchyard/pipelines"
	"github.com/switchyard-dev/switchyard/sinks"
	_ "github.com/switchyard-dev/switchyard/sinks/all" // the sink kinds the test configurations use
)

// These tests run the engine against kfake, franz-go's in-process Kafka, for behaviours that
// need fault injection at the broker (a missing dead-letter topic). The end-to-end tests
// against Apache Kafka live in integration/.

func contractsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(filepath.Dir(file)), "contracts")
}

type env struct {
	cluster *kfake.Cluster
	client  *kgo.Client
	adm     *kadm.Client
	reg     *contract.Registry
	logs    *logBuffer // the engine's log, text format
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newEnv(t *testing.T, autoCreate bool, topics ...string) *env {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(2, topics...)}
	if autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	reg, err := contract.Load(contractsDir())
	if err != nil {
		t.Fatal(err)
	}
	return &env{cluster: c, client: cl, adm: kadm.NewClient(cl), reg: reg, logs: &logBuffer{}}
}

func (e *env) start(t *testing.T, yaml string) (*pipelines.Engine, *telemetry.Metrics) {
	t.Helper()
	return e.startWith(t, yaml, nil)
}

func (e *env) startWith(t *testing.T, yaml string, newSink func(context.Context, *config.Sink, pipelines.SinkDeps) (sinks.Sink, error)) (*pipelines.Engine, *telemetry.Metrics) {
	t.Helper()
	yaml = strings.ReplaceAll(yaml, "${BROKERS}", e.cluster.ListenAddrs()[0])
	yaml = strings.ReplaceAll(yaml, "${CONTRACTS}", contractsDir())
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	c, err := pipelines.Compile(cfg, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	m := telemetry.New()
	eng, err := pipelines.New(c, pipelines.Options{Metrics: m, Logger: slog.New(slog.NewTextHandler(e.logs, nil)), NewSink: newSink})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := eng.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return eng, m
}

// produce sends n events of BidPlaced (kind chosen per index) with an optional header.
func (e *env) produce(t *testing.T, topic string, n int, kind func(i int) eventgen.Kind, header func(i int) []kgo.RecordHeader) {
	t.Helper()
	gen, err := eventgen.New(e.reg, eventgen.Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range n {
		ev, err := gen.Make(eventgen.BidPlaced, kind(i), contract.Confluent)
		if err != nil {
			t.Fatal(err)
		}
		r := &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: ev.Payload}
		if header != nil {
			r.Headers = header(i)
		}
		recs = append(recs, r)
	}
	if err := e.client.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func (e *env) count(t *testing.T, topic string) int64 {
	t.Helper()
	ends, err := e.adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		return 0
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			n += o.Offset
		}
	})
	return n
}

func (e *env) committed(t *testing.T, group, topic string) int64 {
	t.Helper()
	offs, err := e.adm.FetchOffsets(context.Background(), group)
	if err != nil {
		return 0
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			n += o.At
		}
	})
	return n
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

const routeConfig = `
kafka: {brokers: ["${BROKERS}"]}
contracts: {path: "${CONTRACTS}"}
pii: {hash_key: test-key}
admin: {address: ""}
pipelines:
  - name: p
    owner: {team: t, contact: c}
    source: {topics: [in], group: g, max_batch: 50}
    contract: {message: auctions.v1.BidPlaced}
    sinks:
      - name: bus
        kafka: {topic: out}
        batch: {interval: 10ms}
    routes:
      - name: flagged
        when: kafka.headers["route"] == "yes"
        sink: bus
      - name: none
        when: event.quantity < 0
        sink: bus
        topic: never
    dead_letter: {topic: dlq}
`

func TestEngine_route_errors_dead_letter_and_unmatched_are_counted(t *testing.T) {
	e := newEnv(t, true, "in", "out", "dlq")
	_, m := e.start(t, routeConfig)
	const n = 100
	// Every third event lacks the header: evaluating the condition fails (no such key) and the
	// event is dead-lettered with class route. Events with route=no match nothing.
	e.produce(t, "in", n, func(int) eventgen.Kind { return eventgen.Valid }, func(i int) []kgo.RecordHeader {
		switch i % 3 {
		case 0:
			return nil
		case 1:
			return []kgo.RecordHeader{{Key: "route", Value: []byte("yes")}}
		}
		return []kgo.RecordHeader{{Key: "route", Value: []byte("no")}}
	})
	waitFor(t, 20*time.Second, "all events handled", func() bool { return e.committed(t, "g.bus", "in") == n })
	if got, want := e.count(t, "out"), int64(33); got != want {
		t.Fatalf("%d events routed, want %d", got, want)
	}
	if got := m.DeadLetteredCount("p", "route"); got != 34 {
		t.Fatalf("dead-lettered for route errors: %v, want 34", got)
	}
	if got := value(t, m.Unrouted.WithLabelValues("p")); got != 33 {
		t.Fatalf("unrouted: %v, want 33", got)
	}
	if got := e.count(t, "dlq"); got != 34 {
		t.Fatalf("dead-letter topic holds %d records, want 34", got)
	}
}

const dlqConfig = `
kafka: {brokers: ["${BROKERS}"]}
contracts: {path: "${CONTRACTS}"}
pii: {hash_key: test-key}
admin: {address: ""}
pipelines:
  - name: p
    owner: {team: t, contact: c}
    source: {topics: [in], group: g, max_batch: 10}
    contract: {message: auctions.v1.BidPlaced}
    sinks:
      - name: bus
        kafka: {topic: out}
        batch: {interval: 10ms}
        retry: {max_attempts: 1}
    routes:
      - sink: bus
    dead_letter: {topic: dlq}
`

// A dead-letter topic that cannot be written stops its partition from committing; nothing is
// lost, and the partition catches up once the dead letter lands. Meanwhile every failed write
// is counted and logged at ERROR with the batch's partition and offsets, and the batch's
// repeated redeliveries at WARN.
func TestEngine_unwritable_dead_letter_topic_stops_commits_until_it_lands(t *testing.T) {
	e := newEnv(t, false, "in", "out") // no dlq topic and no auto-creation
	_, m := e.start(t, dlqConfig)
	const n = 40
	e.produce(t, "in", n, func(i int) eventgen.Kind {
		if i == 5 {
			return eventgen.Invalid
		}
		return eventgen.Valid
	}, nil)
	// The batch holding the invalid event cannot complete: its partition stays behind, and is
	// redelivered until the third delivery fails too.
	redelivered := regexp.MustCompile(`level=WARN msg="batch redelivered again" pipeline=p sink=bus topic=in partition=\d first_offset=\d+ last_offset=\d+ attempt=3 suppressed=0 error=`)
	waitFor(t, time.Minute, "a WARN line for the third failed delivery", func() bool { return redelivered.MatchString(e.logs.String()) })
	if got := e.committed(t, "g.bus", "in"); got >= n {
		t.Fatalf("committed %d of %d offsets although a dead letter could not be written", got, n)
	}
	failed := regexp.MustCompile(`level=ERROR msg="dead-letter write failed" pipeline=p sink=bus topic=in partition=(\d) first_offset=(\d+) last_offset=(\d+) attempt=1 suppressed=0 dead_letters=1 dead_letter_topic=dlq error=`)
	line := failed.FindStringSubmatch(e.logs.String())
	if line == nil {
		t.Fatalf("no ERROR line for the failed dead-letter write with its partition and offsets; log:\n%s", e.logs)
	}
	first, _ := strconv.Atoi(line[2])
	last, _ := strconv.Atoi(line[3])
	if first > last || last-first >= 10 {
		t.Fatalf("dead-letter failure names offsets %d..%d, want one batch of at most 10 (max_batch)", first, last)
	}
	// Later failures of the same partition within telemetry.LogInterval are counted, not
	// logged: the lines are at least that far apart, and fewer than the failures.
	stamps := regexp.MustCompile(`time=(\S+) level=ERROR msg="dead-letter write failed"`).FindAllStringSubmatch(e.logs.String(), -1)
	for i := 1; i < len(stamps); i++ {
		a, _ := time.Parse(time.RFC3339Nano, stamps[i-1][1])
		b, _ := time.Parse(time.RFC3339Nano, stamps[i][1])
		if b.Sub(a) < telemetry.LogInterval {
			t.Fatalf("dead-letter failure lines %v apart, want at least the rate-limit interval %v", b.Sub(a), telemetry.LogInterval)
		}
	}
	if got := value(t, m.DLQFailures.WithLabelValues("p")); got < 3 || int(got) <= len(stamps) {
		t.Fatalf("switchyard_dead_letter_write_failures_total = %v for %d lines, want >= 3 and more than the lines", got, len(stamps))
	}
	if got := value(t, m.Redelivered.WithLabelValues("p", "bus")); got < 3 {
		t.Fatalf("switchyard_batches_redelivered_total = %v, want >= 3", got)
	}
	if _, err := e.adm.CreateTopic(context.Background(), 1, 1, nil, "dlq"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the partition to catch up", func() bool { return e.committed(t, "g.bus", "in") == n })
	if got := e.count(t, "dlq"); got != 1 {
		t.Fatalf("dead-letter topic holds %d records, want 1", got)
	}
	if got := e.count(t, "out"); got < n-1 {
		t.Fatalf("%d events landed, want at least %d", got, n-1)
	}
}

const transformConfig = `
kafka: {brokers: ["${BROKERS}"]}
contracts: {path: "${CONTRACTS}"}
pii: {hash_key: test-key}
admin: {address: ""}
pipelines:
  - name: p
    owner: {team: t, contact: c}
    source: {topics: [in], group: g, max_batch: 50}
    contract: {message: auctions.v1.BidPlaced}
    sinks:
      - name: bus
        kafka: {topic: out, encoding: json, key: auction_id}
        batch: {interval: 10ms}
    routes:
      - sink: bus
        transforms:
          - flatten: true
          - select: [event_id, auction_id, bidder_email, amount_units, quantity]
          - set: {ratio: "100 / (event.quantity - 1)"}
    dead_letter: {topic: dlq}
`

// TestEngine_applies_transforms_and_dead_letters_their_failures runs a route whose transforms
// flatten, select, hash the PII field and derive a value that fails for quantity 1.
func TestEngine_applies_transforms_and_dead_letters_their_failures(t *testing.T) {
	e := newEnv(t, true, "in", "out", "dlq")
	_, m := e.start(t, transformConfig)
	const n = 60
	e.produce(t, "in", n, func(int) eventgen.Kind { return eventgen.Valid }, nil)
	waitFor(t, 20*time.Second, "all events handled", func() bool { return e.committed(t, "g.bus", "in") == n })
	failed := m.DeadLetteredCount("p", "transform")
	if failed == 0 {
		t.Fatal("no event had quantity 1: the transform failure path was not exercised")
	}
	if got := e.count(t, "out"); got+int64(failed) != n {
		t.Fatalf("%d transformed + %v dead-lettered, want %d", got, failed, n)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...), kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fs := cl.PollFetches(ctx)
	if fs.NumRecords() == 0 {
		t.Fatal("no transformed record")
	}
	r := fs.Records()[0]
	var got map[string]any
	if err := json.Unmarshal(r.Value, &got); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	for _, k := range []string{"eventId", "auctionId", "bidderEmail", "amountUnits", "ratio"} {
		if _, ok := got[k]; !ok {
			t.Fatalf("output lacks %s: %s", k, r.Value)
		}
	}
	if len(got) > 6 {
		t.Fatalf("select kept more than the selected fields: %s", r.Value)
	}
	if email := got["bidderEmail"].(string); strings.Contains(email, "@") || len(email) != 64 {
		t.Fatalf("bidder_email is not an HMAC-SHA256 hex digest: %q", email)
	}
	if string(r.Key) != got["auctionId"] {
		t.Fatalf("key %q is not the auction id %v", r.Key, got["auctionId"])
	}
}

// flakyOpen is a real sink whose Open fails the first n times, as a sink's database would
// while it is still starting.
type flakyOpen struct {
	sinks.Sink
	fails *atomic.Int32
}

func (f flakyOpen) Open(context.Context) error {
	if f.fails.Add(-1) >= 0 {
		return errors.New("dial tcp 127.0.0.1:9000: connection refused")
	}
	return nil
}

func TestEngine_retries_a_sink_that_failed_to_open(t *testing.T) {
	e := newEnv(t, true, "in", "out", "dlq")
	var fails atomic.Int32
	fails.Store(2)
	_, m := e.startWith(t, dlqConfig, func(ctx context.Context, sc *config.Sink, deps pipelines.SinkDeps) (sinks.Sink, error) {
		s, err := pipelines.NewSink(ctx, sc, deps)
		if err != nil {
			return nil, err
		}
		return flakyOpen{Sink: s, fails: &fails}, nil
	})
	e.produce(t, "in", 20, func(int) eventgen.Kind { return eventgen.Valid }, nil)
	waitFor(t, 30*time.Second, "the sink to open and land every event", func() bool { return e.count(t, "out") == 20 })
	if fails.Load() >= 0 {
		t.Fatalf("Open was not retried until it succeeded (remaining failures %d)", fails.Load())
	}
	var up dto.Metric
	if err := m.SinkUp.WithLabelValues("p", "bus").Write(&up); err != nil || up.GetGauge().GetValue() != 1 {
		t.Fatalf("switchyard_sink_up = %v, want 1", up.GetGauge().GetValue())
	}
}

const headerConfig = `
kafka: {brokers: ["${BROKERS}"]}
contracts: {path: "${CONTRACTS}"}
pii: {hash_key: test-key}
admin: {address: ""}
pipelines:
  - name: p
    owner: {team: t, contact: c}
    source: {topics: [in], group: g}
    contract:
      encoding: raw
      header:
        name: event-type
        values: {bid: auctions.v1.BidPlaced, view: livestream.v1.ViewStarted}
    sinks:
      - name: bus
        kafka: {topic: out, encoding: json}
        batch: {interval: 10ms}
    routes:
      - sink: bus
    dead_letter: {topic: dlq}
`

// TestEngine_picks_the_contract_by_header decodes each record with the contract its header
// names; a record without the header has no contract and is dead-lettered.
func TestEngine_picks_the_contract_by_header(t *testing.T) {
	e := newEnv(t, true, "in", "out", "dlq")
	_, m := e.start(t, headerConfig)
	gen, err := eventgen.New(e.reg, eventgen.Options{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range 30 {
		name, typ := eventgen.BidPlaced, "bid"
		if i%2 == 1 {
			name, typ = eventgen.ViewStarted, "view"
		}
		ev, err := gen.Make(name, eventgen.Valid, contract.Raw)
		if err != nil {
			t.Fatal(err)
		}
		r := &kgo.Record{Topic: "in", Value: ev.Payload, Headers: []kgo.RecordHeader{{Key: "event-type", Value: []byte(typ)}}}
		if i == 29 {
			r.Headers = nil
		}
		recs = append(recs, r)
	}
	if err := e.client.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "all events handled", func() bool { return e.committed(t, "g.bus", "in") == 30 })
	if got := m.DeadLetteredCount("p", "decode"); got != 1 {
		t.Fatalf("dead-lettered %v records without a contract, want 1", got)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...), kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	bids, views := 0, 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for bids+views < 29 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var ev map[string]any
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Fatal(err)
			}
			switch {
			case ev["auctionId"] != nil:
				bids++
			case ev["streamId"] != nil:
				views++
			default:
				t.Fatalf("output is neither a bid nor a view: %s", r.Value)
			}
		})
	}
	if bids != 15 || views != 14 {
		t.Fatalf("%d bids and %d views landed, want 15 and 14", bids, views)
	}
}
