package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	bqv2 "google.golang.org/api/bigquery/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/sinks/bigquery/bqfake"
)

// The daemon-level BigQuery tests run the real switchyard binary against the harness's
// Apache Kafka broker and a bqfake server in the test process. The daemon reaches the fake
// over loopback through its sink options (endpoint, grpc_endpoint, insecure), so the whole
// path — config, table creation, the real BigQuery client libraries, retries, commits — is
// the one users run. The fake outlives every daemon process of a test.

const (
	bqProject = "switchyard-it"
	bqDataset = "events"
)

// bqConfig is a daemon configuration with one pipeline from topic %[1]s (OrderPaid) to the
// sinks %[2]s, one route per sink (%[3]s), and a dead-letter topic. The admin server
// listens on a random port, logged as "admin server listening".
const bqConfig = `
kafka:
  brokers: ["${BROKERS}"]
contracts:
  path: ${CONTRACTS}
admin:
  address: "127.0.0.1:0"
pipelines:
  - name: orders
    owner: {team: payments, contact: "#payments"}
    source:
      topics: [%[1]s]
      group: %[1]s-group
      drain_timeout: 5s
    contract:
      encoding: confluent
      message: orders.v1.OrderPaid
    sinks:
%[2]s
    routes:
%[3]s
    dead_letter:
      topic: %[1]s-dlq
`

// bqEnv is a bqfake server with the dataset created through the real client library.
type bqEnv struct {
	fake *bqfake.Server
}

func newBQEnv(t *testing.T) *bqEnv {
	t.Helper()
	fake, err := bqfake.New()
	if err != nil {
		t.Fatalf("start bqfake: %v", err)
	}
	t.Cleanup(fake.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := bigquery.NewClient(ctx, bqProject, option.WithEndpoint(fake.RESTEndpoint()), option.WithoutAuthentication())
	if err != nil {
		t.Fatalf("bigquery client for bqfake: %v", err)
	}
	defer client.Close()
	if err := client.Dataset(bqDataset).Create(ctx, &bigquery.DatasetMetadata{Location: "US"}); err != nil {
		t.Fatalf("create dataset %s in bqfake: %v", bqDataset, err)
	}
	return &bqEnv{fake: fake}
}

// sinks returns the YAML of bigquery sinks on the fake and their routes for bqConfig, one
// sink and one route per spec.
func (e *bqEnv) sinks(specs ...bqSinkSpec) (sinksYAML, routesYAML string) {
	var s, r strings.Builder
	for _, sp := range specs {
		fmt.Fprintf(&s, "      - name: %s\n", sp.name)
		if sp.retry != "" {
			fmt.Fprintf(&s, "        retry: %s\n", sp.retry)
		}
		fmt.Fprintf(&s, `        bigquery:
          project: %s
          dataset: %s
`, bqProject, bqDataset)
		if sp.table != "" {
			fmt.Fprintf(&s, "          table: %s\n", sp.table)
		}
		fmt.Fprintf(&s, `          endpoint: %s
          grpc_endpoint: %s
          insecure: true
          create_table: true
          clustering: [_topic, _partition]
          exactly_once: %t
`, e.fake.RESTEndpoint(), e.fake.GRPCAddr(), sp.exactlyOnce)
		fmt.Fprintf(&r, "      - sink: %s\n", sp.name)
	}
	return strings.TrimSuffix(s.String(), "\n"), strings.TrimSuffix(r.String(), "\n")
}

type bqSinkSpec struct {
	name, table string
	exactlyOnce bool
	retry       string // YAML flow mapping for the sink's retry key; the defaults when empty
}

// orderTable is the table derived from orders.v1.OrderPaid.
const orderTable = "orders_v1_order_paid"

// produced order, by event_id.
type orderCoord struct {
	partition   int32
	offset      int64
	orderID     string
	totalUnits  int64
	hasDuration bool
}

// orderLoad produces OrderPaid events (about 1% invalid or undecodable) to a topic at a
// steady rate in the background and remembers what it produced.
type orderLoad struct {
	topic string
	cl    *kgo.Client
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu      sync.Mutex
	valid   map[string]orderCoord // event_id -> where it was produced
	invalid map[string]bool       // "topic/partition/offset"
}

func startOrderLoad(t *testing.T, topic string, perSecond int, seed uint64) *orderLoad {
	t.Helper()
	reg, err := contract.Load(repoRootContracts())
	if err != nil {
		t.Fatal(err)
	}
	gen, err := eventgen.New(reg, eventgen.Options{Seed: seed, InvalidRate: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	l := &orderLoad{topic: topic, valid: map[string]orderCoord{}, invalid: map[string]bool{},
		cl: kafka.NewClient(t, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))}
	ctx, cancel := context.WithCancel(context.Background())
	l.stop = cancel
	const tick = 20 * time.Millisecond
	perTick := max(1, perSecond*int(tick)/int(time.Second))
	l.wg.Go(func() {
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for i := 0; ; {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			for range perTick {
				ev, err := gen.NextOf(eventgen.OrderPaid, contract.Confluent)
				if err != nil {
					t.Errorf("generate OrderPaid: %v", err)
					return
				}
				var c orderCoord
				if ev.Kind == eventgen.Valid {
					c = orderCoordOf(ev)
				}
				id := orderEventID(ev)
				rec := &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: ev.Payload}
				i++
				l.cl.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
					if err != nil {
						t.Errorf("produce to %s: %v", topic, err)
						return
					}
					l.mu.Lock()
					defer l.mu.Unlock()
					if ev.Kind == eventgen.Valid {
						c.partition, c.offset = r.Partition, r.Offset
						l.valid[id] = c
					} else {
						l.invalid[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)] = true
					}
				})
			}
		}
	})
	return l
}

