package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/integration/harness"
)

// breakerConfig is two pipelines in one daemon. "poison" reads %[1]s (one partition) into
// the ClickHouse table poison_bids (sink olap, the primary lane) and the topic %[1]s-out
// (sink bus), with a breaker small enough to trip in seconds; each lane has one batch in
// flight (max_in_flight = max_batch), so the test knows where each lane stands at the trip.
// "healthy" reads %[2]s into healthy_bids. ClickHouse is at %[3]s.
const breakerConfig = `
kafka:
  brokers: ["${BROKERS}"]
contracts:
  path: ${CONTRACTS}
pii:
  hash_key: integration-test-key
admin:
  address: "127.0.0.1:0"
pipelines:
  - name: poison
    owner: {team: auctions, contact: "#auctions"}
    source: {topics: [%[1]s], group: %[1]s-group, max_batch: 100, max_in_flight: 100, drain_timeout: 2s, lag_interval: 250ms}
    contract: {encoding: confluent, message: auctions.v1.BidPlaced}
    sinks:
      - name: olap
        batch: {interval: 50ms}
        clickhouse: {addresses: ["%[3]s"], table: poison_bids, create_table: true}
      - name: bus
        batch: {interval: 50ms}
        kafka: {topic: %[1]s-out}
    routes:
      - sink: olap
      - sink: bus
    dead_letter:
      topic: %[1]s-dlq
      breaker: {max_ratio: 50%%, window: 30s, min_events: 1000, cooldown: 4s}
  - name: healthy
    owner: {team: auctions, contact: "#auctions"}
    source: {topics: [%[2]s], group: %[2]s-group, drain_timeout: 2s}
    contract: {encoding: confluent, message: auctions.v1.BidPlaced}
    sinks:
      - name: olap
        batch: {interval: 50ms}
        clickhouse: {addresses: ["%[3]s"], table: healthy_bids, create_table: true}
    routes:
      - sink: olap
    dead_letter:
      topic: %[2]s-dlq
`

// produceKind produces n BidPlaced events of one kind to topic (partition 0) and returns
// their source coordinates, "topic/partition/offset".
func produceKind(t *testing.T, topic string, n int, kind eventgen.Kind, seed uint64) map[string]bool {
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
	recs := make([]*kgo.Record, n)
	for i := range recs {
		ev, err := gen.Make(eventgen.BidPlaced, kind, contract.Confluent)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: ev.Payload}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	coords := map[string]bool{}
	for _, r := range recs {
		coords[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)] = true
	}
	return coords
}

// groupOffset is the committed offset of group on partition 0 of topic, -1 if none.
func groupOffset(t *testing.T, adm *kadm.Client, group, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch committed offsets of %s: %v", group, err)
	}
	if o, ok := offs.Lookup(topic, 0); ok && o.Err == nil {
		return o.At
	}
	return -1
}

func tableCount(ch *harness.ClickHouse, table string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := ch.QueryContext(ctx, "SELECT uniqExact(_topic, _partition, _offset) FROM default."+table)
	if err != nil || len(res) != 1 {
		return -1
	}
	n, _ := strconv.Atoi(res[0][0])
	return n
}

func logCount(t *testing.T, logPath, sub string) int {
	t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte(sub))
}

