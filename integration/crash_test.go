package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// daemonBinary builds cmd/switchyard once per test process.
func daemonBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchyard-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "switchyard")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/switchyard")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// daemon is a switchyard process.
type daemon struct {
	cmd *exec.Cmd
	log *os.File
}

func startDaemon(t *testing.T, config, logPath string) *daemon {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemonBinary(t), "run", "--config", config, "--log-format", "json")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &daemon{cmd: cmd, log: f}
}

func (d *daemon) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	_ = d.cmd.Wait()
	d.log.Close()
}

func (d *daemon) terminate(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		d.log.Close()
		if err != nil {
			t.Fatalf("daemon did not exit 0 after SIGTERM: %v", err)
		}
	case <-time.After(90 * time.Second):
		d.kill()
		t.Fatal("daemon did not exit within 90s of SIGTERM")
	}
}

const crashConfig = `
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
    contract:
      encoding: confluent
      message: auctions.v1.BidPlaced
    sinks:
      - name: bus
        kafka: {topic: %[1]s-out}
        batch: {max_rows: 2000, interval: 50ms}
    routes:
      - sink: bus
    dead_letter:
      topic: %[1]s-dlq
`

// TestCrash_sigkill_under_load_loses_nothing kills the daemon with SIGKILL at random moments
// while events are produced, restarts it each time, and checks that every produced event ends
// up downstream or in the dead-letter topic.
func TestCrash_sigkill_under_load_loses_nothing(t *testing.T) {
	topic := uniqueName(t, "bids")
	kafka.CreateTopic(t, topic, 8)
	config := writeConfig(t, fmt.Sprintf(crashConfig, topic))
	logPath := filepath.Join(t.TempDir(), "daemon.log")

	reg, err := contract.Load(repoRootContracts())
	if err != nil {
		t.Fatal(err)
	}
	gen, err := eventgen.New(reg, eventgen.Options{Seed: 42, InvalidRate: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	// Produce in the background for the whole kill loop.
	cl := kafka.NewClient(t, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
	valid := map[string]bool{}
	invalid := map[string]bool{}
	var mu sync.Mutex
	ctx, stopProducing := context.WithCancel(context.Background())
	var prodWG sync.WaitGroup
	prodWG.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			ev, err := gen.NextOf(eventgen.BidPlaced, contract.Confluent)
			if err != nil {
				t.Error(err)
				return
			}
			rec := &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: ev.Payload}
			cl.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
				if err != nil {
					t.Errorf("produce: %v", err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if ev.Kind == eventgen.Valid {
					valid[bidID(ev)] = true
				} else {
					invalid[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)] = true
				}
			})
			if i%200 == 199 {
				time.Sleep(10 * time.Millisecond) // about 20k events/s
			}
		}
	})

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	const kills = 6
	for k := range kills {
		d := startDaemon(t, config, logPath)
		time.Sleep(time.Duration(300+rng.IntN(2700)) * time.Millisecond)
		d.kill()
		t.Logf("kill %d/%d done", k+1, kills)
	}
	stopProducing()
	prodWG.Wait()
	if err := cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	mu.Lock()
	nValid, nInvalid := len(valid), len(invalid)
	mu.Unlock()
	t.Logf("produced %d valid and %d invalid events", nValid, nInvalid)

	// The last run drains everything.
	d := startDaemon(t, config, logPath)
	out := readUntil(t, topic+"-out", 3*time.Minute, func(recs []*kgo.Record) bool {
		if len(recs) < nValid {
			return false
		}
		return len(eventIDs(t, recs)) >= nValid
	})
	dlq := readDeadLetters(t, topic+"-dlq", invalid) // the producer is closed: no more writers
	d.terminate(t)

	ids := eventIDs(t, out)
	lost := lostEvents(ids, valid, invalid, dlq)
	if len(lost) > 0 {
		t.Fatalf("%d of %d events lost after %d SIGKILLs (first: %v); daemon log: %s", len(lost), nValid+nInvalid, kills, lost[:min(5, len(lost))], logPath)
	}
	dups := len(out) - len(ids)
	t.Logf("zero lost: %d valid downstream (%d duplicate deliveries, allowed by at-least-once), %d dead letters for %d invalid", len(ids), dups, len(dlq), nInvalid)
}