// Stop stops producing and waits until everything produced is acknowledged.
func (l *orderLoad) Stop(t *testing.T) {
	t.Helper()
	l.stop()
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.cl.Flush(ctx); err != nil {
		t.Fatalf("flush producer: %v", err)
	}
}

// Produced is how many valid and invalid events were acknowledged so far.
func (l *orderLoad) Produced() (valid, invalid int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.valid), len(l.invalid)
}

func orderEventID(ev eventgen.Event) string {
	if ev.Message == nil {
		return ""
	}
	return ev.Message.Get(ev.Message.Descriptor().Fields().ByName("event_id")).String()
}

func orderCoordOf(ev eventgen.Event) orderCoord {
	m := ev.Message
	fields := m.Descriptor().Fields()
	total := m.Get(fields.ByName("total")).Message()
	return orderCoord{
		orderID:     m.Get(fields.ByName("order_id")).String(),
		totalUnits:  total.Get(total.Descriptor().Fields().ByName("units")).Int(),
		hasDuration: m.Has(fields.ByName("checkout_duration")),
	}
}

// startedDaemon is a daemon whose start-up finished: every sink opened.
type startedDaemon struct {
	*daemon
	admin   string // admin server address
	log     string
	stopped bool // killed or terminated
}

// spawnBQDaemon starts a daemon, killed at the end of the test unless it was stopped.
func spawnBQDaemon(t *testing.T, config, logPath string) *startedDaemon {
	t.Helper()
	d := &startedDaemon{daemon: startDaemon(t, config, logPath), log: logPath}
	t.Cleanup(func() {
		if !d.stopped {
			d.kill()
		}
	})
	return d
}

func (d *startedDaemon) kill() {
	d.stopped = true
	d.daemon.kill()
}

func (d *startedDaemon) terminate(t *testing.T) {
	t.Helper()
	d.stopped = true
	d.daemon.terminate(t)
}

// startBQDaemon starts a daemon and waits until it logged "switchyard running". It fails the
// test when the daemon logs an error first (a sink that could not open, for example).
func startBQDaemon(t *testing.T, config, logPath string) *startedDaemon {
	t.Helper()
	d := spawnBQDaemon(t, config, logPath)
	if err := d.waitRunning(t, time.Minute); err != nil {
		d.kill()
		t.Fatalf("daemon did not start: %v; log %s:\n%s", err, logPath, tail(logPath, 30))
	}
	return d
}

