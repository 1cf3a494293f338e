// Package integration holds end-to-end tests of the switchyard daemon against a real Apache
// Kafka broker (KRaft, jars from Maven Central) started by the harness.
package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/integration/harness"
	"github.com/switchyard-dev/switchyard/pipelines"
	_ "github.com/switchyard-dev/switchyard/sinks/all" // the sink kinds the test configurations use
)

var kafka *harness.Kafka

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchyard-integration-kafka-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), harness.KafkaStartTimeout)
	kafka, err = harness.StartKafkaProcess(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start Apache Kafka:", err)
		os.Exit(1)
	}
	code := m.Run()
	kafka.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the repository root, for contracts/.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// writeConfig writes a YAML config with ${BROKERS} and ${CONTRACTS} substituted.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	yaml = strings.ReplaceAll(yaml, "${BROKERS}", kafka.Brokers()[0])
	yaml = strings.ReplaceAll(yaml, "${CONTRACTS}", filepath.Join(repoRoot(), "contracts"))
	path := filepath.Join(t.TempDir(), "switchyard.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// uniqueName returns a topic/group-safe name unique to this test run.
func uniqueName(t *testing.T, what string) string {
	return fmt.Sprintf("%s-%s-%d", strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())), what, time.Now().UnixNano()%1e9)
}

// readAll reads every record of topic from the start until n records were read or the
// deadline passes.
func readAll(t *testing.T, topic string, n int, within time.Duration) []*kgo.Record {
	t.Helper()
	return readUntil(t, topic, within, func(recs []*kgo.Record) bool { return len(recs) >= n })
}

// readUntil reads topic from the start until done holds for what was read, or the deadline
// passes.
func readUntil(t *testing.T, topic string, within time.Duration, done func([]*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	return readUntilWith(t, topic, within, nil, done)
}

// readUntilWith is readUntil with more client options (e.g. read_committed).
func readUntilWith(t *testing.T, topic string, within time.Duration, opts []kgo.Opt, done func([]*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	cl := kafka.NewClient(t, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var out []*kgo.Record
	for !done(out) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dlqCoord is the source coordinates a dead letter carries in its headers,
// "topic/partition/offset", as tests key produced invalid events.
func dlqCoord(r *kgo.Record) string {
	return fmt.Sprintf("%s/%s/%s", header(r, pipelines.HeaderTopic), header(r, pipelines.HeaderPartition), header(r, pipelines.HeaderOffset))
}

// readDeadLetters reads the dead-letter topic until it holds every invalid event (keyed by
// source coordinates) or a minute passes.
func readDeadLetters(t *testing.T, topic string, invalid map[string]bool) []*kgo.Record {
	t.Helper()
	return readUntil(t, topic, time.Minute, func(recs []*kgo.Record) bool {
		seen := map[string]bool{}
		for _, r := range recs {
			seen[dlqCoord(r)] = true
		}
		for coord := range invalid {
			if !seen[coord] {
				return false
			}
		}
		return true
	})
}

// lostEvents lists the valid events (by id) that did not land according to counts, and the
// invalid events (by source coordinates) missing from the dead letters.
func lostEvents[V any](counts map[string]int, valid map[string]V, invalid map[string]bool, dlq []*kgo.Record) []string {
	var lost []string
	for id := range valid {
		if counts[id] == 0 {
			lost = append(lost, id)
		}
	}
	dead := map[string]bool{}
	for _, r := range dlq {
		dead[dlqCoord(r)] = true
	}
	for coord := range invalid {
		if !dead[coord] {
			lost = append(lost, "invalid@"+coord)
		}
	}
	return lost
}
