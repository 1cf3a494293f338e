package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/integration/harness"
)

// The recovery commands (docs/recovery.md): `switchyard replay` and `switchyard dlq
// inspect|redrive` as subprocesses, against the harness's Kafka and a real ClickHouse.

// runSwitchyard runs the switchyard binary with args and returns its exit code and stdout.
func runSwitchyard(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(daemonBinary(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("switchyard %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), lastLines(stderr.String(), 10))
	return code, stdout.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// lockedBuffer is a bytes.Buffer a subprocess writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// endOffsets sums the end offsets of topic.
func endOffsets(t *testing.T, adm *kadm.Client, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// waitCommitted waits until group has committed the end offset of every partition of topic.
func waitCommitted(t *testing.T, adm *kadm.Client, group, topic string) {
	t.Helper()
	waitFor(t, time.Minute, "group "+group+" to commit the end of "+topic, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return false
		}
		got, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		ok := true
		ends.Each(func(o kadm.ListedOffset) {
			c, found := got.Lookup(o.Topic, o.Partition)
			if !found || c.At != o.Offset {
				ok = false
			}
		})
		return ok
	})
}

// TestReplay_clickhouse_sink_after_truncate_while_daemon_runs truncates the ClickHouse table
// of a pipeline that also lands in Kafka and replays the clickhouse sink from the earliest
// offsets while the daemon keeps landing fresh events: afterwards the table holds every
// valid event once, the kafka sink's topic got nothing from the replay, and a second replay
// adds nothing.
func TestReplay_clickhouse_sink_after_truncate_while_daemon_runs(t *testing.T) {
	ch := harness.StartClickHouse(t)
	topic := uniqueName(t, "bids")
	kafka.CreateTopic(t, topic, 4)
	kafka.CreateTopic(t, topic+"-out", 4)
	bus := fmt.Sprintf(`      - name: bus
        kafka: {topic: %s-out}
        batch: {max_rows: 2000, interval: 50ms}`, topic)
	config := writeConfig(t, fmt.Sprintf(chConfig, topic, ch.Addr(), bus, "      - sink: bus", ""))
	logPath := daemonLogPath(t)
	adm := kadm.NewClient(kafka.NewClient(t))

	first := startBidLoad(t, topic, 2000, 11)
	time.Sleep(time.Second)
	first.stop(t)
	nFirst, _ := first.counts()
	d := startDaemon(t, config, logPath)
	t.Cleanup(d.kill)
	waitLanded(t, ch, nFirst, 2*time.Minute, logPath)
	waitCommitted(t, adm, topic+"-group.olap", topic)
	waitFor(t, time.Minute, "the kafka sink to land the first events", func() bool { return endOffsets(t, adm, topic+"-out") >= int64(nFirst) })

	ch.Query(t, "TRUNCATE TABLE "+chTable)
	if n, _ := chCount(ch); n != 0 {
		t.Fatalf("%d rows after TRUNCATE", n)
	}

	code, out := runSwitchyard(t, "replay", "--config", config, "--pipeline", "bids", "--sink", "olap", "--from-earliest", "--dry-run")
	if code != 0 || !strings.Contains(out, topic+"/3  offsets [0, ") || !regexp.MustCompile(`total: \d+ records in 4 partitions`).MatchString(out) {
		t.Fatalf("dry run: exit %d, want 0 and 4 partitions from offset 0:\n%s", code, out)
	}
	if n, _ := chCount(ch); n != 0 {
		t.Fatalf("the dry run landed %d rows", n)
	}

	// Fresh events while the replay runs: the daemon lands them, the replay stops at the
	// lane's committed offsets.
	// The first replay is interrupted (SIGINT, as Ctrl-C) and resumed from the offsets it
	// prints. With one record per batch (a look-up and an insert each, over 3000 records)
	// it is still running when the signal comes.
	second := startBidLoad(t, topic, 500, 12)
	cmd := exec.Command(daemonBinary(t), "replay", "--config", config, "--pipeline", "bids", "--sink", "olap", "--from-earliest", "--batch", "1")
	var stdout bytes.Buffer
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The first progress line comes 2 s into the replay.
	waitFor(t, time.Minute, "the replay's first progress line", func() bool { return strings.Contains(stderr.String(), "replay bids/olap: ") })
	_ = cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	t.Logf("interrupted replay: %v\n%s%s", err, stdout.String(), lastLines(stderr.String(), 5))
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("interrupted replay: %v, want exit status 130", err)
	}
	_, resume, found := strings.Cut(stdout.String(), "holding:\n")
	if !found || !strings.Contains(resume, topic+" ") {
		t.Fatalf("the interrupted replay printed no offsets to resume from:\n%s", stdout.String())
	}
	resumeFile := filepath.Join(t.TempDir(), "resume.offsets")
	if err := os.WriteFile(resumeFile, []byte(resume), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = runSwitchyard(t, "replay", "--config", config, "--pipeline", "bids", "--sink", "olap", "--from-offsets", resumeFile, "--batch", "500")
	second.stop(t)
	if code != 0 || !strings.Contains(out, " landed in olap") {
		t.Fatalf("resumed replay: exit %d, want 0:\n%s", code, out)
	}
	nSecond, _ := second.counts()
	all := &bidLoad{valid: map[string]bool{}}
	for id := range first.valid {
		all.valid[id] = true
	}
	for id := range second.valid {
		all.valid[id] = true
	}
	waitLanded(t, ch, len(all.valid), 2*time.Minute, logPath)
	waitCommitted(t, adm, topic+"-group.olap", topic)
	checkLandedOnce(t, ch, topic, all)

	// The kafka sink's topic holds each valid event once: the replay published nothing.
	waitCommitted(t, adm, topic+"-group.bus", topic)
	if got, want := endOffsets(t, adm, topic+"-out"), int64(nFirst+nSecond); got != want {
		t.Fatalf("%s-out holds %d records, want %d (the valid events, once each)", topic, got, want)
	}

	// A second replay over the same range adds nothing.
	before, _ := chCount(ch)
	code, out = runSwitchyard(t, "replay", "--config", config, "--pipeline", "bids", "--sink", "olap", "--from-earliest")
	if code != 0 {
		t.Fatalf("second replay: exit %d:\n%s", code, out)
	}
	if after, distinct := chCount(ch); after != before || distinct != before {
		t.Fatalf("second replay: count() %d -> %d (distinct coordinates %d), want unchanged", before, after, distinct)
	}
	d.terminate(t)
	if got, want := endOffsets(t, adm, topic+"-out"), int64(nFirst+nSecond); got != want {
		t.Fatalf("after the second replay %s-out holds %d records, want %d", topic, got, want)
	}
}

// redriveConfig is chConfig's pipeline with a contracts path of its own (%[3]s) and only the
// clickhouse sink.
const redriveConfig = `
kafka:
  brokers: ["${BROKERS}"]
contracts:
  path: %[3]s
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
      drain_timeout: 5s
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
    routes:
      - sink: olap
    dead_letter:
      topic: %[1]s-dlq
`

// TestRedrive_after_contract_fix_lands_once_also_when_killed produces events under a
// contract v1 that rejects quantity 2 (v2, the repository's contract, accepts up to 1000):
// they dead-letter. With v2 deployed, a redrive killed half-way and run again lands each of
// them exactly once in ClickHouse; the events v2 still rejects stay in the dead-letter
// topic, which gets nothing new.
func TestRedrive_after_contract_fix_lands_once_also_when_killed(t *testing.T) {
	ch := harness.StartClickHouse(t)
	topic := uniqueName(t, "bids")
	kafka.CreateTopic(t, topic, 4)
	kafka.CreateTopic(t, topic+"-dlq", 1)

	v1 := filepath.Join(t.TempDir(), "contracts")
	if err := os.CopyFS(v1, os.DirFS(repoRootContracts())); err != nil {
		t.Fatal(err)
	}
	proto := filepath.Join(v1, "auctions", "v1", "bid_placed.proto")
	b, err := os.ReadFile(proto)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("lte: 1000")) {
		t.Fatal("bid_placed.proto no longer limits quantity with lte: 1000")
	}
	if err := os.WriteFile(proto, bytes.Replace(b, []byte("lte: 1000"), []byte("lte: 1"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	configV1 := writeConfig(t, fmt.Sprintf(redriveConfig, topic, ch.Addr(), v1))
	configV2 := writeConfig(t, fmt.Sprintf(redriveConfig, topic, ch.Addr(), repoRootContracts()))

	// Produce: valid events with quantity 1 land under v1, those with quantity 2 dead-letter
	// under v1 but are valid under v2, and 10% are invalid or undecodable under both.
	reg, err := contract.Load(repoRootContracts())
	if err != nil {
		t.Fatal(err)
	}
	gen, err := eventgen.New(reg, eventgen.Options{Seed: 5, InvalidRate: 0.1, Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	valid := map[string]bool{}
	emails := map[string]bool{}
	var rejectedByV1, stillBad int
	var recs []*kgo.Record
	for i := range 3000 {
		ev, err := gen.NextOf(eventgen.BidPlaced, contract.Confluent)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == eventgen.Valid {
			valid[bidID(ev)] = true
			m := ev.Message
			if m.Get(m.Descriptor().Fields().ByName("quantity")).Int() > 1 {
				rejectedByV1++
			}
			emails[m.Get(m.Descriptor().Fields().ByName("bidder_email")).String()] = true
		} else {
			stillBad++
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: ev.Payload})
	}
	if rejectedByV1 < 500 || stillBad < 100 {
		t.Fatalf("the generated events have %d valid ones with quantity 2 and %d bad ones; want enough of both", rejectedByV1, stillBad)
	}
	prod := kafka.NewClient(t)
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	logPath := daemonLogPath(t)
	d := startDaemon(t, configV1, logPath)
	t.Cleanup(d.kill)
	landedV1 := len(valid) - rejectedByV1
	waitLanded(t, ch, landedV1, 2*time.Minute, logPath)
	adm := kadm.NewClient(kafka.NewClient(t))
	waitFor(t, time.Minute, "the dead letters", func() bool { return endOffsets(t, adm, topic+"-dlq") >= int64(rejectedByV1+stillBad) })
	d.terminate(t)
	if n, _ := chCount(ch); n != landedV1 {
		t.Fatalf("%d rows under v1, want %d", n, landedV1)
	}
	dlqEnd := endOffsets(t, adm, topic+"-dlq")
	if dlqEnd != int64(rejectedByV1+stillBad) {
		t.Fatalf("%d dead letters, want %d", dlqEnd, rejectedByV1+stillBad)
	}

	// inspect groups them, and prints no payload values unless asked, never PII.
	code, out := runSwitchyard(t, "dlq", "inspect", "--config", configV2, "--pipeline", "bids", "--show", "3", "--payload", "--class", "validate")
	if code != 0 || !regexp.MustCompile(`(?m)^\d+\s+validate\s+validate\s+auctions\.v1\.BidPlaced\s`).MatchString(out) || !strings.Contains(out, "bidder_email:[redacted]") {
		t.Fatalf("dlq inspect: exit %d, want 0 with a validate group and redacted payloads:\n%s", code, out)
	}
	for e := range emails {
		if e != "" && strings.Contains(out, e) {
			t.Fatalf("dlq inspect printed the bidder_email %q", e)
		}
	}

	// Redrive under v2, killed half-way.
	cmd := exec.Command(daemonBinary(t), "dlq", "redrive", "--config", configV2, "--pipeline", "bids", "--batch", "5")
	var partial bytes.Buffer
	cmd.Stdout, cmd.Stderr = &partial, &partial
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the redrive to land some records", func() bool { n, _ := chCount(ch); return n > landedV1+50 })
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	mid, _ := chCount(ch)
	t.Logf("redrive killed with %d of %d redriven records landed", mid-landedV1, rejectedByV1)
	if mid >= len(valid) {
		t.Fatalf("the redrive finished (%d rows) before it was killed; make it slower", mid)
	}

	code, out = runSwitchyard(t, "dlq", "redrive", "--config", configV2, "--pipeline", "bids")
	if code != 3 {
		t.Fatalf("redrive: exit %d, want 3 (some still fail)", code)
	}
	if !strings.Contains(out, fmt.Sprintf("still failing: %d ", stillBad)) || !strings.Contains(out, fmt.Sprintf("landed: %d\n", rejectedByV1)) {
		t.Fatalf("redrive summary: want landed: %d and still failing: %d:\n%s", rejectedByV1, stillBad, out)
	}
	all := &bidLoad{valid: valid}
	checkLandedOnce(t, ch, topic, all)
	if got := endOffsets(t, adm, topic+"-dlq"); got != dlqEnd {
		t.Fatalf("the dead-letter topic grew from %d to %d records: redrive dead-lettered again", dlqEnd, got)
	}
}
