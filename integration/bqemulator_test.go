package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/twmb/franz-go/pkg/kadm"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/switchyard-dev/switchyard/integration/harness"
	"github.com/switchyard-dev/switchyard/internal/bqemu"
)

// The emulator tests run the daemon against bqemulator, a BigQuery emulator this repository
// did not write, and read what landed back with SQL through its REST API. The emulator
// cannot store RECORD columns (docs/sinks.md lists its gaps), so the route flattens the
// contract's singular messages into columns (total -> total_units, ...) and drops the two
// repeated-message fields; everything else of orders.v1.OrderPaid lands.

// emuRoute is the route of bqConfig for the emulator: a flat table.
const emuRoute = `      - sink: warehouse
        transforms:
          - flatten: true
          - drop: [items, attributes]`

// emuSink is a bigquery sink on the emulator, exactly once, partitioned and clustered.
const emuSink = `      - name: warehouse
        bigquery:
          project: %s
          dataset: %s
          endpoint: %s
          grpc_endpoint: %s
          insecure: true
          create_table: true
          clustering: [_topic, _partition]
          exactly_once: true`

// emuQuery runs sql on the emulator through jobs.query and returns every row.
func emuQuery(t *testing.T, client *bigquery.Client, sql string) [][]bigquery.Value {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	it, err := client.Query(sql).Read(ctx)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	var out [][]bigquery.Value
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatalf("query %q: %v", sql, err)
		}
		out = append(out, row)
	}
}

// caughtUp reports whether group has committed the end offset of every partition of topic.
func caughtUp(t *testing.T, adm *kadm.Client, group, topic string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets of group %s: %v", group, err)
	}
	done := true
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(topic, o.Partition)
		done = done && ok && c.At >= o.Offset
	})
	return done
}

// TestBQEmulator_sigkill_exactly_once kills the daemon with SIGKILL while it appends to a
// bqemulator table through exactly-once write streams (and once during start-up), restarts
// it each time, and reads the table back with SQL: every valid event exactly once, at the
// Kafka coordinates it was produced at, and every invalid one dead-lettered.
func TestBQEmulator_sigkill_exactly_once(t *testing.T) {
	const (
		// The emulator serves at most 6 AppendRows streams at once (one thread each from a
		// pool of cpu+4) and does not free those of a killed daemon, so the topic has one
		// partition (one exactly-once stream per daemon run) and the daemon runs 1+kills times.
		kills = 3
		rate  = 300 // events/s
	)
	emu := harness.StartBQEmulator(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bqemulator log %s:\n%s", emu.LogPath(), tail(emu.LogPath(), 40))
		}
	})
	ctx := context.Background()
	client, err := bigquery.NewClient(ctx, bqemu.Project, option.WithEndpoint(emu.RESTEndpoint()), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Dataset(bqDataset).Create(ctx, &bigquery.DatasetMetadata{Location: "US"}); err != nil {
		t.Fatalf("create dataset on the emulator: %v", err)
	}
	topic := uniqueName(t, "orders")
	kafka.CreateTopic(t, topic, 1)
	sink := fmt.Sprintf(emuSink, bqemu.Project, bqDataset, emu.RESTEndpoint(), emu.GRPCAddr())
	config := writeConfig(t, fmt.Sprintf(bqConfig, topic, sink, emuRoute))
	dir := logDir(t)
	group := topic + "-group.warehouse"
	landedLabels := []string{`pipeline="orders"`, `sink="warehouse"`}

	load := startOrderLoad(t, topic, rate, 303)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 3))
	t.Logf("kill timing seed %d", seed)
	for k := range kills {
		logPath := filepath.Join(dir, fmt.Sprintf("daemon-%02d.log", k+1))
		d := spawnBQDaemon(t, config, logPath)
		phase, started := "start-up", time.Now()
		if k == 1 {
			time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		} else {
			phase = "appends"
			if err := d.waitRunning(t, time.Minute); err != nil {
				d.kill()
				t.Fatalf("run %d: %v; log %s:\n%s", k+1, err, logPath, tail(logPath, 30))
			}
			// The emulator may not be queried while it flushes appends, so progress is read
			// from the daemon's metrics.
			waitFor(t, time.Minute, "rows landing", func() bool { return d.metric(t, "switchyard_events_landed_total", landedLabels...) > 0 })
			time.Sleep(time.Duration(200+rng.IntN(1000)) * time.Millisecond)
		}
		d.kill()
		// An append the killed daemon had in flight can still be applied after the next
		// owner read the table, and then lands twice: the documented limit of exactly_once
		// (docs/sinks.md), whose window is normally closed by the group's session timeout.
		// The emulator applies appends slowly, so wait a little before handing the
		// partition over at once.
		time.Sleep(3 * time.Second)
		evictGroupMembers(t, group)
		t.Logf("kill %d/%d during %s after %v", k+1, kills, phase, time.Since(started).Round(time.Millisecond))
	}
	load.Stop(t)
	nValid, nInvalid := load.Produced()
	t.Logf("produced %d valid and %d invalid events at about %d/s", nValid, nInvalid, rate)

	d := startBQDaemon(t, config, filepath.Join(dir, "daemon-final.log"))
	adm := kadm.NewClient(kafka.NewClient(t))
	waitFor(t, 2*time.Minute, "the group to commit every produced offset", func() bool { return caughtUp(t, adm, group, topic) })
	d.terminate(t)

	rows := emuQuery(t, client, fmt.Sprintf("SELECT event_id, _topic, _partition, _offset, order_id, total_units, _schema FROM `%s.%s.%s`",
		bqemu.Project, bqDataset, orderTable))
	counts := map[string]int{}
	for i, r := range rows {
		id, _ := r[0].(string)
		c, ok := load.valid[id]
		switch {
		case !ok:
			t.Fatalf("row %d: event_id %q was not produced as a valid event (row %v)", i, id, r)
		case r[1] != topic || r[2] != int64(c.partition) || r[3] != c.offset:
			t.Fatalf("row %d (event %s): metadata %v/%v/%v, produced at %s/%d/%d", i, id, r[1], r[2], r[3], topic, c.partition, c.offset)
		case r[4] != c.orderID || r[5] != c.totalUnits || r[6] != "orders.v1.OrderPaid":
			t.Fatalf("row %d (event %s): order_id %v total_units %v _schema %v, produced %s and %d", i, id, r[4], r[5], r[6], c.orderID, c.totalUnits)
		}
		counts[id]++
	}
	dlq := readDeadLetters(t, topic+"-dlq", load.invalid)
	checkNoneLost(t, fmt.Sprintf("exactly_once on bqemulator after %d SIGKILLs", kills), counts, load.valid, load.invalid, dlq)
	if dups := duplicates(counts); dups > 0 {
		var ids []string
		for id, c := range counts {
			if c > 1 {
				ids = append(ids, fmt.Sprintf("%s x%d", id, c))
			}
		}
		t.Fatalf("the table holds %d duplicate rows after %d SIGKILLs (first: %v); logs in %s", dups, kills, ids[:min(5, len(ids))], dir)
	}
	t.Logf("zero lost, zero duplicates after %d SIGKILLs: %d valid events read back with SQL, %d invalid in %d dead letters",
		kills, nValid, nInvalid, len(dlq))
}
