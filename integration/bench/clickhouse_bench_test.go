package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/integration/harness"
)

// clickHouseSinkConfig is Kafka topic %[3]s -> decode + validate -> the clickhouse sink at
// %[4]s, table %[5]s created from the contract. bidder_email passes raw, as in the Kafka
// benchmark: the PII hash is measured in transforms/.
//
// Tuning, from runs of 1M events on 2 cores: inserts of up to 50000 rows with 8 in flight
// land about 1.5-2x what 20000 rows with 4 in flight do (18.16 spends one thread per insert);
// a source max_in_flight of 50000 per partition instead of 10000 gains little and more than
// doubles peak RSS. 8 inserts of 50000 rows in flight are some 400k decoded records: more than
// the default memory_limit (256MiB) lets one lane hold, so this tuned scenario raises it.
const clickHouseSinkConfig = `
memory_limit: 1GiB
kafka:
  brokers: ["%[1]s"]
contracts:
  path: %[2]s
admin:
  address: "%[6]s"
pipelines:
  - name: bench
    owner: {team: bench, contact: bench}
    source:
      topics: [%[3]s]
      group: %[3]s-group
      max_batch: 5000
      max_in_flight: 10000
    contract:
      encoding: confluent
      message: auctions.v1.BidPlaced
    sinks:
      - name: olap
        batch: {max_rows: 50000, max_bytes: 32MiB, interval: 100ms}
        max_in_flight: 8
        clickhouse:
          addresses: ["%[4]s"]
          table: %[5]s
          create_table: true
    routes:
      - sink: olap
        pii: raw
        pii_reason: benchmark of decode, validate and insert
    dead_letter:
      topic: %[3]s-dlq
`

// chDaemon is a switchyard process landing one topic in one ClickHouse table.
type chDaemon struct {
	cmd   *exec.Cmd
	log   *os.File
	table string
}

// startCHDaemon writes the configuration for topic -> table and starts the daemon.
func startCHDaemon(b *testing.B, k *harness.Kafka, ch *harness.ClickHouse, bin, topic, table string) *chDaemon {
	b.Helper()
	config := filepath.Join(b.TempDir(), "bench.yaml")
	yaml := fmt.Sprintf(clickHouseSinkConfig, k.Brokers()[0], filepath.Join(repoRoot(), "contracts"), topic, ch.Addr(), table, os.Getenv("SWITCHYARD_BENCH_ADMIN"))
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(b.TempDir(), "daemon.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", config, "--log-format", "json", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	d := &chDaemon{cmd: cmd, log: logf, table: table}
	b.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
		d.log.Close()
	})
	return d
}

// stop sends SIGTERM, waits for a clean exit and returns the process's CPU time and peak RSS.
func (d *chDaemon) stop(b *testing.B) (cpu time.Duration, maxRSSKB int64) {
	b.Helper()
	hwm := peakRSSKB(d.cmd.Process.Pid) // not ru_maxrss, see peakRSSKB
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		b.Fatalf("daemon exit: %v; log %s", err, d.log.Name())
	}
	ru := d.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), hwm
}

// chRows is count() of table, or -1 while it cannot be read (not created yet).
func chRows(ch *harness.ClickHouse, table string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := ch.QueryContext(ctx, "SELECT count() FROM "+table)
	if err != nil || len(rows) != 1 {
		return -1
	}
	n, _ := strconv.Atoi(rows[0][0])
	return n
}

// chServerCPU is the CPU time of the clickhouse-server process of ch (found by its config
// file next to its log), or -1 when it cannot be read.
func chServerCPU(ch *harness.ClickHouse) time.Duration {
	config := filepath.Join(filepath.Dir(ch.LogPath()), "config.xml")
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmd, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(cmd, []byte("--config-file="+config)) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
		if err != nil {
			return -1
		}
		// Fields after the parenthesised command: state is field 3, utime 14, stime 15.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		if len(f) < 13 {
			return -1
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
	}
	return -1
}

