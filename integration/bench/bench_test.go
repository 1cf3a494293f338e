// Package bench measures the daemon end to end against a real Apache Kafka broker: events/s,
// CPU-µs per event and peak RSS of the switchyard process, for Kafka -> decode + validate ->
// sink. Run with `make bench`.
package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/integration/harness"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

func buildDaemon(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "switchyard")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/switchyard")
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// payloads returns n distinct Confluent-framed BidPlaced payloads (about 200 bytes each).
func payloads(b *testing.B, n int) [][]byte {
	b.Helper()
	reg, err := contract.Load(filepath.Join(repoRoot(), "contracts"))
	if err != nil {
		b.Fatal(err)
	}
	gen, err := eventgen.New(reg, eventgen.Options{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	out := make([][]byte, n)
	for i := range out {
		ev, err := gen.Make(eventgen.BidPlaced, eventgen.Valid, contract.Confluent)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = ev.Payload
	}
	return out
}

// preload produces total events over the topic's partitions and waits for them.
func preload(b *testing.B, k *harness.Kafka, topic string, total int, values [][]byte) float64 {
	b.Helper()
	cl := k.NewClient(b, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(10*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(200_000), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	defer cl.Close()
	var size int
	for i := range total {
		v := values[i%len(values)]
		size += len(v)
		cl.Produce(context.Background(), &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Errorf("preload: %v", err)
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	return float64(size) / float64(total)
}

func endOffsets(b *testing.B, adm *kadm.Client, topic string) int64 {
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		return 0
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

type result struct {
	events   int
	elapsed  time.Duration
	cpu      time.Duration
	maxRSSKB int64
}

// runDaemon runs the daemon on config until want records are in topic out, then stops it
// with SIGTERM and returns its resource usage.
func runDaemon(b *testing.B, k *harness.Kafka, bin, config, out string, want int) result {
	b.Helper()
	adm := kadm.NewClient(k.NewClient(b))
	logf, err := os.Create(filepath.Join(b.TempDir(), "daemon.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "run", "--config", config, "--log-format", "json", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	cpuProfile(b)
	var first time.Time
	deadline := time.Now().Add(15 * time.Minute)
	for {
		n := endOffsets(b, adm, out)
		if n > 0 && first.IsZero() {
			first = time.Now()
		}
		if n >= int64(want) {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			b.Fatalf("only %d of %d events landed in 15 minutes; log %s", n, want, logf.Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(first)
	hwm := peakRSSKB(cmd.Process.Pid)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("daemon exit: %v; log %s", err, logf.Name())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return result{events: want, elapsed: elapsed, cpu: cpu, maxRSSKB: hwm}
}

// peakRSSKB is the peak RSS in KiB of the running process pid: VmHWM, the high-water mark of
// its own address space. Not wait4's ru_maxrss: Linux carries the parent's high-water mark
// across fork and exec into the child's, and Go starts children with a vfork-style clone that
// shares the benchmark process's memory until exec, so ru_maxrss reported the benchmark
// process's own peak (750 MB: the preloaded events and the BigQuery fake's rows of earlier
// scenarios) for a daemon that never held 200.
func peakRSSKB(pid int) int64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	return statusKB(status, "VmHWM:")
}

// unvalidatedBid is auctions.v1.BidPlaced without its protovalidate rules (same field numbers
// and types, so the same payloads decode): the benchmark's "decode only" case, comparable to
// peers that decode without validating.
const unvalidatedBid = `syntax = "proto3";
package bench.v1;
import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
message BidPlaced {
  string event_id = 1;
  google.protobuf.Timestamp occurred_at = 2;
  string auction_id = 3;
  string lot_id = 4;
  string bidder_id = 5;
  string bidder_email = 6;
  Money amount = 7;
  Money max_auto_bid = 8;
  int32 source = 9;
  uint64 sequence = 10;
  int32 quantity = 11;
  google.protobuf.Duration time_remaining = 12;
  sint64 client_clock_skew_ms = 13;
  google.protobuf.StringValue promo_code = 14;
}
// After BidPlaced, so that BidPlaced is message index [0], as in the framed payloads.
message Money { string currency_code = 1; int64 units = 2; int32 nanos = 3; }
`

const kafkaSinkConfig = `
kafka:
  brokers: ["%[1]s"]
contracts:
  path: %[2]s
admin:
  address: "%[5]s"
pipelines:
  - name: bench
    owner: {team: bench, contact: bench}
    source:
      topics: [%[3]s]
      group: %[3]s-group
      max_batch: 2000
      max_in_flight: 10000
    contract:
      encoding: confluent
      message: %[6]s
    sinks:
      - name: out
        kafka: {topic: %[3]s-out, encoding: %[4]s%[7]s}
        batch: {max_rows: 10000, max_bytes: 8MiB, interval: 50ms}
        max_in_flight: 4
    routes:
      # The benchmark measures decode + validate + pass-through of the original bytes; the
      # PII hash of bidder_email (a transform) is measured separately in transforms/.
      - sink: out
        pii: raw
        pii_reason: benchmark of the pass-through path
    dead_letter:
      topic: %[3]s-dlq
`

// BenchmarkKafkaToKafka: 1M BidPlaced events (about 230 bytes) over 8 partitions, through
// decode + validate to another topic; Confluent framing passed through untouched, or stripped
// to raw protobuf. The decode-only case uses the same payloads with a rule-free contract.
func BenchmarkKafkaToKafka(b *testing.B) {
	total := envInt("SWITCHYARD_BENCH_EVENTS", 1_000_000)
	harness.UseJVMArgs(harness.BenchmarkJVMArgs)
	k := harness.StartKafka(b)
	bin := buildDaemon(b)
	values := payloads(b, 20_000)
	contracts := filepath.Join(b.TempDir(), "contracts")
	if err := os.CopyFS(contracts, os.DirFS(filepath.Join(repoRoot(), "contracts"))); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(contracts, "bench", "v1"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(contracts, "bench", "v1", "bid.proto"), []byte(unvalidatedBid), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, enc, message, sink string }{
		{"validate/encoding=confluent", "confluent", "auctions.v1.BidPlaced", ""},
		{"validate/encoding=protobuf", "protobuf", "auctions.v1.BidPlaced", ""},
		// Decoded, validated and re-encoded as protobuf JSON (protojson).
		{"validate/encoding=json", "json", "auctions.v1.BidPlaced", ""},
		{"decode-only/encoding=confluent", "confluent", "bench.v1.BidPlaced", ""},
		// One transaction per source batch (the output's end offsets include the commit
		// markers, a few hundred of a million, so the run ends that much early).
		{"validate/encoding=confluent/exactly_once", "confluent", "auctions.v1.BidPlaced", ", exactly_once: true"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			topic := fmt.Sprintf("bench-%s-%d", tc.enc, time.Now().UnixNano())
			k.CreateTopic(b, topic, 8)
			k.CreateTopic(b, topic+"-out", 8)
			avg := preload(b, k, topic, total, values)
			config := filepath.Join(b.TempDir(), "bench.yaml")
			yaml := fmt.Sprintf(kafkaSinkConfig, k.Brokers()[0], contracts, topic, tc.enc, os.Getenv("SWITCHYARD_BENCH_ADMIN"), tc.message, tc.sink)
			if profileDir() != "" {
				yaml = strings.Replace(yaml, "admin:\n", "admin:\n  pprof: true\n", 1)
			}
			if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			r := runDaemon(b, k, bin, config, topic+"-out", total)
			b.StopTimer()
			report(b, r, avg, -1, "")
		})
	}
}

// report reports r as the benchmark's metrics and adds it to the results table, with the
// ClickHouse server's CPU-µs per event (serverPer, -1 when none) and a note.
func report(b *testing.B, r result, avgBytes float64, serverPer float64, note string) {
	eps := float64(r.events) / r.elapsed.Seconds()
	cpuPer := float64(r.cpu.Microseconds()) / float64(r.events)
	b.ReportMetric(eps, "events/s")
	b.ReportMetric(cpuPer, "cpu-µs/event")
	b.ReportMetric(float64(r.maxRSSKB)/1024, "peak-RSS-MB")
	b.ReportMetric(avgBytes, "bytes/event")
	b.Logf("%d events of %.0f bytes in %v: %.0f events/s, %.2f CPU-µs/event (%.1f CPU-s per million), peak RSS %.0f MB",
		r.events, avgBytes, r.elapsed.Round(time.Millisecond), eps, cpuPer, cpuPer, float64(r.maxRSSKB)/1024)
	if serverPer >= 0 {
		b.ReportMetric(serverPer, "server-cpu-µs/event")
	}
	addRow(row{scenario: b.Name(), eps: eps, cpuPer: cpuPer, rssMB: float64(r.maxRSSKB) / 1024, serverPer: serverPer, note: note})
}

func envInt(name string, def int) int {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		var n int
		if _, err := fmt.Sscan(v, &n); err == nil && n > 0 {
			return n
		}
	}
	return def
}
