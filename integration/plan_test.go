package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/integration/harness"
	"github.com/switchyard-dev/switchyard/internal/app"
)

const planConfig = `
kafka:
  brokers: ["${BROKERS}"]
contracts:
  path: ${CONTRACTS}
pii:
  hash_key: plan-test-key
pipelines:
  - name: bids
    owner: {team: auctions, contact: "#auctions"}
    source: {topics: [bids]}
    contract: {message: auctions.v1.BidPlaced}
    sinks:
      - name: olap
        clickhouse: {addresses: ["%s"], table: %s, create_table: true}
    routes:
      - sink: olap
        transforms:
          - flatten: true
          - drop: [max_auto_bid_units, max_auto_bid_nanos, max_auto_bid_currency_code]
          - set: {amount_cents: "event.amount.units * 100"}
    dead_letter: {topic: bids.dlq}
`

// TestPlan_shows_the_DDL_after_transforms runs `switchyard plan` against a real ClickHouse:
// the table it would create has the route's output columns, nothing is created, and a table
// that cannot take the contract makes plan exit 1 with the reason.
func TestPlan_shows_the_DDL_after_transforms(t *testing.T) {
	ch := harness.StartClickHouse(t)
	table := "plan_bids"
	cfg := writeConfig(t, fmt.Sprintf(planConfig, ch.Addr(), table))
	var stdout, stderr bytes.Buffer
	if code := app.Main(context.Background(), []string{"plan", "--config", cfg}, &stdout, &stderr); code != 0 {
		t.Fatalf("plan exited %d: %s", code, stderr.String())
	}
	ddl := stdout.String()
	for _, want := range []string{"CREATE TABLE", table, "amount_cents", "amount_units", "bidder_email", "_offset"} {
		if !strings.Contains(ddl, want) {
			t.Fatalf("plan output lacks %q:\n%s", want, ddl)
		}
	}
	if strings.Contains(ddl, "max_auto_bid_units") {
		t.Fatalf("plan output has a dropped column:\n%s", ddl)
	}
	if rows := ch.Query(t, "EXISTS TABLE default."+table); rows[0][0] != "0" {
		t.Fatal("plan created the table")
	}

	// A table whose amount_cents has another type cannot take the route's output.
	ch.Query(t, "CREATE TABLE default."+table+" (amount_cents String, _topic String, _partition Int32, _offset Int64) ENGINE = MergeTree() ORDER BY _offset")
	stdout.Reset()
	stderr.Reset()
	if code := app.Main(context.Background(), []string{"plan", "--config", cfg}, &stdout, &stderr); code != 1 {
		t.Fatalf("plan exited %d for an incompatible table, want 1\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "would refuse to start") || !strings.Contains(stderr.String(), "amount_cents") {
		t.Fatalf("plan does not say what differs:\n%s", stderr.String())
	}
}

// TestPlan_unreachable_sink_exits_3: with nothing listening at the ClickHouse address, plan
// says the sink could not be reached and exits 3, not 1 (which means "would refuse").
func TestPlan_unreachable_sink_exits_3(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a port nothing listens on
	cfg := writeConfig(t, fmt.Sprintf(planConfig, addr, "plan_unreachable"))
	var stdout, stderr bytes.Buffer
	if code := app.Main(context.Background(), []string{"plan", "--config", cfg}, &stdout, &stderr); code != 3 {
		t.Fatalf("plan exited %d for an unreachable ClickHouse, want 3\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), `sink "olap" could not be reached`) || strings.Contains(stderr.String(), "would refuse") {
		t.Fatalf("plan does not say the sink could not be reached:\n%s", stderr.String())
	}
}
