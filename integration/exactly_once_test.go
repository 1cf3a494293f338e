package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const exactlyOnceConfig = `
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
      drain_timeout: 5s
      session_timeout: 6s
      instance_id: %[2]s
      max_batch: 500
    contract:
      encoding: confluent
      message: auctions.v1.BidPlaced
    sinks:
      - name: bus
        kafka: {topic: %[1]s-out, exactly_once: true, transaction_timeout: 5s}
    routes:
      - sink: bus
    dead_letter:
      topic: %[1]s-dlq
`

// checkExactlyOnce reads the output and dead-letter topics read_committed until every
// produced event is there, then requires each valid event exactly once downstream and each
// invalid one exactly once in the dead-letter topic.
func checkExactlyOnce(t *testing.T, topic string, l *bidLoad, logPath string) {
	t.Helper()
	l.mu.Lock()
	valid, invalid := l.valid, l.invalid
	l.mu.Unlock()
	committed := []kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadCommitted())}
	out := readUntilWith(t, topic+"-out", 3*time.Minute, committed, func(recs []*kgo.Record) bool {
		return len(recs) >= len(valid) && len(eventIDs(t, recs)) >= len(valid)
	})
	time.Sleep(2 * time.Second) // let late duplicates, if any, arrive
	out = readUntilWith(t, topic+"-out", 20*time.Second, committed, func(recs []*kgo.Record) bool { return len(recs) >= len(out) })
	dlq := readUntilWith(t, topic+"-dlq", time.Minute, committed, func(recs []*kgo.Record) bool { return len(recs) >= len(invalid) })
	ids := eventIDs(t, out)
	if lost := lostEvents(ids, valid, invalid, dlq); len(lost) > 0 {
		t.Fatalf("%d events lost (first: %v); daemon log: %s", len(lost), lost[:min(5, len(lost))], logPath)
	}
	var dups []string
	for id, n := range ids {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", id, n))
		}
	}
	if len(dups) > 0 || len(out) != len(valid) {
		t.Fatalf("read_committed output holds %d records for %d valid events; duplicated: %d (first %v); daemon log: %s", len(out), len(valid), len(dups), dups[:min(5, len(dups))], logPath)
	}
	seen := map[string]int{}
	for _, r := range dlq {
		seen[dlqCoord(r)]++
	}
	for coord, n := range seen {
		if n != 1 || !invalid[coord] {
			t.Fatalf("dead letter %s appears %d times (produced invalid: %v)", coord, n, invalid[coord])
		}
	}
	if len(dlq) != len(invalid) {
		t.Fatalf("%d dead letters for %d invalid events", len(dlq), len(invalid))
	}
	t.Logf("exactly once: %d valid events once each downstream, %d invalid once each in the dead-letter topic", len(valid), len(invalid))
}

// TestExactlyOnce_sigkills_under_load kills a daemon whose kafka sink is exactly_once with
// SIGKILL at 20 random moments under load: a read_committed reader sees every valid event
// exactly once and every invalid one exactly once in the dead-letter topic.
func TestExactlyOnce_sigkills_under_load(t *testing.T) {
	topic := uniqueName(t, "bids")
	kafka.CreateTopic(t, topic, 4)
	config := writeConfig(t, fmt.Sprintf(exactlyOnceConfig, topic, "eos-a"))
	logPath := filepath.Join(t.TempDir(), "daemon.log")
	load := startBidLoad(t, topic, 5000, 7)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	const kills = 20
	for k := range kills {
		d := startDaemon(t, config, logPath)
		time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
		d.kill()
		t.Logf("kill %d/%d", k+1, kills)
	}
	load.stop(t)
	d := startDaemon(t, config, logPath)
	checkExactlyOnce(t, topic, load, logPath)
	d.terminate(t)
}

// TestExactlyOnce_zombie_is_fenced pauses a daemon with SIGSTOP past the session timeout
// while it writes, lets a second instance take its partitions, then resumes it: whatever the
// zombie still had in flight never becomes visible to a read_committed reader.
func TestExactlyOnce_zombie_is_fenced(t *testing.T) {
	topic := uniqueName(t, "bids")
	kafka.CreateTopic(t, topic, 4)
	logPath := filepath.Join(t.TempDir(), "daemon.log")
	zombieLog := filepath.Join(t.TempDir(), "zombie.log")
	zombie := startDaemon(t, writeConfig(t, fmt.Sprintf(exactlyOnceConfig, topic, "eos-zombie")), zombieLog)
	load := startBidLoad(t, topic, 5000, 7)
	time.Sleep(4 * time.Second)
	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	successor := startDaemon(t, writeConfig(t, fmt.Sprintf(exactlyOnceConfig, topic, "eos-successor")), logPath)
	time.Sleep(12 * time.Second) // past the 6s session timeout: the successor owns everything
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	load.stop(t)
	checkExactlyOnce(t, topic, load, logPath)
	zombie.terminate(t)
	successor.terminate(t)
	// The zombie did come back believing it owned partitions, and learned otherwise.
	b, err := os.ReadFile(zombieLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "partitions lost") {
		t.Fatalf("the resumed zombie never noticed it lost its partitions; log: %s", zombieLog)
	}
	uncommitted := readUntil(t, topic+"-out", 5*time.Second, func([]*kgo.Record) bool { return false })
	t.Logf("read_uncommitted sees %d records (aborted ones included), read_committed exactly the valid events", len(uncommitted))
}