// waitRunning reads the daemon's JSON log until it reports running, an error, or the
// deadline passes.
func (d *startedDaemon) waitRunning(t *testing.T, within time.Duration) error {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		running, err := d.scanLog()
		if err != nil || running {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no %q log line within %v", "switchyard running", within)
}

func (d *startedDaemon) scanLog() (running bool, err error) {
	f, err := os.Open(d.log)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Level   string `json:"level"`
			Msg     string `json:"msg"`
			Address string `json:"address"`
			Error   string `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch {
		case line.Level == "ERROR":
			return false, fmt.Errorf("daemon logged %q: %s", line.Msg, line.Error)
		case line.Msg == "admin server listening":
			d.admin = line.Address
		case line.Msg == "switchyard running":
			return true, nil
		}
	}
	return false, nil
}

// logDir is a directory for daemon logs, removed after the test unless it failed.
func logDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "switchyard-bigquery-logs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// metric sums the samples of a metric whose labels include every one of labels
// (`name="value"` each) from the daemon's /metrics.
func (d *startedDaemon) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + d.admin + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", d.admin, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// evictGroupMembers removes every member of a consumer group, as the broker does once a
// member's session times out. A SIGKILLed daemon never leaves its groups, and switchyard
// does not configure the session timeout, so without this each restart would wait for the
// client default of 45s before the group rebalances. Nothing is committed for the members;
// their partitions simply become assignable.
func evictGroupMembers(t *testing.T, group string) {
	t.Helper()
	cl := kafka.NewClient(t)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dreq := kmsg.NewPtrDescribeGroupsRequest()
	dreq.Groups = []string{group}
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("describe group %s: %v", group, err)
	}
	if len(dresp.Groups) != 1 {
		t.Fatalf("describe group %s: %d groups in the response", group, len(dresp.Groups))
	}
	g := dresp.Groups[0]
	if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
		t.Fatalf("describe group %s: %v", group, err)
	}
	if len(g.Members) == 0 {
		return
	}
	lreq := kmsg.NewPtrLeaveGroupRequest()
	lreq.Group = group
	reason := "switchyard integration test: member was SIGKILLed"
	for _, m := range g.Members {
		lm := kmsg.NewLeaveGroupRequestMember()
		lm.MemberID = m.MemberID
		lm.Reason = &reason
		lreq.Members = append(lreq.Members, lm)
	}
	lresp, err := lreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("evict members of group %s: %v", group, err)
	}
	if err := kerr.ErrorForCode(lresp.ErrorCode); err != nil {
		t.Fatalf("evict members of group %s: %v", group, err)
	}
	for _, m := range lresp.Members {
		if err := kerr.ErrorForCode(m.ErrorCode); err != nil && err != kerr.UnknownMemberID {
			t.Fatalf("evict member %s of group %s: %v", m.MemberID, group, err)
		}
	}
}

// landed reads a table of the fake and checks every row against what was produced: each
// row is a produced valid event, at the Kafka coordinates it was produced at, with its
// values. It returns how often each event landed.
func (e *bqEnv) landed(t *testing.T, table, topic string, valid map[string]orderCoord) map[string]int {
	t.Helper()
	rows, err := e.fake.Rows(bqProject, bqDataset, table)
	if err != nil {
		t.Fatalf("read table %s: %v", table, err)
	}
	counts := map[string]int{}
	for i, r := range rows {
		id, _ := r["event_id"].(string)
		c, ok := valid[id]
		if !ok {
			t.Fatalf("table %s row %d: event_id %q was not produced as a valid event (row %v)", table, i, id, r)
		}
		total, _ := r["total"].(bqfake.Row)
		switch {
		case r["_topic"] != topic || r["_partition"] != int64(c.partition) || r["_offset"] != c.offset:
			t.Fatalf("table %s row %d (event %s): metadata %v/%v/%v, produced at %s/%d/%d", table, i, id, r["_topic"], r["_partition"], r["_offset"], topic, c.partition, c.offset)
		case r["_schema"] != eventgen.OrderPaid:
			t.Fatalf("table %s row %d: _schema %v", table, i, r["_schema"])
		case r["order_id"] != c.orderID || total["units"] != c.totalUnits:
			t.Fatalf("table %s row %d (event %s): order_id %v total.units %v, produced %s and %d", table, i, id, r["order_id"], total["units"], c.orderID, c.totalUnits)
		case c.hasDuration && r["checkout_duration"] == nil:
			t.Fatalf("table %s row %d (event %s): checkout_duration is NULL", table, i, id)
		}
		counts[id]++
	}
	return counts
}

// waitLanded polls a table until every valid event is in it or the deadline passes, and
// returns how often each event landed.
func (e *bqEnv) waitLanded(t *testing.T, table, topic string, valid map[string]orderCoord, within time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if e.fake.RowCount(bqProject, bqDataset, table) >= len(valid) {
			counts := e.landed(t, table, topic, valid)
			if len(counts) == len(valid) || time.Now().After(deadline) {
				return counts
			}
		} else if time.Now().After(deadline) {
			return e.landed(t, table, topic, valid)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkNoneLost fails the test when a valid event is not in counts or an invalid one is
// not in the dead-letter topic.
func checkNoneLost(t *testing.T, what string, counts map[string]int, valid map[string]orderCoord, invalid map[string]bool, dlq []*kgo.Record) {
	t.Helper()
	lost := lostEvents(counts, valid, invalid, dlq)
	if len(lost) > 0 {
		t.Fatalf("%s: %d of %d events lost (first: %v)", what, len(lost), len(valid)+len(invalid), lost[:min(5, len(lost))])
	}
}

// duplicates is the number of extra copies in counts.
func duplicates(counts map[string]int) int {
	n := 0
	for _, c := range counts {
		n += c - 1
	}
	return n
}

// checkCreatedTable checks that the sink created table from the contract with the layout
// its configuration asks for.
func (e *bqEnv) checkCreatedTable(t *testing.T, table string) {
	t.Helper()
	meta := e.fake.Table(bqProject, bqDataset, table)
	if meta == nil {
		t.Fatalf("table %s was not created", table)
	}
	if tp := meta.TimePartitioning; tp == nil || tp.Field != "_event_time" || tp.Type != "DAY" {
		t.Fatalf("table %s: time partitioning %+v, want DAY on _event_time", table, tp)
	}
	if c := meta.Clustering; c == nil || strings.Join(c.Fields, ",") != "_topic,_partition" {
		t.Fatalf("table %s: clustering %+v, want _topic,_partition", table, c)
	}
	cols := map[string]string{} // dotted path -> TYPE/MODE
	var walk func(prefix string, fields []*bqv2.TableFieldSchema)
	walk = func(prefix string, fields []*bqv2.TableFieldSchema) {
		for _, f := range fields {
			mode := f.Mode
			if mode == "" {
				mode = "NULLABLE"
			}
			cols[prefix+f.Name] = f.Type + "/" + mode
			walk(prefix+f.Name+".", f.Fields)
		}
	}
	walk("", meta.Schema.Fields)
	// Including every column the README's BigQuery queries read.
	for col, want := range map[string]string{
		"event_id": "STRING/NULLABLE", "occurred_at": "TIMESTAMP/NULLABLE", "items": "RECORD/REPEATED",
		"items.sku": "STRING/NULLABLE", "items.quantity": "INTEGER/NULLABLE",
		"attributes": "RECORD/REPEATED", "attributes.key": "STRING/NULLABLE", "attributes.value": "STRING/NULLABLE",
		"total.currency_code": "STRING/NULLABLE", "total.units": "INTEGER/NULLABLE", "total.nanos": "INTEGER/NULLABLE",
		"is_gift": "BOOLEAN/NULLABLE", "checkout_duration": "INTERVAL/NULLABLE",
		"loyalty_points_earned": "INTEGER/NULLABLE", "payment_attempt": "INTEGER/NULLABLE",
		"_topic": "STRING/REQUIRED", "_partition": "INTEGER/REQUIRED", "_offset": "INTEGER/REQUIRED",
		"_event_time": "TIMESTAMP/REQUIRED", "_landed_at": "TIMESTAMP/REQUIRED", "_schema": "STRING/REQUIRED",
	} {
		if cols[col] != want {
			t.Errorf("table %s: column %s is %q, want %s", table, col, cols[col], want)
		}
	}
}

// TestBigQuery_two_minutes_unavailable_under_load_loses_nothing runs a daemon with two
// bigquery sinks on one pipeline (default stream, and exactly_once), makes the fake answer
// every AppendRows with UNAVAILABLE for two minutes while events keep coming, then lets it
// recover: every valid event lands in both tables (once in the exactly_once one), every
// invalid one is dead-lettered, and the daemon still stops cleanly.
func TestBigQuery_two_minutes_unavailable_under_load_loses_nothing(t *testing.T) {
	const (
		outage = 2 * time.Minute
		rate   = 1000 // events/s
	)
	e := newBQEnv(t)
	topic := uniqueName(t, "orders")
	kafka.CreateTopic(t, topic, 4)
	// The sinks retry a failed write for longer than the outage, so the backlog waits in the
	// engine's runner and lands in full batches once BigQuery is back. With the default
	// retry (8 attempts, about a minute), batches are handed back to the source, which
	// redelivers them one at a time per partition, and catching up takes far longer than
	// the outage did.
	const retry = "{max_attempts: 60, initial_backoff: 100ms, max_backoff: 5s}"
	sinks, routes := e.sinks(bqSinkSpec{"alo", "orders_alo", false, retry}, bqSinkSpec{"eo", "orders_eo", true, retry})
	config := writeConfig(t, fmt.Sprintf(bqConfig, topic, sinks, routes))
	d := startBQDaemon(t, config, filepath.Join(logDir(t), "daemon.log"))
	for _, table := range []string{"orders_alo", "orders_eo"} {
		e.checkCreatedTable(t, table)
	}

	load := startOrderLoad(t, topic, rate, 101)
	waitFor(t, time.Minute, "rows in both tables before the outage", func() bool {
		return e.fake.RowCount(bqProject, bqDataset, "orders_alo") > 0 && e.fake.RowCount(bqProject, bqDataset, "orders_eo") > 0
	})

	e.fake.StartOutage(bqfake.Fault{Code: codes.Unavailable, Message: "bqfake: the service is currently unavailable"})
	began := time.Now()
	// Requests the fake was already applying when the outage began may still land.
	waitFor(t, 10*time.Second, "appends in flight at the outage's start", func() bool { return e.fake.InFlight() == 0 })
	rowsAlo, rowsEo := e.fake.RowCount(bqProject, bqDataset, "orders_alo"), e.fake.RowCount(bqProject, bqDataset, "orders_eo")
	faulted := e.fake.Faulted()
	tk := time.NewTicker(30 * time.Second)
	for time.Since(began) < outage {
		<-tk.C
		// The daemon keeps trying (it neither stops the sink nor gives up), and nothing lands.
		f := e.fake.Faulted()
		if f == faulted {
			t.Fatalf("no append attempts in the last 30s of the outage (%v in); log %s", time.Since(began).Round(time.Second), d.log)
		}
		if a, b := e.fake.RowCount(bqProject, bqDataset, "orders_alo"), e.fake.RowCount(bqProject, bqDataset, "orders_eo"); a != rowsAlo || b != rowsEo {
			t.Fatalf("rows landed during the outage: %d -> %d and %d -> %d", rowsAlo, a, rowsEo, b)
		}
		v, _ := load.Produced()
		t.Logf("outage %v: %d appends refused so far, %d valid events produced, tables at %d and %d rows",
			time.Since(began).Round(time.Second), f, v, rowsAlo, rowsEo)
		faulted = f
	}
	tk.Stop()
	e.fake.EndOutage()
	ended := time.Now()
	t.Logf("outage over after %v: %d appends refused", ended.Sub(began).Round(time.Second), e.fake.Faulted())

	// Events keep coming for a while after the recovery, then stop.
	time.Sleep(5 * time.Second)
	load.Stop(t)
	nValid, nInvalid := load.Produced()
	t.Logf("produced %d valid and %d invalid events at about %d/s", nValid, nInvalid, rate)

	alo := e.waitLanded(t, "orders_alo", topic, load.valid, 3*time.Minute)
	caughtUp := time.Since(ended)
	eo := e.waitLanded(t, "orders_eo", topic, load.valid, 2*time.Minute)
	dlq := readDeadLetters(t, topic+"-dlq", load.invalid)
	checkNoneLost(t, "default stream (orders_alo)", alo, load.valid, load.invalid, dlq)
	checkNoneLost(t, "exactly_once (orders_eo)", eo, load.valid, load.invalid, dlq)
	if dups := duplicates(eo); dups > 0 {
		t.Fatalf("exactly_once table orders_eo holds %d duplicate rows", dups)
	}

	for _, sink := range []string{"alo", "eo"} {
		labels := []string{`pipeline="orders"`, `sink="` + sink + `"`}
		if n := d.metric(t, "switchyard_sink_write_errors_total", labels...); n == 0 {
			t.Errorf("sink %s: the outage was not counted in switchyard_sink_write_errors_total", sink)
		}
		if n := d.metric(t, "switchyard_events_landed_total", labels...); n < float64(nValid) {
			t.Errorf("sink %s: switchyard_events_landed_total = %v, want at least %d", sink, n, nValid)
		}
		if n := d.metric(t, "switchyard_sink_up", labels...); n != 1 {
			t.Errorf("sink %s: switchyard_sink_up = %v after the outage", sink, n)
		}
	}
	d.terminate(t)
	t.Logf("zero lost after a %v outage: %d valid events in both tables (default stream: %d duplicate rows; exactly_once: none), %d invalid in %d dead letters; all landed %v after the outage ended",
		outage, nValid, duplicates(alo), nInvalid, len(dlq), caughtUp.Round(100*time.Millisecond))
}

// TestBigQuery_sigkill_under_load_exactly_once kills the daemon with SIGKILL at random
// moments while events are produced — during start-up (opening the sink, creating the
// table, joining the group, reading the table's high-water marks) and while appends are in
// flight — restarts it each time, and checks that every valid event is in the exactly_once
// table exactly once and in the default-stream table at least once, and every invalid one
// in the dead-letter topic.
func TestBigQuery_sigkill_under_load_exactly_once(t *testing.T) {
	const (
		kills = 12
		rate  = 500 // events/s
	)
	e := newBQEnv(t)
	// Appends take a while, so kills find some in flight.
	e.fake.SetLatency(20 * time.Millisecond)
	topic := uniqueName(t, "orders")
	kafka.CreateTopic(t, topic, 8)
	sinks, routes := e.sinks(bqSinkSpec{"warehouse", "", true, ""}, bqSinkSpec{"alo", "orders_alo", false, ""})
	config := writeConfig(t, fmt.Sprintf(bqConfig, topic, sinks, routes))
	dir := logDir(t)
	groups := []string{topic + "-group.warehouse", topic + "-group.alo"}

	load := startOrderLoad(t, topic, rate, 202)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2))
	t.Logf("kill timing seed %d", seed)
	for k := range kills {
		logPath := filepath.Join(dir, fmt.Sprintf("daemon-%02d.log", k+1))
		before := e.fake.RowCount(bqProject, bqDataset, orderTable)
		d := spawnBQDaemon(t, config, logPath)
		phase, started := "start-up", time.Now()
		var running, landing time.Duration
		if k%4 == 1 {
			// Somewhere in start-up.
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		} else {
			phase = "appends"
			if err := d.waitRunning(t, time.Minute); err != nil {
				d.kill()
				t.Fatalf("run %d: %v; log %s:\n%s", k+1, err, logPath, tail(logPath, 30))
			}
			running = time.Since(started)
			waitFor(t, time.Minute, "rows landing", func() bool { return e.fake.RowCount(bqProject, bqDataset, orderTable) > before })
			landing = time.Since(started)
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		}
		inFlight := e.fake.InFlight()
		d.kill()
		for _, g := range groups {
			evictGroupMembers(t, g)
		}
		t.Logf("kill %d/%d during %s after %v (running after %v, landing after %v; %d appends in flight): %d rows in %s",
			k+1, kills, phase, time.Since(started).Round(time.Millisecond), running.Round(time.Millisecond), landing.Round(time.Millisecond), inFlight, e.fake.RowCount(bqProject, bqDataset, orderTable), orderTable)
	}
	load.Stop(t)
	nValid, nInvalid := load.Produced()
	t.Logf("produced %d valid and %d invalid events at about %d/s", nValid, nInvalid, rate)

	// The last run drains everything.
	e.fake.SetLatency(0)
	drain := time.Now()
	d := startBQDaemon(t, config, filepath.Join(dir, "daemon-final.log"))
	eo := e.waitLanded(t, orderTable, topic, load.valid, 2*time.Minute)
	alo := e.waitLanded(t, "orders_alo", topic, load.valid, time.Minute)
	t.Logf("the last run landed everything in %v", time.Since(drain).Round(time.Millisecond))
	dlq := readDeadLetters(t, topic+"-dlq", load.invalid)
	d.terminate(t)
	e.checkCreatedTable(t, orderTable)

	checkNoneLost(t, fmt.Sprintf("exactly_once (%s) after %d SIGKILLs", orderTable, kills), eo, load.valid, load.invalid, dlq)
	checkNoneLost(t, fmt.Sprintf("default stream (orders_alo) after %d SIGKILLs", kills), alo, load.valid, load.invalid, dlq)
	if dups := duplicates(eo); dups > 0 {
		var ids []string
		for id, c := range eo {
			if c > 1 {
				ids = append(ids, fmt.Sprintf("%s x%d", id, c))
			}
		}
		t.Fatalf("exactly_once table %s holds %d duplicate rows after %d SIGKILLs (first: %v); logs in %s", orderTable, dups, kills, ids[:min(5, len(ids))], dir)
	}
	t.Logf("zero lost after %d SIGKILLs: %d valid events, exactly once in %s (%d write streams), at least once in orders_alo (%d duplicate rows); %d invalid in %d dead letters",
		kills, nValid, orderTable, len(e.fake.Streams(bqProject, bqDataset, orderTable)), duplicates(alo), nInvalid, len(dlq))
}
