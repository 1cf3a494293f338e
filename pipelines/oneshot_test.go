package pipelines_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/pipelines"
)

const oneShotConfig = `
kafka: {brokers: ["${BROKERS}"]}
contracts: {path: "${CONTRACTS}"}
pii: {hash_key: test-key}
admin: {address: ""}
pipelines:
  - name: p
    owner: {team: t, contact: c}
    source: {topics: [in], group: g}
    contract: {message: auctions.v1.BidPlaced}
    sinks:
      - name: bus
        kafka: {topic: out}
        batch: {interval: 10ms}
      - name: eos
        kafka: {topic: out-eos, exactly_once: true}
        batch: {interval: 10ms}
    routes:
      - sink: bus
      - sink: eos
    dead_letter: {topic: dlq}
`

// readCommitted counts the records of topic a read_committed reader sees.
func (e *env) readCommitted(t *testing.T, topic string) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n := 0
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return n
		}
		n += fs.NumRecords()
	}
}

// TestOneShot_lands_in_the_chosen_sinks_only_and_dead_letters_nothing runs records through
// a one-shot of the pipeline: valid events land in every chosen sink (the exactly-once kafka
// sink in a committed transaction of its own), invalid ones are reported by reason, nothing
// reaches the dead-letter topic, and a sink not chosen gets nothing.
func TestOneShot_lands_in_the_chosen_sinks_only_and_dead_letters_nothing(t *testing.T) {
	e := newEnv(t, true, "in", "out", "out-eos", "dlq")
	yaml := strings.NewReplacer("${BROKERS}", e.cluster.ListenAddrs()[0], "${CONTRACTS}", contractsDir()).Replace(oneShotConfig)
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	c, err := pipelines.Compile(cfg, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := eventgen.New(e.reg, eventgen.Options{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	valid := 0
	for i := range 40 {
		kind := eventgen.Valid
		if i%4 == 3 {
			kind = eventgen.Invalid
		} else {
			valid++
		}
		ev, err := gen.Make(eventgen.BidPlaced, kind, contract.Confluent)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: "in", Partition: int32(i % 2), Offset: int64(i / 2), Key: []byte(fmt.Sprint(i)), Value: ev.Payload})
	}
	ctx := context.Background()
	shot, err := pipelines.NewOneShot(ctx, c, "p", nil, pipelines.Options{Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := shot.Process(ctx, recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	landed, failed := 0, 0
	for i, o := range outs {
		switch {
		case o.Failed == "validate" && i%4 == 3:
			failed++
		case o.Failed == "" && len(o.Landed) == 2 && i%4 != 3:
			landed++
		default:
			t.Errorf("record %d: outcome %+v", i, o)
		}
	}
	if landed != valid || failed != len(recs)-valid {
		t.Fatalf("%d landed, %d failed; want %d and %d", landed, failed, valid, len(recs)-valid)
	}
	outs, err = shot.Process(ctx, recs, []string{"bus"})
	if err != nil {
		t.Fatal(err)
	}
	if outs[0].Failed != "" || len(outs[0].Landed) != 1 || outs[0].Landed[0] != "bus" {
		t.Fatalf("only bus: outcome %+v", outs[0])
	}
	if err := shot.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.readCommitted(t, "out"); n != 2*valid {
		t.Errorf("out holds %d records, want %d (two runs)", n, 2*valid)
	}
	if n := e.readCommitted(t, "out-eos"); n != valid {
		t.Errorf("out-eos holds %d committed records, want %d (one run)", n, valid)
	}
	if n := e.count(t, "dlq"); n != 0 {
		t.Errorf("a one-shot wrote %d dead letters", n)
	}
	if _, err := pipelines.NewOneShot(ctx, c, "p", []string{"nope"}, pipelines.Options{}); err == nil || !strings.Contains(err.Error(), `no sink "nope"`) {
		t.Errorf("unknown sink: %v", err)
	}
}
