package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/integration/harness"
	"github.com/switchyard-dev/switchyard/pipelines"
)

// The daemon-level ClickHouse tests: `switchyard run` as a subprocess, the harness's Apache
// Kafka broker, and a real clickhouse-server per test (its own, since the outage test stops
// it). Each test lands BidPlaced events in the table the sink creates from the contract,
// auctions_v1_bid_placed, and checks
//
//	count() = uniqExact(_topic, _partition, _offset) = produced valid events
//
// with the set of event ids equal to the produced one, and every invalid event in the
// dead-letter topic.

// chTable is the table the clickhouse sink derives from auctions.v1.BidPlaced.
const chTable = "default.auctions_v1_bid_placed"

// chConfig is a pipeline from %[1]s (topic; also the group, dead-letter and output topic
// prefix) to the clickhouse sink "olap" at %[2]s, then any extra sinks (%[3]s) and routes
// (%[4]s); %[5]s adds source keys. olap is the first sink, so its lane dead-letters decode
// and validation failures.
const chConfig = `
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
      drain_timeout: 5s%[5]s
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
%[3]s
    routes:
      - sink: olap
%[4]s
    dead_letter:
      topic: %[1]s-dlq
`

// bidLoad produces BidPlaced events (about 1% invalid or undecodable) to a topic at a steady
// rate until stopped, and remembers what the broker acknowledged.
type bidLoad struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	valid   map[string]bool // event_id of valid events
	invalid map[string]bool // "topic/partition/offset" of the others
	errs    []error
}

// startBidLoad produces perSecond events per second to topic in the background. Events'
// occurred_at start now, so the README's "last hour" query sees them.
func startBidLoad(t *testing.T, topic string, perSecond int, seed uint64) *bidLoad {
	t.Helper()
	reg, err := contract.Load(repoRootContracts())
	if err != nil {
		t.Fatal(err)
	}
	gen, err := eventgen.New(reg, eventgen.Options{Seed: seed, InvalidRate: 0.01, Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	l := &bidLoad{
		cl:      kafka.NewClient(t, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond)),
		valid:   map[string]bool{},
		invalid: map[string]bool{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.wg.Go(func() {
		const tick = 10 * time.Millisecond
		tk := time.NewTicker(tick)
		defer tk.Stop()
		perTick := float64(perSecond) * tick.Seconds()
		owed := 0.0
		for i := 0; ; {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			for owed += perTick; owed >= 1; owed-- {
				ev, err := gen.NextOf(eventgen.BidPlaced, contract.Confluent)
				if err != nil {
					l.fail(err)
					return
				}
				i++
				l.cl.Produce(context.Background(), &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: ev.Payload}, func(r *kgo.Record, err error) {
					if err != nil {
						l.fail(fmt.Errorf("produce: %w", err))
						return
					}
					l.mu.Lock()
					defer l.mu.Unlock()
					if ev.Kind == eventgen.Valid {
						l.valid[bidID(ev)] = true
					} else {
						l.invalid[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)] = true
					}
				})
			}
		}
	})
	t.Cleanup(l.halt)
	return l
}

func (l *bidLoad) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *bidLoad) halt() {
	l.cancel()
	l.wg.Wait()
}

// stop stops producing, waits for every outstanding record, and fails the test if any
// produce failed.
func (l *bidLoad) stop(t *testing.T) {
	t.Helper()
	l.halt()
	if err := l.cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.cl.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) > 0 {
		t.Fatalf("%d produce errors, first: %v", len(l.errs), l.errs[0])
	}
}

// counts returns how many valid and invalid events were acknowledged so far.
func (l *bidLoad) counts() (valid, invalid int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.valid), len(l.invalid)
}

// chCount returns count() and uniqExact(_topic, _partition, _offset) of chTable, or -1s
// when the query fails (the server is down, or the table does not exist yet).
func chCount(ch *harness.ClickHouse) (rows, distinct int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := ch.QueryContext(ctx, "SELECT count(), uniqExact(_topic, _partition, _offset) FROM "+chTable)
	if err != nil || len(res) != 1 || len(res[0]) != 2 {
		return -1, -1
	}
	rows, _ = strconv.Atoi(res[0][0])
	distinct, _ = strconv.Atoi(res[0][1])
	return rows, distinct
}