// TestBreaker_poison_storm_halts_one_pipeline_and_valid_traffic_resumes_it runs a storm of
// 100% invalid events into one pipeline of a daemon: its breaker trips with one ERROR line
// naming the reason and an example coordinate, /metrics and /readyz show it, and from then
// on neither lane's committed offset moves until the probe; the other pipeline keeps landing
// meanwhile. Valid events afterwards close the breaker and land; every invalid event is
// dead-lettered exactly once, and the log stays a few dozen lines for over a thousand dead
// letters.
func TestBreaker_poison_storm_halts_one_pipeline_and_valid_traffic_resumes_it(t *testing.T) {
	ch := harness.StartClickHouse(t)
	topic, other := uniqueName(t, "poison"), uniqueName(t, "healthy")
	for _, tp := range []string{topic, topic + "-out", topic + "-dlq", other, other + "-dlq"} {
		kafka.CreateTopic(t, tp, 1)
	}
	config := writeConfig(t, fmt.Sprintf(breakerConfig, topic, other, ch.Addr()))
	logPath := daemonLogPath(t)
	d := startDaemon(t, config, logPath)
	t.Cleanup(d.kill)
	addr := adminAddr(t, logPath)
	adm := kadm.NewClient(kafka.NewClient(t))
	groups := []string{topic + "-group.olap", topic + "-group.bus"}
	state := func() float64 {
		v, _ := scrape(t, addr, "switchyard_pipeline_breaker_state", `pipeline="poison"`)
		return v
	}
	waitFor(t, time.Minute, "/readyz 200 with both breakers closed", func() bool {
		code, _ := readyz(t, addr)
		_, n := scrape(t, addr, "switchyard_pipeline_breaker_state", `pipeline="`)
		return code == 200 && n == 2 && state() == 0
	})

	const storm = 1100
	invalid := produceKind(t, topic, storm, eventgen.Invalid, 11)
	waitFor(t, time.Minute, "the poison pipeline's breaker to trip", func() bool { return state() == 1 })
	code, body := readyz(t, addr)
	if code != 503 || !strings.Contains(body, "pipeline poison: dead-letter breaker tripped") || !strings.Contains(body, "in sink lane olap (max 50%); top reasons validate=") {
		t.Fatalf("/readyz while tripped: %d %q, want 503 naming the pipeline, its lane and reason", code, body)
	}
	if trips, _ := scrape(t, addr, "switchyard_pipeline_breaker_trips_total", `pipeline="poison"`); trips != 1 {
		t.Fatalf("switchyard_pipeline_breaker_trips_total = %v, want 1", trips)
	}
	if v, _ := scrape(t, addr, "switchyard_pipeline_breaker_state", `pipeline="healthy"`); v != 0 {
		t.Fatalf("the healthy pipeline's breaker reads %v", v)
	}
	if n := logCount(t, logPath, `"level":"ERROR","msg":"dead-letter breaker tripped: pipeline stopped consuming","pipeline":"poison","sink":"olap"`); n != 1 {
		t.Fatalf("%d trip lines, want 1; log: %s", n, logPath)
	}
	if n := logCount(t, logPath, `"top_reasons":"validate=`); n != 1 || logCount(t, logPath, `"examples":"validate `+topic+`/0@`) != 1 {
		t.Fatalf("the trip line lacks its top reason and example coordinates; log: %s", logPath)
	}

	healthy := produceKind(t, other, 300, eventgen.Valid, 12)

	// The lane that tripped and the lane that was still landing finish the batch they had:
	// their commits settle within the source's commit interval (1s), then nothing moves until
	// the probe, which starts a cooldown (4s) after the trip.
	time.Sleep(1500 * time.Millisecond)
	frozen := make([]int64, len(groups))
	for i, g := range groups {
		frozen[i] = groupOffset(t, adm, g, topic)
	}
	if frozen[0] < 1000 || frozen[0] >= storm || frozen[1] > storm {
		t.Fatalf("lanes committed %v when it tripped, want the primary lane at min_events (1000) or more and less than all %d, the other at most %d", frozen, storm, storm)
	}
	// Valid events behind the storm: lane bus, which never dead-letters what tripped lane
	// olap, has them to consume and must hold them too.
	const good = 300
	valid := produceKind(t, topic, good, eventgen.Valid, 13)
	samples := 0
	for {
		var now []int64
		for _, g := range groups {
			now = append(now, groupOffset(t, adm, g, topic))
		}
		if logCount(t, logPath, `"msg":"dead-letter breaker half-open: trying one probe batch","pipeline":"poison"`) > 0 {
			break // the probe may have committed since the sample was taken
		}
		for i := range groups {
			if now[i] != frozen[i] {
				t.Fatalf("group %s committed %d while the breaker was tripped (was %d at the trip)", groups[i], now[i], frozen[i])
			}
		}
		samples++
		time.Sleep(200 * time.Millisecond)
	}
	if samples < 3 {
		t.Fatalf("only %d offset samples before the probe", samples)
	}
	t.Logf("committed offsets held at %v over %d samples until the probe", frozen, samples)

	// The other pipeline lands while this one is tripped: the first probe dead-letters the
	// rest of the storm and trips it again; the next one, a cooldown later, is valid.
	waitFor(t, time.Minute, "the healthy pipeline to land its events while the poison one is tripped", func() bool {
		if s := state(); s == 0 {
			t.Fatalf("the poison breaker closed before the healthy pipeline landed its events")
		}
		return tableCount(ch, "healthy_bids") == len(healthy)
	})
	waitFor(t, time.Minute, "the probe to dead-letter the rest of the storm and trip again", func() bool {
		trips, _ := scrape(t, addr, "switchyard_pipeline_breaker_trips_total", `pipeline="poison"`)
		return trips == 2
	})
	waitFor(t, time.Minute, "the breaker to close and every event to land", func() bool {
		return state() == 0 && tableCount(ch, "poison_bids") == good &&
			groupOffset(t, adm, groups[0], topic) == storm+good && groupOffset(t, adm, groups[1], topic) == storm+good
	})
	if rows := ch.Query(t, "SELECT count(), uniqExact(_topic, _partition, _offset) FROM default.poison_bids"); rows[0][0] != strconv.Itoa(good) || rows[0][1] != strconv.Itoa(good) {
		t.Fatalf("poison_bids: count() = %s, uniqExact(coordinates) = %s, want %d each", rows[0][0], rows[0][1], good)
	}
	if out := readAll(t, topic+"-out", good, time.Minute); len(out) != good {
		t.Fatalf("%s-out holds %d events, want %d", topic, len(out), good)
	}
	seen := map[string]int{}
	for _, r := range readAll(t, topic+"-dlq", storm, time.Minute) {
		seen[dlqCoord(r)]++
	}
	for c := range invalid {
		if seen[c] != 1 {
			t.Fatalf("invalid event %s dead-lettered %d times, want once", c, seen[c])
		}
	}
	for c := range valid {
		if seen[c] != 0 {
			t.Fatalf("valid event %s was dead-lettered", c)
		}
	}
	if len(seen) != storm {
		t.Fatalf("%d dead letters, want %d", len(seen), storm)
	}
	if code, _ := readyz(t, addr); code != 200 {
		t.Fatalf("/readyz after the breaker closed: %d", code)
	}
	resp, err := http.Get("http://" + addr + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var st struct {
		Pipelines []struct {
			Name    string
			Breaker *struct {
				State string
				Trips int
			}
		}
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Pipelines {
		want := map[string]int{"poison": 2, "healthy": 0}[p.Name]
		if p.Breaker == nil || p.Breaker.State != "closed" || p.Breaker.Trips != want {
			t.Fatalf("/api/status pipeline %s breaker %+v, want closed after %d trips", p.Name, p.Breaker, want)
		}
	}

	// The log: one ERROR line per trip and nothing else at ERROR, the dead letters rate
	// limited, and a few dozen lines in all for over a thousand dead letters.
	raw, _ := os.ReadFile(logPath)
	lines := bytes.Count(raw, []byte("\n"))
	if n := bytes.Count(raw, []byte(`"level":"ERROR"`)); n != 2 {
		t.Fatalf("%d ERROR lines, want one per trip (2); log: %s", n, logPath)
	}
	if n := bytes.Count(raw, []byte(`"msg":"dead-lettered event"`)); n > 3 {
		t.Fatalf("%d dead-letter WARN lines for %d dead letters, want them rate limited; log: %s", n, storm, logPath)
	}
	if lines > 80 {
		t.Fatalf("the log holds %d lines for a storm of %d events, want a bounded few; log: %s", lines, storm, logPath)
	}
	t.Logf("log: %d lines in all for %d dead letters", lines, storm)
}
