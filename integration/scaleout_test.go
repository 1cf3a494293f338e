package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/integration/harness"
)

// scaleOutConfig is one pipeline from %[1]s to three sinks, each its own lane and so its own
// consumer group: "olap" (ClickHouse at %[2]s, de-duplicating by source coordinates), "bus"
// (kafka, exactly_once) and "plain" (kafka, at least once, whose duplicates are counted).
// %[3]s is the instance id (static membership). The session timeout is the broker's minimum
// (group.min.session.timeout.ms, 6s), so that a stopped instance is evicted quickly.
const scaleOutConfig = `
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
      drain_timeout: 10s
      session_timeout: 6s
      instance_id: %[3]s
      max_batch: 500
    contract:
      encoding: confluent
      message: auctions.v1.BidPlaced
    sinks:
      - name: olap
        batch: {max_rows: 5000, interval: 100ms}
        retry: {initial_backoff: 50ms, max_backoff: 1s}
        clickhouse:
          addresses: ["%[2]s"]
          create_table: true
          insert_timeout: 5s # below drain_timeout (docs/scaling.md)
      - name: bus
        kafka: {topic: %[1]s-out, exactly_once: true, transaction_timeout: 5s}
      - name: plain
        batch: {max_rows: 2000, interval: 50ms}
        kafka: {topic: %[1]s-plain}
    routes:
      - sink: olap
      - sink: bus
      - sink: plain
    dead_letter:
      topic: %[1]s-dlq
`

// scaleLanes are the sinks of scaleOutConfig: one consumer group each.
var scaleLanes = []string{"olap", "bus", "plain"}

// instance is one daemon of the group.
type instance struct {
	name string
	log  string
	d    *daemon
}

// rebalanceEvents counts an instance's "partitions assigned/revoked/lost" log lines per lane
// (sink), and returns the partitions each lane holds after the last of them.
func (in *instance) rebalanceEvents(t *testing.T) (assigned, revoked, lost map[string]int, owned map[string]map[string]bool) {
	t.Helper()
	assigned, revoked, lost, owned = map[string]int{}, map[string]int{}, map[string]int{}, map[string]map[string]bool{}
	b, _ := os.ReadFile(in.log)
	for _, line := range bytes.Split(b, []byte("\n")) {
		var rec struct {
			Msg, Sink  string
			Partitions []string
		}
		if json.Unmarshal(line, &rec) != nil || rec.Sink == "" {
			continue
		}
		if owned[rec.Sink] == nil {
			owned[rec.Sink] = map[string]bool{}
		}
		switch rec.Msg {
		case "partitions assigned":
			assigned[rec.Sink]++
			for _, p := range rec.Partitions {
				owned[rec.Sink][p] = true
			}
		case "partitions revoked":
			revoked[rec.Sink]++
			for _, p := range rec.Partitions {
				delete(owned[rec.Sink], p)
			}
		case "partitions lost; dropping them without committing":
			lost[rec.Sink]++
			for _, p := range rec.Partitions {
				delete(owned[rec.Sink], p)
			}
		}
	}
	return assigned, revoked, lost, owned
}

// waitOwning waits until every lane of in holds at least one partition.
func (in *instance) waitOwning(t *testing.T, within time.Duration) {
	t.Helper()
	waitFor(t, within, fmt.Sprintf("instance %s to own partitions in every lane (log %s)", in.name, in.log), func() bool {
		_, _, _, owned := in.rebalanceEvents(t)
		for _, l := range scaleLanes {
			if len(owned[l]) == 0 {
				return false
			}
		}
		return true
	})
}