// checkLandedOnce checks that chTable holds each valid event exactly once, at a distinct
// source coordinate of topic, and nothing else.
func checkLandedOnce(t *testing.T, ch *harness.ClickHouse, topic string, l *bidLoad) {
	t.Helper()
	l.mu.Lock()
	valid := l.valid
	l.mu.Unlock()
	got := ch.Query(t, fmt.Sprintf("SELECT count(), uniqExact(_topic, _partition, _offset), uniqExact(event_id), countIf(_topic != '%s') FROM %s", topic, chTable))
	want := strconv.Itoa(len(valid))
	if got[0][0] != want || got[0][1] != want || got[0][2] != want || got[0][3] != "0" {
		t.Errorf("count() = %s, uniqExact(_topic, _partition, _offset) = %s, uniqExact(event_id) = %s, rows from other topics = %s; want %s, %s, %s, 0",
			got[0][0], got[0][1], got[0][2], got[0][3], want, want, want)
	}
	ids := map[string]int{}
	for _, r := range ch.Query(t, "SELECT event_id FROM "+chTable) {
		ids[r[0]]++
	}
	var lost, unexpected, twice []string
	for id := range valid {
		if ids[id] == 0 {
			lost = append(lost, id)
		}
	}
	for id, n := range ids {
		if !valid[id] {
			unexpected = append(unexpected, id)
		}
		if n > 1 {
			twice = append(twice, id)
		}
	}
	if len(lost)+len(unexpected)+len(twice) > 0 {
		t.Fatalf("of %d valid events, %d never landed (e.g. %v), %d landed more than once (e.g. %v); %d rows are no produced valid event (e.g. %v)",
			len(valid), len(lost), lost[:min(3, len(lost))], len(twice), twice[:min(3, len(twice))], len(unexpected), unexpected[:min(3, len(unexpected))])
	}
}

// checkDeadLettered reads the dead-letter topic until every invalid event of l is in it.
func checkDeadLettered(t *testing.T, topic string, l *bidLoad) {
	t.Helper()
	l.mu.Lock()
	invalid := l.invalid
	l.mu.Unlock()
	dlq := readDeadLetters(t, topic+"-dlq", invalid)
	seen := map[string]bool{}
	for _, r := range dlq {
		c := dlqCoord(r)
		if !invalid[c] {
			t.Errorf("dead letter %s (class %s: %s) is not an invalid event", c, header(r, pipelines.HeaderClass), header(r, pipelines.HeaderMessage))
		}
		seen[c] = true
	}
	var missing []string
	for c := range invalid {
		if !seen[c] {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d invalid events never reached %s-dlq (e.g. %v)", len(missing), len(invalid), topic, missing[:min(3, len(missing))])
	}
}

// waitLanded waits until chTable holds at least want distinct source coordinates.
func waitLanded(t *testing.T, ch *harness.ClickHouse, want int, within time.Duration, logPath string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, distinct := chCount(ch)
		if distinct >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v only %d of %d valid events are in %s; daemon log: %s", within, distinct, want, chTable, logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// daemonLogPath returns a path for the daemon's log that outlives a failed test, so that the
// failure message can point at it.
func daemonLogPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "switchyard-"+strings.ReplaceAll(t.Name(), "/", "-")+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	return filepath.Join(dir, "daemon.log")
}

// readmeQuery is the first ```sql block of README.md's "### ClickHouse" section.
func readmeQuery(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)\n### ClickHouse\n.*?```sql\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md has no ```sql block in its ### ClickHouse section")
	}
	return string(m[1])
}

// TestClickHouse_sigkill_under_load_lands_each_event_once kills the daemon with SIGKILL at
// random moments while events are produced and landed, ten times, then lets a last run
// drain: every valid event is in ClickHouse exactly once, every invalid one in the
// dead-letter topic. Then it runs the README's analyst query on the table.
func TestClickHouse_sigkill_under_load_lands_each_event_once(t *testing.T) {
	ch := harness.StartClickHouse(t)
	topic := uniqueName(t, "bids")
	kafka.CreateTopic(t, topic, 8)
	// A restarted daemon comes back as the same static group member, so it gets its
	// partitions again without waiting for the killed one's session to time out.
	config := writeConfig(t, fmt.Sprintf(chConfig, topic, ch.Addr(), "", "", "\n      instance_id: crash-test"))
	logPath := daemonLogPath(t)

	load := startBidLoad(t, topic, 5000, 42)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	const kills = 10
	grew := 0
	for k := range kills {
		before, _ := chCount(ch)
		d := startDaemon(t, config, logPath)
		t.Cleanup(d.kill) // after a failure; a no-op once killed
		time.Sleep(time.Duration(500+rng.IntN(3000)) * time.Millisecond)
		d.kill()
		after, _ := chCount(ch)
		if after > before {
			grew++
		}
		t.Logf("kill %d/%d: %d rows in the table (%+d)", k+1, kills, after, after-max(before, 0))
	}
	// Kills while nothing was landing would prove little.
	if grew < kills/2 {
		t.Fatalf("rows landed during only %d of %d daemon runs (rng seed %d); daemon log: %s", grew, kills, seed, logPath)
	}
	load.stop(t)
	nValid, nInvalid := load.counts()
	t.Logf("produced %d valid and %d invalid events", nValid, nInvalid)

	d := startDaemon(t, config, logPath)
	t.Cleanup(d.kill)
	waitLanded(t, ch, nValid, 3*time.Minute, logPath)
	checkDeadLettered(t, topic, load)
	d.terminate(t)
	checkLandedOnce(t, ch, topic, load)

	// The README's analyst query runs unchanged on the table the sink created.
	rows := ch.Query(t, readmeQuery(t))
	var uuids []string
	for _, r := range ch.Query(t, "SELECT DISTINCT bidder_id FROM "+chTable) {
		uuids = append(uuids, r[0])
	}
	if len(rows) == 0 || len(rows) > 20 {
		t.Fatalf("README query returned %d rows, want 1 to 20", len(rows))
	}
	for _, r := range rows {
		if len(r) != 7 {
			t.Fatalf("README query row %q has %d columns, want 7", r, len(r))
		}
		bids, _ := strconv.Atoi(r[2])
		bidders, _ := strconv.Atoi(r[3])
		top, err := strconv.ParseFloat(r[4], 64)
		if bids < 1 || bidders < 1 || bidders > bids || err != nil || top <= 0 || len(r[5]) != 3 || !slices.Contains(uuids, r[6]) {
			t.Fatalf("README query row %q: want auction, minute, bids >= bidders >= 1, top amount > 0, currency code, a bidder id", r)
		}
	}
	t.Logf("README query, first row: %s", strings.Join(rows[0], " | "))
}

