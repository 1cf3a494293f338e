package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/integration/harness"
)

// opsConfig is a pipeline from %[1]s to the clickhouse sink "olap" at %[2]s, with the admin
// server on a random loopback port, a fast lag timer and a short stall_after, so the test can
// watch a held-down sink through /metrics and /readyz.
const opsConfig = `
kafka:
  brokers: ["${BROKERS}"]
contracts:
  path: ${CONTRACTS}
pii:
  hash_key: integration-test-key
admin:
  address: "127.0.0.1:0"
pipelines:
  - name: bids
    owner: {team: auctions, contact: "#auctions"}
    source:
      topics: [%[1]s]
      group: %[1]s-group
      drain_timeout: 2s
      lag_interval: 250ms
      stall_after: 2s
    contract:
      encoding: confluent
      message: auctions.v1.BidPlaced
    sinks:
      - name: olap
        batch: {max_rows: 5000, interval: 50ms}
        retry: {initial_backoff: 50ms, max_backoff: 500ms}
        clickhouse:
          addresses: ["%[2]s"]
          create_table: true
    routes:
      - sink: olap
    dead_letter:
      topic: %[1]s-dlq
`

// adminAddr waits for the daemon's "admin server listening" line and returns its address.
func adminAddr(t *testing.T, logPath string) string {
	t.Helper()
	var addr string
	waitFor(t, time.Minute, "the admin server to listen", func() bool {
		b, _ := os.ReadFile(logPath)
		for _, line := range bytes.Split(b, []byte("\n")) {
			var rec struct{ Msg, Address string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "admin server listening" {
				addr = rec.Address
				return true
			}
		}
		return false
	})
	return addr
}

// scrape returns the sum of a metric's samples whose labels contain every given label pair,
// and how many samples matched.
func scrape(t *testing.T, addr, name string, labels ...string) (sum float64, n int) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(line, l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
		n++
	}
	return sum, n
}

func readyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOps_held_down_sink_shows_lag_stall_and_a_failed_drain holds a ClickHouse sink down
// (its server stopped) while records arrive: switchyard_consumer_lag_records rises to exactly
// the number waiting, while the fetch lag reads 0 since everything was fetched; the partitions
// are reported stalled (WARN, gauge, /readyz 503 listing them); once the server is back the lag
// returns to 0 and the partitions recover. Then the sink is held down again and the daemon gets
// SIGTERM: the drain times out, the log says per partition what was not committed, and the
// exit status is 1.
func TestOps_held_down_sink_shows_lag_stall_and_a_failed_drain(t *testing.T) {
	ch := harness.StartClickHouse(t)
	topic := uniqueName(t, "bids")
	kafka.CreateTopic(t, topic, 2)
	kafka.CreateTopic(t, topic+"-dlq", 1)
	config := writeConfig(t, fmt.Sprintf(opsConfig, topic, ch.Addr()))
	logPath := daemonLogPath(t)
	d := startDaemon(t, config, logPath)
	t.Cleanup(d.kill)
	addr := adminAddr(t, logPath)
	lane := []string{`pipeline="bids"`, `sink="olap"`}
	waitFor(t, time.Minute, "both partitions reporting lag 0 and /readyz 200", func() bool {
		lag, n := scrape(t, addr, "switchyard_consumer_lag_records", lane...)
		code, _ := readyz(t, addr)
		return n == 2 && lag == 0 && code == 200
	})

	ch.Stop()
	const n = 600
	p := produceBids(t, topic, n, 5)
	// franz-go's own client metrics (kprom) are on /metrics too, per client: the lane's
	// consumer counts the bytes it fetched (at least the records' values).
	waitFor(t, 30*time.Second, "the lane's consumer counting fetched bytes", func() bool {
		fetched, _ := scrape(t, addr, "switchyard_kafka_fetch_bytes_total", `client="source.bids.olap"`)
		return fetched >= n*100
	})
	waitFor(t, time.Minute, fmt.Sprintf("the committed lag to reach %d", n), func() bool {
		lag, _ := scrape(t, addr, "switchyard_consumer_lag_records", lane...)
		return lag == n
	})
	// Everything was fetched: the fetch position lag, what the old gauge showed, reads 0.
	waitFor(t, 30*time.Second, "the fetch lag to read 0", func() bool {
		lag, _ := scrape(t, addr, "switchyard_consumer_fetch_lag_records", lane...)
		return lag == 0
	})
	waitFor(t, 30*time.Second, "both partitions stalled", func() bool {
		stalled, _ := scrape(t, addr, "switchyard_partition_stalled", lane...)
		return stalled == 2
	})
	code, body := readyz(t, addr)
	if code != 503 || !strings.Contains(body, "2 stalled partitions") || !strings.Contains(body, topic+"/0 stalled") || !strings.Contains(body, topic+"/1 stalled") {
		t.Fatalf("/readyz while the sink is held down: %d %q, want 503 listing %s/0 and %s/1", code, body, topic, topic)
	}
	for _, want := range []string{
		`"level":"WARN","msg":"partition stalled: committed offset not moving","pipeline":"bids","sink":"olap","topic":"` + topic + `"`,
		`"level":"WARN","msg":"sink write failed","pipeline":"bids","sink":"olap"`,
	} {
		if b, _ := os.ReadFile(logPath); !bytes.Contains(b, []byte(want)) {
			t.Fatalf("daemon log lacks %s; log: %s", want, logPath)
		}
	}

	ch.Start(t)
	waitLanded(t, ch, len(p.valid), 2*time.Minute, logPath)
	waitFor(t, time.Minute, "the committed lag to return to 0, nothing stalled, /readyz 200", func() bool {
		lag, _ := scrape(t, addr, "switchyard_consumer_lag_records", lane...)
		stalled, _ := scrape(t, addr, "switchyard_partition_stalled", lane...)
		code, _ := readyz(t, addr)
		return lag == 0 && stalled == 0 && code == 200
	})
	if b, _ := os.ReadFile(logPath); bytes.Count(b, []byte(`"msg":"partition recovered: committed offset moving again"`)) != 2 {
		t.Fatalf("daemon log lacks a recovery line per partition; log: %s", logPath)
	}

	// Held down again, SIGTERM cannot drain: exit status 1 and the uncommitted records listed.
	ch.Stop()
	const m = 100
	produceBids(t, topic, m, 6)
	waitFor(t, time.Minute, fmt.Sprintf("the committed lag to reach %d", m), func() bool {
		lag, _ := scrape(t, addr, "switchyard_consumer_lag_records", lane...)
		return lag == m
	})
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("daemon did not exit within 90s of SIGTERM")
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("daemon exited with %v after a drain that could not finish, want exit status 1; log: %s", err, logPath)
	}
	b, _ := os.ReadFile(logPath)
	lines := regexp.MustCompile(`"level":"ERROR","msg":"drain did not finish; uncommitted records will be consumed again on restart","pipeline":"bids","sink":"olap","topic":"`+
		regexp.QuoteMeta(topic)+`","partition":\d,"committed_offset":\d+,"uncommitted_records":(\d+)`).FindAllSubmatch(b, -1)
	var uncommitted int
	for _, l := range lines {
		k, _ := strconv.Atoi(string(l[1]))
		uncommitted += k
	}
	for _, l := range lines {
		t.Logf("%s", l[0])
	}
	if len(lines) == 0 || uncommitted == 0 || uncommitted > m {
		t.Fatalf("%d drain lines naming %d uncommitted records, want 1 or 2 lines naming 1..%d; log: %s", len(lines), uncommitted, m, logPath)
	}
	if !bytes.Contains(b, []byte(`"msg":"stopped","exit_status":1`)) {
		t.Fatalf("daemon log lacks the final line with exit status 1; log: %s", logPath)
	}
}
