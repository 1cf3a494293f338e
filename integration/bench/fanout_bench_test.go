package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/twmb/franz-go/pkg/kadm"
	"google.golang.org/api/option"

	"github.com/switchyard-dev/switchyard/integration/harness"
	"github.com/switchyard-dev/switchyard/sinks/bigquery/bqfake"
)

const (
	bqProject = "switchyard-bench"
	bqDataset = "bench"
)

// startBQFake starts a bqfake server in the benchmark process with the dataset created
// through the real client library. Its CPU is the benchmark's, not the daemon's.
func startBQFake(b *testing.B) *bqfake.Server {
	b.Helper()
	fake, err := bqfake.New()
	if err != nil {
		b.Fatalf("start bqfake: %v", err)
	}
	b.Cleanup(fake.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := bigquery.NewClient(ctx, bqProject, option.WithEndpoint(fake.RESTEndpoint()), option.WithoutAuthentication())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	if err := client.Dataset(bqDataset).Create(ctx, &bigquery.DatasetMetadata{Location: "US"}); err != nil {
		b.Fatal(err)
	}
	return fake
}

// fanOutConfig is one pipeline from topic %[3]s with the sinks %[4]s, each with one route
// (%[5]s); %[6]s is extra top-level configuration (memory_limit).
const fanOutConfig = `
kafka:
  brokers: ["%[1]s"]
contracts:
  path: %[2]s
admin:
  address: "%[7]s"
  pprof: %[8]t
%[6]s
pipelines:
  - name: bench
    owner: {team: bench, contact: bench}
    source:
      topics: [%[3]s]
      group: %[3]s-group
    contract:
      encoding: confluent
      message: auctions.v1.BidPlaced
    sinks:
%[4]s
    routes:
%[5]s
    dead_letter:
      topic: %[3]s-dlq
`

// fanOut describes the sinks of a fan-out scenario, with the pipeline's defaults (no batch
// or in-flight tuning: these scenarios measure what the default configuration does).
type fanOut struct {
	clickhouse *harness.ClickHouse
	bq         *bqfake.Server
	kafka      bool
	extra      string // top-level YAML
}

func (f fanOut) yaml(k *harness.Kafka, topic, table string) string {
	var s, r strings.Builder
	route := func(sink string) {
		fmt.Fprintf(&r, "      - sink: %s\n        pii: raw\n        pii_reason: benchmark\n", sink)
	}
	if f.clickhouse != nil {
		fmt.Fprintf(&s, "      - name: olap\n        clickhouse: {addresses: [\"%s\"], table: %s, create_table: true}\n", f.clickhouse.Addr(), table)
		route("olap")
	}
	if f.bq != nil {
		fmt.Fprintf(&s, "      - name: warehouse\n        bigquery: {project: %s, dataset: %s, table: %s, endpoint: %q, grpc_endpoint: %q, insecure: true, create_table: true}\n",
			bqProject, bqDataset, table, f.bq.RESTEndpoint(), f.bq.GRPCAddr())
		route("warehouse")
	}
	if f.kafka {
		fmt.Fprintf(&s, "      - name: out\n        kafka: {topic: %s-out, encoding: confluent}\n", topic)
		route("out")
	}
	return fmt.Sprintf(fanOutConfig, k.Brokers()[0], filepath.Join(repoRoot(), "contracts"), topic,
		strings.TrimSuffix(s.String(), "\n"), strings.TrimSuffix(r.String(), "\n"), f.extra, os.Getenv("SWITCHYARD_BENCH_ADMIN"), profileDir() != "")
}

// landed is how many events each sink of f holds (the minimum over the sinks) and whether
// any holds one.
func (f fanOut) landed(k *harness.Kafka, adm *kadm.Client, topic, table string) (least int, any bool) {
	least = int(^uint(0) >> 1)
	count := func(n int) {
		least = min(least, n)
		any = any || n > 0
	}
	if f.clickhouse != nil {
		count(max(0, chRows(f.clickhouse, table)))
	}
	if f.bq != nil {
		count(f.bq.RowCount(bqProject, bqDataset, table))
	}
	if f.kafka {
		count(int(endOffsets(nil, adm, topic+"-out")))
	}
	return least, any
}

// startDaemon writes yaml to a file and starts the daemon on it.
func startDaemon(b *testing.B, bin, yaml string) *chDaemon {
	b.Helper()
	config := filepath.Join(b.TempDir(), "bench.yaml")
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	logDir := os.Getenv("SWITCHYARD_BENCH_LOG_DIR") // keep the daemon's log (e.g. with GODEBUG=gctrace=1)
	if logDir == "" {
		logDir = b.TempDir()
	}
	logf, err := os.CreateTemp(logDir, "daemon-*.log")
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", config, "--log-format", "json", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	d := &chDaemon{cmd: cmd, log: logf}
	b.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
		d.log.Close()
	})
	return d
}