// BenchmarkKafkaToClickHouse lands BidPlaced events (about 200 bytes, 8 partitions) through
// decode + validate into a ClickHouse table created from the contract, with the daemon as a
// separate process and clickhouse-server (Debian's 18.16) on the same machine.
//
//   - throughput: SWITCHYARD_BENCH_EVENTS (default 1M) preloaded events; events/s from the
//     first row in the table to the last, CPU-µs per event and peak RSS of the daemon, and
//     the server's CPU-µs per event.
//   - latency: events produced at a steady half of the measured rate for
//     SWITCHYARD_BENCH_LATENCY_SECONDS (default 20); each event's latency runs from its
//     Kafka record timestamp (set when it is produced) to the first poll of the table (every
//     10 ms) that sees its row, so it is an upper bound by up to one poll interval.
func BenchmarkKafkaToClickHouse(b *testing.B) {
	total := envInt("SWITCHYARD_BENCH_EVENTS", 1_000_000)
	harness.UseJVMArgs(harness.BenchmarkJVMArgs) // every scenario against a production-like broker, whatever ran first
	k := harness.StartKafka(b)
	ch := harness.StartClickHouse(b)
	bin := buildDaemon(b)
	values := payloads(b, 20_000)
	maxRate := 0.0

	b.Run("throughput", func(b *testing.B) {
		topic := fmt.Sprintf("bench-ch-%d", time.Now().UnixNano())
		table := "bench_throughput_" + strconv.FormatInt(time.Now().UnixNano(), 36)
		k.CreateTopic(b, topic, 8)
		avg := preload(b, k, topic, total, values)
		serverBefore := chServerCPU(ch)
		b.ResetTimer()
		d := startCHDaemon(b, k, ch, bin, topic, table)
		var first time.Time
		deadline := time.Now().Add(15 * time.Minute)
		for {
			n := chRows(ch, table)
			if n > 0 && first.IsZero() {
				first = time.Now()
			}
			if n >= total {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d events landed in 15 minutes; log %s", n, total, d.log.Name())
			}
			time.Sleep(20 * time.Millisecond)
		}
		elapsed := time.Since(first)
		cpu, rss := d.stop(b)
		b.StopTimer()
		serverCPU := chServerCPU(ch) - serverBefore
		if n := chRows(ch, table); n != total {
			b.Fatalf("%d rows in %s after the run, want %d", n, table, total)
		}
		perEvent := -1.0
		if serverBefore >= 0 {
			perEvent = float64(serverCPU.Microseconds()) / float64(total)
			b.Logf("clickhouse-server %s: %.2f CPU-µs/event", ch.Version(), perEvent)
		}
		report(b, result{events: total, elapsed: elapsed, cpu: cpu, maxRSSKB: rss}, avg, perEvent, "")
		maxRate = float64(total) / elapsed.Seconds()
	})

	b.Run("latency_at_half_max_rate", func(b *testing.B) {
		if maxRate == 0 {
			b.Fatal("the throughput benchmark did not run; run both (-bench KafkaToClickHouse)")
		}
		rate := envInt("SWITCHYARD_BENCH_LATENCY_RATE", int(maxRate/2))
		seconds := envInt("SWITCHYARD_BENCH_LATENCY_SECONDS", 20)
		topic := fmt.Sprintf("bench-ch-latency-%d", time.Now().UnixNano())
		table := "bench_latency_" + strconv.FormatInt(time.Now().UnixNano(), 36)
		const partitions = 8
		k.CreateTopic(b, topic, partitions)
		d := startCHDaemon(b, k, ch, bin, topic, table)
		cl := k.NewClient(b, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond),
			kgo.MaxBufferedRecords(200_000), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
		defer cl.Close()

		// Warm up: the daemon joins its group, creates the table and lands a first batch.
		for i := range 1000 {
			cl.Produce(context.Background(), &kgo.Record{Value: values[i%len(values)]}, nil)
		}
		if err := cl.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for chRows(ch, table) < 1000 {
			if time.Now().After(deadline) {
				b.Fatalf("warm-up events did not land within a minute; log %s", d.log.Name())
			}
			time.Sleep(20 * time.Millisecond)
		}

		// produced[p][o] is the record timestamp of offset o of partition p; offsets below
		// start[p] are the warm-up's.
		var mu sync.Mutex
		produced := make([][]time.Time, partitions)
		start := make([]int64, partitions)
		for p := range start {
			start[p] = -1
		}
		landed := newLandedPoller(ch.Open(b), table, topic, partitions)
		pollDone := make(chan struct{})
		go func() {
			defer close(pollDone)
			landed.run(10 * time.Millisecond)
		}()

		b.ResetTimer()
		n := rate * seconds
		tick := 5 * time.Millisecond
		perTick := float64(rate) * tick.Seconds()
		tk := time.NewTicker(tick)
		owed := 0.0
		for sent := 0; sent < n; {
			<-tk.C
			for owed += perTick; owed >= 1 && sent < n; owed-- {
				cl.Produce(context.Background(), &kgo.Record{Value: values[sent%len(values)]}, func(r *kgo.Record, err error) {
					if err != nil {
						b.Errorf("produce: %v", err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					p := r.Partition
					if start[p] < 0 {
						start[p] = r.Offset
					}
					if i := int(r.Offset - start[p]); i != len(produced[p]) {
						b.Errorf("partition %d: offset %d acknowledged out of order", p, r.Offset)
					}
					produced[p] = append(produced[p], r.Timestamp)
				})
				sent++
			}
		}
		tk.Stop()
		if err := cl.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		deadline = time.Now().Add(5 * time.Minute)
		for chRows(ch, table) < 1000+n {
			if time.Now().After(deadline) {
				b.Fatalf("not every event landed within 5 minutes; log %s", d.log.Name())
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // one more poll
		landed.stop()
		<-pollDone
		b.StopTimer()
		latCPU, latRSS := d.stop(b)
		if landed.err != nil {
			b.Fatal(landed.err)
		}

		var lat []time.Duration
		// p99 per 5 s of production: a rising series means the rate was not sustainable.
		windows := make([][]time.Duration, seconds/5+1)
		mu.Lock()
		first := time.Now()
		for p := range produced {
			if len(produced[p]) > 0 && produced[p][0].Before(first) {
				first = produced[p][0]
			}
		}
		for p := range produced {
			for i, ts := range produced[p] {
				at, ok := landed.at(p, start[p]+int64(i))
				if !ok {
					b.Fatalf("partition %d offset %d landed but the poller never saw it", p, start[p]+int64(i))
				}
				lat = append(lat, at.Sub(ts))
				w := min(len(windows)-1, int(ts.Sub(first)/(5*time.Second)))
				windows[w] = append(windows[w], at.Sub(ts))
			}
		}
		mu.Unlock()
		var series []string
		for _, w := range windows {
			if len(w) > 0 {
				slices.Sort(w)
				series = append(series, w[min(len(w)-1, len(w)*99/100)].Round(time.Millisecond).String())
			}
		}
		b.Logf("p99 per 5 s of production: %s", strings.Join(series, " "))
		slices.Sort(lat)
		q := func(f float64) time.Duration { return lat[min(len(lat)-1, int(f*float64(len(lat))))] }
		b.ReportMetric(float64(rate), "events/s")
		b.ReportMetric(float64(q(0.50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		addRow(row{scenario: b.Name(), eps: float64(rate), cpuPer: float64(latCPU.Microseconds()) / float64(n+1000),
			rssMB: float64(latRSS) / 1024, serverPer: -1,
			note: fmt.Sprintf("steady rate; produce-to-landed p50 %v, p99 %v", q(0.50).Round(time.Millisecond), q(0.99).Round(time.Millisecond))})
		b.Logf("%d events at %d events/s (max %.0f): produce-to-landed p50 %v, p99 %v, max %v (batch interval 100ms; %d polls of the table, %v each on average)",
			len(lat), rate, maxRate, q(0.50).Round(time.Millisecond), q(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond),
			landed.polls, (landed.spent / time.Duration(max(1, landed.polls))).Round(time.Microsecond))
	})
}

// landedPoller records when each row of a table, by (_partition, _offset), was first seen.
// Rows may land out of offset order (batches are written concurrently), so each poll reads
// every row above the partition's contiguous landed prefix.
type landedPoller struct {
	conn  driver.Conn
	table string
	topic string
	quit  chan struct{}
	err   error
	polls int
	spent time.Duration // total time of the polls

	mu     sync.Mutex
	prefix []int64               // offsets <= prefix[p] of partition p have landed
	seen   []map[int64]time.Time // first-seen time of offsets above prefix[p]
	below  []map[int64]time.Time // first-seen time of offsets at or below prefix[p]
}

func newLandedPoller(conn driver.Conn, table, topic string, partitions int) *landedPoller {
	l := &landedPoller{conn: conn, table: table, topic: topic, quit: make(chan struct{}),
		prefix: make([]int64, partitions), seen: make([]map[int64]time.Time, partitions), below: make([]map[int64]time.Time, partitions)}
	for p := range partitions {
		l.prefix[p] = -1
		l.seen[p] = map[int64]time.Time{}
		l.below[p] = map[int64]time.Time{}
	}
	return l
}

func (l *landedPoller) stop() { close(l.quit) }

// run polls every interval until stop.
func (l *landedPoller) run(interval time.Duration) {
	for {
		select {
		case <-l.quit:
			return
		case <-time.After(interval):
		}
		if err := l.poll(); err != nil {
			l.err = err
			return
		}
	}
}

func (l *landedPoller) poll() error {
	l.mu.Lock()
	conds := make([]string, len(l.prefix))
	for p, o := range l.prefix {
		conds[p] = fmt.Sprintf("(_partition = %d AND _offset > %d)", p, o)
	}
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The _topic condition lets the primary key (_topic, _partition, _offset) skip the rows
	// already seen.
	began := time.Now()
	rows, err := l.conn.Query(ctx, fmt.Sprintf("SELECT _partition, _offset FROM %s WHERE _topic = '%s' AND (%s)", l.table, l.topic, strings.Join(conds, " OR ")))
	if err != nil {
		return fmt.Errorf("poll %s: %w", l.table, err)
	}
	defer rows.Close()
	type row struct {
		p int32
		o int64
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.p, &r.o); err != nil {
			return fmt.Errorf("poll %s: %w", l.table, err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("poll %s: %w", l.table, err)
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.polls++
	l.spent += now.Sub(began)
	for _, r := range got {
		if _, ok := l.seen[r.p][r.o]; !ok && r.o > l.prefix[r.p] {
			l.seen[r.p][r.o] = now
		}
	}
	for p := range l.prefix {
		for {
			t, ok := l.seen[p][l.prefix[p]+1]
			if !ok {
				break
			}
			l.prefix[p]++
			delete(l.seen[p], l.prefix[p])
			l.below[p][l.prefix[p]] = t
		}
	}
	return nil
}

// at is when the row of partition p at offset o was first seen.
func (l *landedPoller) at(p int, o int64) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.below[p][o]; ok {
		return t, true
	}
	t, ok := l.seen[p][o]
	return t, ok
}