// TestScaleOut_four_instances_with_kill_pause_and_rebalances runs three daemons in one consumer
// group (per lane) under load, landing into ClickHouse and into Kafka (exactly once, and at
// least once), then adds a fourth, SIGKILLs one and SIGSTOPs another past the session timeout
// while the group rebalances, and resumes it: the resumed instance finds its partitions gone
// and must not write for them. In the end nothing is lost in any sink, ClickHouse holds each
// valid event once (count() = uniqExact(_topic, _partition, _offset) = produced valid), the
// exactly-once topic read read_committed holds each once, and the at-least-once topic's
// duplicates are counted.
func TestScaleOut_four_instances_with_kill_pause_and_rebalances(t *testing.T) {
	start := time.Now()
	ch := harness.StartClickHouse(t)
	topic := uniqueName(t, "bids")
	kafka.CreateTopic(t, topic, 12)
	for _, suffix := range []string{"-out", "-plain", "-dlq"} {
		kafka.CreateTopic(t, topic+suffix, 4)
	}
	dir := filepath.Dir(daemonLogPath(t))
	newInstance := func(name string) *instance {
		in := &instance{name: name, log: filepath.Join(dir, name+".log")}
		in.d = startDaemon(t, writeConfig(t, fmt.Sprintf(scaleOutConfig, topic, ch.Addr(), "sy-"+name)), in.log)
		t.Cleanup(in.d.kill)
		return in
	}
	load := startBidLoad(t, topic, 1500, 13)

	a, b, c := newInstance("a"), newInstance("b"), newInstance("c")
	for _, in := range []*instance{a, b, c} {
		in.waitOwning(t, time.Minute)
	}
	t.Logf("three instances own partitions after %s", time.Since(start).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // landing steadily

	d := newInstance("d")
	d.waitOwning(t, time.Minute)
	t.Logf("fourth instance owns partitions after %s", time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Second)

	// B dies; as a static member its partitions wait out the session timeout. Meanwhile C is
	// paused mid-write; it is evicted too, and its partitions go to A and D.
	b.d.kill()
	t.Logf("SIGKILL b at %s", time.Since(start).Round(time.Millisecond))
	time.Sleep(1500 * time.Millisecond)
	if err := c.d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGSTOP c at %s", time.Since(start).Round(time.Millisecond))
	stopLog, _ := os.ReadFile(c.log)
	// Past the 6s session timeout of C, and until A and D took over every partition of every
	// lane (B's and C's included).
	time.Sleep(6 * time.Second)
	waitFor(t, time.Minute, "a and d to own all 12 partitions of every lane", func() bool {
		_, _, _, oa := a.rebalanceEvents(t)
		_, _, _, od := d.rebalanceEvents(t)
		for _, l := range scaleLanes {
			if len(oa[l])+len(od[l]) != 12 {
				return false
			}
		}
		return true
	})
	t.Logf("a and d own everything at %s; SIGCONT c", time.Since(start).Round(time.Millisecond))
	if err := c.d.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// C comes back believing it owns partitions, learns it does not, and rejoins.
	waitFor(t, time.Minute, "the resumed instance to notice its partitions are gone", func() bool {
		b, _ := os.ReadFile(c.log)
		return bytes.Contains(b[len(stopLog):], []byte(`"msg":"partitions lost; dropping them without committing"`))
	})
	c.waitOwning(t, time.Minute)
	t.Logf("c rejoined at %s", time.Since(start).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	load.stop(t)
	nValid, nInvalid := load.counts()
	t.Logf("produced %d valid and %d invalid events in %s", nValid, nInvalid, time.Since(start).Round(time.Millisecond))

	waitLanded(t, ch, nValid, 2*time.Minute, dir)
	if dups := ch.Query(t, "SELECT _partition, _offset, count() FROM "+chTable+" GROUP BY _partition, _offset HAVING count() > 1 ORDER BY _partition, _offset LIMIT 20"); len(dups) > 0 {
		t.Errorf("ClickHouse rows landed twice (partition, offset, count): %v; logs: %s", dups, dir)
	}
	checkLandedOnce(t, ch, topic, load)
	checkExactlyOnceTopic(t, topic+"-out", load, dir)
	plain := readUntil(t, topic+"-plain", 2*time.Minute, func(recs []*kgo.Record) bool {
		return len(recs) >= nValid && len(eventIDs(t, recs)) >= nValid
	})
	plainIDs := eventIDs(t, plain)
	dlq := readDeadLetters(t, topic+"-dlq", load.invalid)
	if lost := lostEvents(plainIDs, load.valid, load.invalid, dlq); len(lost) > 0 {
		t.Fatalf("%d events lost in the at-least-once topic or the dead letters (first: %v); logs: %s", len(lost), lost[:min(5, len(lost))], dir)
	}
	dlqSeen := map[string]int{}
	for _, r := range dlq {
		dlqSeen[dlqCoord(r)]++
	}
	for _, in := range []*instance{a, c, d} {
		in.d.terminate(t)
	}

	var summary []string
	for _, in := range []*instance{a, b, c, d} {
		as, rv, ls, _ := in.rebalanceEvents(t)
		summary = append(summary, fmt.Sprintf("%s: assigned %v revoked %v lost %v", in.name, as, rv, ls))
	}
	t.Logf("rebalance events per instance and lane: %v", summary)
	t.Logf("zero lost; ClickHouse %d rows = %d coordinates = %d valid; exactly-once topic %d once each; at-least-once topic %d records for %d events (%d duplicates); %d dead letters for %d invalid (%d duplicates); %s in all",
		nValid, nValid, nValid, nValid, len(plain), len(plainIDs), len(plain)-len(plainIDs), len(dlq), nInvalid, len(dlq)-len(dlqSeen), time.Since(start).Round(time.Millisecond))
}

// checkExactlyOnceTopic reads topic read_committed until it holds every valid event of l, and
// requires each exactly once and nothing else.
func checkExactlyOnceTopic(t *testing.T, topic string, l *bidLoad, logs string) {
	t.Helper()
	committed := []kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadCommitted())}
	out := readUntilWith(t, topic, 2*time.Minute, committed, func(recs []*kgo.Record) bool {
		return len(recs) >= len(l.valid) && len(eventIDs(t, recs)) >= len(l.valid)
	})
	ids := eventIDs(t, out)
	var lost, dups, unexpected []string
	for id := range l.valid {
		if ids[id] == 0 {
			lost = append(lost, id)
		}
	}
	for id, n := range ids {
		if n > 1 {
			dups = append(dups, id+"×"+strconv.Itoa(n))
		}
		if !l.valid[id] {
			unexpected = append(unexpected, id)
		}
	}
	if len(lost)+len(dups)+len(unexpected) > 0 || len(out) != len(l.valid) {
		t.Fatalf("read_committed %s: %d records for %d valid events; %d lost (e.g. %v), %d duplicated (e.g. %v), %d unexpected; logs: %s",
			topic, len(out), len(l.valid), len(lost), lost[:min(3, len(lost))], len(dups), dups[:min(3, len(dups))], len(unexpected), logs)
	}
}