// runFanOut preloads total events and runs the daemon with f's sinks until every sink holds
// all of them.
func runFanOut(b *testing.B, k *harness.Kafka, bin string, f fanOut, total int, values [][]byte) {
	topic := fmt.Sprintf("bench-fan-%d", time.Now().UnixNano())
	table := "bench_fan_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	k.CreateTopic(b, topic, 8)
	k.CreateTopic(b, topic+"-out", 8)
	avg := preload(b, k, topic, total, values)
	adm := kadm.NewClient(k.NewClient(b))
	serverBefore := time.Duration(-1)
	if f.clickhouse != nil {
		serverBefore = chServerCPU(f.clickhouse)
	}
	b.ResetTimer()
	d := startDaemon(b, bin, f.yaml(k, topic, table))
	cpuProfile(b)
	var first time.Time
	deadline := time.Now().Add(15 * time.Minute)
	for {
		n, any := f.landed(k, adm, topic, table)
		if any && first.IsZero() {
			first = time.Now()
		}
		if n >= total {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d events landed in every sink in 15 minutes; log %s", n, total, d.log.Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(first)
	heapProfile(b)
	cpu, rss := d.stop(b)
	b.StopTimer()
	serverPer := -1.0
	if serverBefore >= 0 {
		serverPer = float64((chServerCPU(f.clickhouse) - serverBefore).Microseconds()) / float64(total)
	}
	report(b, result{events: total, elapsed: elapsed, cpu: cpu, maxRSSKB: rss}, avg, serverPer, "default batch and in-flight settings")
}

// BenchmarkFanOut is one pipeline with default settings from a topic of BidPlaced events
// (decode + validate) to each single sink and to all three at once: ClickHouse 18.16,
// BigQuery (bqfake in the benchmark process, through the real client libraries) and Kafka
// (Confluent pass-through). The three-sink case is to be compared with the costliest single
// sink's CPU-µs per event.
func BenchmarkFanOut(b *testing.B) {
	total := envInt("SWITCHYARD_BENCH_EVENTS", 1_000_000)
	harness.UseJVMArgs(harness.BenchmarkJVMArgs) // every scenario against a production-like broker, whatever ran first
	k := harness.StartKafka(b)
	ch := harness.StartClickHouse(b)
	bq := startBQFake(b)
	bin := buildDaemon(b)
	values := payloads(b, 20_000)
	for _, tc := range []struct {
		name string
		f    fanOut
	}{
		{"sinks=clickhouse", fanOut{clickhouse: ch}},
		{"sinks=bigquery", fanOut{bq: bq}},
		{"sinks=kafka", fanOut{kafka: true}},
		{"sinks=clickhouse+bigquery+kafka", fanOut{clickhouse: ch, bq: bq, kafka: true}},
	} {
		b.Run(tc.name, func(b *testing.B) { runFanOut(b, k, bin, tc.f, total, values) })
	}
}

// memoryBudgetLimit is the memory_limit of BenchmarkMemoryBudget.
const memoryBudgetLimit = 128 << 20

// BenchmarkMemoryBudget runs a pipeline with a Kafka sink and a BigQuery sink whose server
// stops answering (bqfake.StartHang) once its first rows have landed: the BigQuery lane's
// backlog grows while the Kafka lane keeps landing every event. It reports the Kafka lane's
// throughput and the daemon's peak RSS (VmHWM) at the moment the last event reached Kafka,
// against memory_limit + 20%.
func BenchmarkMemoryBudget(b *testing.B) {
	total := envInt("SWITCHYARD_BENCH_EVENTS", 1_000_000)
	harness.UseJVMArgs(harness.BenchmarkJVMArgs) // every scenario against a production-like broker, whatever ran first
	k := harness.StartKafka(b)
	bq := startBQFake(b)
	bin := buildDaemon(b)
	values := payloads(b, 20_000)
	f := fanOut{bq: bq, kafka: true, extra: fmt.Sprintf("memory_limit: %dMiB", memoryBudgetLimit>>20)}
	topic := fmt.Sprintf("bench-budget-%d", time.Now().UnixNano())
	table := "bench_budget_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	k.CreateTopic(b, topic, 8)
	k.CreateTopic(b, topic+"-out", 8)
	avg := preload(b, k, topic, total, values)
	adm := kadm.NewClient(k.NewClient(b))
	b.ResetTimer()
	d := startDaemon(b, bin, f.yaml(k, topic, table))
	cpuProfile(b)
	var first time.Time
	deadline := time.Now().Add(15 * time.Minute)
	hung := false
	// The kernel keeps the peak of the whole RSS (VmHWM) only; the peak of its anonymous part,
	// what memory_limit governs (the executable's file-backed pages are outside any Go
	// limit), is sampled here.
	peakAnon := 0.0
	for {
		if a, _ := rssSplit(d.cmd.Process.Pid); a > peakAnon {
			peakAnon = a
		}
		if !hung && bq.RowCount(bqProject, bqDataset, table) > 0 {
			bq.StartHang()
			hung = true
		}
		n := int(endOffsets(b, adm, topic+"-out"))
		if n > 0 && first.IsZero() {
			first = time.Now()
		}
		if n >= total {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d events reached Kafka in 15 minutes; log %s", n, total, d.log.Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(first)
	heapProfile(b)
	cpu, hwm := procUsage(b, d.cmd.Process.Pid)
	anon, fileMB := rssSplit(d.cmd.Process.Pid)
	b.StopTimer()
	landedBQ := bq.RowCount(bqProject, bqDataset, table)
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	_ = d.cmd.Wait()
	bq.EndHang()
	if !hung {
		b.Fatal("no row reached BigQuery before the Kafka lane finished: the outage never began")
	}
	budget := float64(memoryBudgetLimit) * 1.2 / (1 << 20)
	verdict := func(mib float64) string {
		if mib > budget {
			return "OVER"
		}
		return "within"
	}
	note := fmt.Sprintf("bigquery hung after %d rows; memory_limit %d MiB, +20%% = %.0f MiB: peak RSS %.0f MiB %s, its anonymous part (sampled every 20ms) peaked at %.0f MiB, %s; RSS at the end %.0f MiB anonymous + %.0f MiB file-backed (executable)",
		landedBQ, memoryBudgetLimit>>20, budget, float64(hwm)/1024, verdict(float64(hwm)/1024), peakAnon, verdict(peakAnon), anon, fileMB)
	b.Log(note)
	report(b, result{events: total, elapsed: elapsed, cpu: cpu, maxRSSKB: hwm}, avg, -1, note)
}

// procUsage is the CPU time (user+sys) and peak RSS in KiB (VmHWM) of a running process.
func procUsage(b *testing.B, pid int) (time.Duration, int64) {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	hwm := statusKB(status, "VmHWM:")
	return time.Duration(ut+st) * time.Second / 100, hwm
}

// statusKB is the value in KiB of a field of /proc/<pid>/status, or 0.
func statusKB(status []byte, field string) int64 {
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// rssSplit is the current anonymous and file-backed RSS of a process in MiB: the file-backed
// part is mostly the daemon's own executable (about 80 MB of text and data), which the Go
// runtime's memory limit does not cover.
func rssSplit(pid int) (anon, file float64) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	return float64(statusKB(status, "RssAnon:")) / 1024, float64(statusKB(status, "RssFile:")) / 1024
}

// profileDir is $SWITCHYARD_BENCH_PROFILE_DIR: with it (and SWITCHYARD_BENCH_ADMIN) the
// fan-out and memory-budget scenarios turn on admin.pprof and save a CPU profile of the first
// seconds of the run, a heap profile right after it (under load) and one at the end there,
// named after the scenario.
func profileDir() string {
	if os.Getenv("SWITCHYARD_BENCH_ADMIN") == "" {
		return ""
	}
	return os.Getenv("SWITCHYARD_BENCH_PROFILE_DIR")
}

func profileFile(b *testing.B, kind string) string {
	name := strings.NewReplacer("/", "_", "=", "-", "+", "_").Replace(b.Name())
	return filepath.Join(profileDir(), name+"."+kind+".pprof")
}

// fetchProfile saves the admin server's /debug/pprof/<path> to file.
func fetchProfile(path, file string) error {
	resp, err := http.Get("http://" + os.Getenv("SWITCHYARD_BENCH_ADMIN") + "/debug/pprof/" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, body, 0o644)
}

// cpuProfile starts saving a CPU profile of SWITCHYARD_BENCH_PROFILE_SECONDS (default 5)
// seconds, beginning 2 s after the daemon started.
func cpuProfile(b *testing.B) {
	if profileDir() == "" {
		return
	}
	file := profileFile(b, "cpu")
	secs := envInt("SWITCHYARD_BENCH_PROFILE_SECONDS", 5)
	go func() {
		time.Sleep(2 * time.Second)
		if err := fetchProfile(fmt.Sprintf("profile?seconds=%d", secs), file); err != nil {
			fmt.Fprintf(os.Stderr, "cpu profile: %v\n", err)
		}
		// The heap under load, for what the daemon holds while it runs (the end-of-run profile
		// shows what is left).
		if err := fetchProfile("heap", profileFile(b, "heap-under-load")); err != nil {
			fmt.Fprintf(os.Stderr, "heap profile: %v\n", err)
		}
	}()
}

// heapProfile saves the daemon's heap profile (in use and allocated).
func heapProfile(b *testing.B) {
	if profileDir() == "" {
		return
	}
	if err := fetchProfile("heap", profileFile(b, "heap")); err != nil {
		b.Logf("heap profile: %v", err)
	}
}
