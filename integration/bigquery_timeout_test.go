package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBigQuery_hung_server_times_out_and_recovers runs a daemon with two bigquery sinks
// (default stream, and exactly_once) on one pipeline and makes the fake stop answering —
// connections and streams stay open, appends and every other call go unanswered — while
// events keep coming. Each sink's writes time out: the daemon logs a warning naming the
// timeout and reports the sink down (switchyard_sink_up 0); nothing lands. Once the fake
// answers again every valid event lands in both tables (once in the exactly_once one, even
// though appends the sink gave up on are answered and land late), every invalid one is
// dead-lettered, and both sinks are up again.
func TestBigQuery_hung_server_times_out_and_recovers(t *testing.T) {
	const (
		hang = 20 * time.Second
		rate = 300 // events/s
	)
	e := newBQEnv(t)
	topic := uniqueName(t, "orders")
	kafka.CreateTopic(t, topic, 4)
	// Retry for longer than the hang, so the backlog waits in the runner.
	const retry = "{max_attempts: 60, initial_backoff: 100ms, max_backoff: 2s}"
	sinks, routes := e.sinks(bqSinkSpec{"alo", "orders_alo", false, retry}, bqSinkSpec{"eo", "orders_eo", true, retry})
	sinks = strings.ReplaceAll(sinks, "          exactly_once:",
		"          append_timeout: 2s\n          request_timeout: 2s\n          exactly_once:")
	config := writeConfig(t, fmt.Sprintf(bqConfig, topic, sinks, routes))
	d := startBQDaemon(t, config, filepath.Join(logDir(t), "daemon.log"))
	labels := func(sink string) []string { return []string{`pipeline="orders"`, `sink="` + sink + `"`} }

	load := startOrderLoad(t, topic, rate, 303)
	waitFor(t, time.Minute, "rows in both tables before the hang", func() bool {
		return e.fake.RowCount(bqProject, bqDataset, "orders_alo") > 0 && e.fake.RowCount(bqProject, bqDataset, "orders_eo") > 0
	})
	for _, sink := range []string{"alo", "eo"} {
		if up := d.metric(t, "switchyard_sink_up", labels(sink)...); up != 1 {
			t.Fatalf("sink %s: switchyard_sink_up = %v before the hang", sink, up)
		}
	}

	e.fake.StartHang()
	began := time.Now()
	// Appends the fake was applying when the hang began may still land.
	waitFor(t, 10*time.Second, "appends in flight at the hang's start to be answered", func() bool {
		return e.fake.InFlight() == e.fake.HeldAppends()
	})
	rowsAlo, rowsEo := e.fake.RowCount(bqProject, bqDataset, "orders_alo"), e.fake.RowCount(bqProject, bqDataset, "orders_eo")
	for _, sink := range []string{"alo", "eo"} {
		waitFor(t, 30*time.Second, "sink "+sink+" reported down", func() bool {
			return d.metric(t, "switchyard_sink_up", labels(sink)...) == 0
		})
	}
	t.Logf("both sinks down %v into the hang", time.Since(began).Round(100*time.Millisecond))
	waitFor(t, 30*time.Second, "a warning naming the timeout for both sinks", func() bool {
		w := timeoutWarnings(t, d.log)
		return w["alo"] != "" && w["eo"] != ""
	})
	for sink, msg := range timeoutWarnings(t, d.log) {
		t.Logf("sink %s logged: %s", sink, msg)
	}
	time.Sleep(time.Until(began.Add(hang)))
	if a, b := e.fake.RowCount(bqProject, bqDataset, "orders_alo"), e.fake.RowCount(bqProject, bqDataset, "orders_eo"); a != rowsAlo || b != rowsEo {
		t.Fatalf("rows landed during the hang: %d -> %d and %d -> %d", rowsAlo, a, rowsEo, b)
	}
	held := e.fake.HeldAppends()
	e.fake.EndHang()
	t.Logf("hang over after %v; %d appends were held", time.Since(began).Round(time.Second), held)

	time.Sleep(3 * time.Second)
	load.Stop(t)
	nValid, nInvalid := load.Produced()
	alo := e.waitLanded(t, "orders_alo", topic, load.valid, 2*time.Minute)
	eo := e.waitLanded(t, "orders_eo", topic, load.valid, 2*time.Minute)
	dlq := readDeadLetters(t, topic+"-dlq", load.invalid)
	checkNoneLost(t, "default stream (orders_alo)", alo, load.valid, load.invalid, dlq)
	checkNoneLost(t, "exactly_once (orders_eo)", eo, load.valid, load.invalid, dlq)
	// Appends answered late may still be landing: count once nothing is in flight.
	waitFor(t, 10*time.Second, "appends in flight to be answered", func() bool { return e.fake.InFlight() == 0 })
	eo = e.landed(t, "orders_eo", topic, load.valid)
	if dups := duplicates(eo); dups > 0 {
		t.Fatalf("exactly_once table orders_eo holds %d duplicate rows", dups)
	}
	for _, sink := range []string{"alo", "eo"} {
		waitFor(t, 30*time.Second, "sink "+sink+" up again", func() bool {
			return d.metric(t, "switchyard_sink_up", labels(sink)...) == 1
		})
	}
	d.terminate(t)
	t.Logf("after a %v hang: %d valid events in both tables (default stream: %d duplicate rows; exactly_once: none), %d invalid in %d dead letters",
		hang, nValid, duplicates(e.landed(t, "orders_alo", topic, load.valid)), nInvalid, len(dlq))
}

// timeoutWarnings returns, per sink, the first "sink write failed" line (WARN or ERROR) of a
// daemon's JSON log whose error says a call got no answer within one of the sink's timeouts.
func timeoutWarnings(t *testing.T, logPath string) map[string]string {
	t.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Sink  string `json:"sink"`
			Error string `json:"error"`
		}
		// The engine's line for a failed write attempt, logged where it marks the sink down.
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "sink write failed" || (line.Level != "WARN" && line.Level != "ERROR") {
			continue
		}
		if !strings.Contains(line.Error, "no answer within append_timeout") && !strings.Contains(line.Error, "no answer within request_timeout") {
			continue
		}
		if out[line.Sink] == "" {
			out[line.Sink] = line.Msg + ": " + line.Error
		}
	}
	return out
}