// TestClickHouse_server_down_30s_under_load_loses_nothing stops the ClickHouse server for 30
// seconds while events are produced. Meanwhile the pipeline's kafka sink, in its own lane,
// keeps landing fresh events; afterwards the clickhouse sink catches up with every event
// exactly once.
func TestClickHouse_server_down_30s_under_load_loses_nothing(t *testing.T) {
	ch := harness.StartClickHouse(t)
	topic := uniqueName(t, "bids")
	kafka.CreateTopic(t, topic, 4)
	kafka.CreateTopic(t, topic+"-out", 4)
	bus := fmt.Sprintf(`      - name: bus
        kafka: {topic: %s-out}
        batch: {max_rows: 2000, interval: 50ms}`, topic)
	config := writeConfig(t, fmt.Sprintf(chConfig, topic, ch.Addr(), bus, "      - sink: bus", ""))
	logPath := daemonLogPath(t)

	load := startBidLoad(t, topic, 3000, 7)
	d := startDaemon(t, config, logPath)
	t.Cleanup(d.kill)
	waitFor(t, time.Minute, "the first rows in ClickHouse", func() bool { n, _ := chCount(ch); return n > 0 })

	adm := kadm.NewClient(kafka.NewClient(t))
	outEnd := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ends, err := adm.ListEndOffsets(ctx, topic+"-out")
		if err != nil {
			t.Fatalf("list end offsets of %s-out: %v", topic, err)
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n
	}

	ch.Stop()
	down := time.Now()
	t.Logf("clickhouse stopped")
	if n, _ := chCount(ch); n != -1 {
		t.Fatalf("clickhouse still answers after Stop (%d rows)", n)
	}
	// The kafka sink keeps landing what is produced during the outage: its topic grows in
	// every 5-second window.
	last := outEnd()
	for time.Since(down) < 25*time.Second {
		time.Sleep(5 * time.Second)
		now := outEnd()
		if now <= last {
			t.Fatalf("%s-out did not grow in 5 s while ClickHouse was down (%d records)", topic, now)
		}
		t.Logf("%.0fs into the outage: %s-out +%d records", time.Since(down).Seconds(), topic, now-last)
		last = now
	}
	time.Sleep(30*time.Second - time.Since(down))
	ch.Start(t)
	t.Logf("clickhouse restarted after %v", time.Since(down).Round(time.Second))

	time.Sleep(3 * time.Second) // a little more load after the restart
	load.stop(t)
	nValid, nInvalid := load.counts()
	t.Logf("produced %d valid and %d invalid events", nValid, nInvalid)
	waitLanded(t, ch, nValid, 3*time.Minute, logPath)
	t.Logf("caught up %v after the restart", time.Since(down).Round(time.Second)-30*time.Second)
	checkDeadLettered(t, topic, load)
	out := eventIDs(t, readUntil(t, topic+"-out", 2*time.Minute, func(recs []*kgo.Record) bool { return len(recs) >= nValid }))
	d.terminate(t)
	checkLandedOnce(t, ch, topic, load)
	for id := range load.valid {
		if out[id] == 0 {
			t.Fatalf("event %s never reached the kafka sink", id)
		}
	}

	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`"msg":"sink write failed"[^\n]*"sink":"olap"`).Match(log) {
		t.Fatalf("the daemon never logged a failed write of sink olap during the outage; log: %s", logPath)
	}
}
