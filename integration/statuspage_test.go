package integration

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/integration/harness"
	"github.com/switchyard-dev/switchyard/internal/status"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the status page screenshot of TestStatusPage_* to docs/status-page.png")

// statusConfig is a pipeline from %[1]s to a kafka sink "bus" (topic %[1]s-out) and a
// clickhouse sink "olap" at %[2]s.
const statusConfig = `
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
    owner: {team: auctions, contact: "#auctions-oncall"}
    source:
      topics: [%[1]s]
      group: %[1]s-group
      drain_timeout: 2s
      lag_interval: 250ms
    contract:
      encoding: confluent
      message: auctions.v1.BidPlaced
    slo:
      freshness: {threshold: 30s, objective: 99%%}
    sinks:
      - name: bus
        batch: {interval: 50ms}
        kafka: {topic: %[1]s-out}
      - name: olap
        batch: {max_rows: 5000, interval: 50ms}
        retry: {initial_backoff: 50ms, max_backoff: 500ms}
        clickhouse:
          addresses: ["%[2]s"]
          create_table: true
    routes:
      - sink: bus
      - sink: olap
    dead_letter:
      topic: %[1]s-dlq
`

// produceFresh writes n valid bids whose occurred_at is now.
func produceFresh(t *testing.T, topic string, n int, seed uint64) {
	t.Helper()
	reg, err := contract.Load(repoRootContracts())
	if err != nil {
		t.Fatal(err)
	}
	gen, err := eventgen.New(reg, eventgen.Options{Seed: seed, Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	cl := kafka.NewClient(t, kgo.DefaultProduceTopic(topic))
	defer cl.Close()
	var recs []*kgo.Record
	for i := range n {
		ev, err := gen.Make(eventgen.BidPlaced, eventgen.Valid, contract.Confluent)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: ev.Payload})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func getStatus(t *testing.T, addr string) *status.Report {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/status")
	if err != nil {
		t.Fatalf("GET /api/status: %v", err)
	}
	defer resp.Body.Close()
	var r status.Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("GET /api/status: %v", err)
	}
	return &r
}

func sinkOf(r *status.Report, name string) status.Sink {
	for _, p := range r.Pipelines {
		for _, s := range p.Sinks {
			if s.Name == name {
				return s
			}
		}
	}
	return status.Sink{}
}

// TestStatusPage_turns_a_stopped_clickhouse_sink_red_and_keeps_kafka_green drives headless
// Chromium against the daemon's status page: with ClickHouse stopped, the olap sink's section
// turns red and shows its error, while the kafka sink's stays green.
func TestStatusPage_turns_a_stopped_clickhouse_sink_red_and_keeps_kafka_green(t *testing.T) {
	ch := harness.StartClickHouse(t)
	topic := uniqueName(t, "bids")
	kafka.CreateTopic(t, topic, 2)
	kafka.CreateTopic(t, topic+"-out", 1)
	kafka.CreateTopic(t, topic+"-dlq", 1)
	config := writeConfig(t, fmt.Sprintf(statusConfig, topic, ch.Addr()))
	logPath := daemonLogPath(t)
	d := startDaemon(t, config, logPath)
	t.Cleanup(d.kill)
	addr := adminAddr(t, logPath)

	produceFresh(t, topic, 200, 11)
	waitFor(t, 2*time.Minute, "both sinks landing and green", func() bool {
		r := getStatus(t, addr)
		bus, olap := sinkOf(r, "bus"), sinkOf(r, "olap")
		return r.Overall == status.Green && bus.LastLanded != nil && olap.LastLanded != nil
	})

	ch.Stop()
	produceFresh(t, topic, 200, 12)
	waitFor(t, time.Minute, "the olap sink red and retrying in /api/status", func() bool {
		olap := sinkOf(getStatus(t, addr), "olap")
		return olap.Level == status.Red && olap.State == status.Retrying && olap.Error != ""
	})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true), // the screenshot shows the page, not a scrollbar gutter
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 900),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx, chromedp.Navigate("http://"+addr+"/"), chromedp.WaitVisible(chromedp.ID("sink-olap"))); err != nil {
		t.Fatalf("open the status page in chromium: %v", err)
	}
	run := func(what string, get func() (string, error)) string {
		t.Helper()
		v, err := get()
		if err != nil {
			t.Fatalf("read %s from the page: %v", what, err)
		}
		return v
	}
	attr := func(id string) (chromedp.AttributeResult, error) {
		return chromedp.Run(bctx, chromedp.AttributeValue(chromedp.ID(id), "data-level"))
	}
	olapText := run("the olap section", func() (string, error) { return chromedp.Run(bctx, chromedp.Text(chromedp.ID("sink-olap"))) })
	overall := run("the overall badge", func() (string, error) { return chromedp.Run(bctx, chromedp.Text(chromedp.ID("overall"))) })
	olapAttr, err := attr("sink-olap")
	if err != nil {
		t.Fatal(err)
	}
	busAttr, err := attr("sink-bus")
	if err != nil {
		t.Fatal(err)
	}
	olapLevel, okOlap := olapAttr.Value, olapAttr.Exists
	busLevel, okBus := busAttr.Value, busAttr.Exists
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if !okOlap || olapLevel != "red" || !strings.Contains(olapText, "retrying") {
		t.Errorf("olap section: level %q, text %q; want red and retrying", olapLevel, olapText)
	}
	if olap := sinkOf(getStatus(t, addr), "olap"); !strings.Contains(olapText, firstLine(olap.Error)) {
		t.Errorf("olap section does not show its error %q:\n%s", olap.Error, olapText)
	}
	if !okBus || busLevel != "green" {
		t.Errorf("bus section: level %q, want green", busLevel)
	}
	if !strings.EqualFold(overall, "red") {
		t.Errorf("overall badge %q, want red", overall)
	}
	if len(shot) < 1000 || string(shot[1:4]) != "PNG" {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(shot))
	}
	out := filepath.Join(t.TempDir(), "status-page.png")
	if *updateScreenshot {
		out = filepath.Join("..", "docs", "status-page.png")
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", out)
}

// firstLine is s up to its first newline, as the page's text shows the start of an error.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
