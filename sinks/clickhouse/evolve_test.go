package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
)

func orderConfig(table string) *Config {
	cfg := testConfig(table)
	cfg.OrderBy = "_topic, _partition, _offset, order_id"
	return cfg
}

var orderTime = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// TestSink_evolves_additively lands v1 events, then opens the sink with v2 of the contract,
// which adds fields: the plan is one ALTER TABLE, the new columns appear, new rows fill them
// and old rows read their defaults. Reopening with v1 (a rollback) still works.
func TestSink_evolves_additively(t *testing.T) {
	v1 := compile(t, "order_v1.proto", "evolve.v1.Order")
	v2 := compile(t, "order_v2.proto", "evolve.v1.Order")
	table := newTable(t)
	cfg := orderConfig(table)

	s1 := openSink(t, cfg, testDeps(t, v1))
	if err := write(t, s1,
		record("orders", 0, 0, orderTime, fromJSON(t, v1, `{"order_id": "o0", "cents": "100", "occurred_at": "2026-11-26T08:00:00Z"}`)),
		record("orders", 0, 1, orderTime, fromJSON(t, v1, `{"order_id": "o1", "cents": "101"}`)),
	); err != nil {
		t.Fatalf("write v1: %v", err)
	}
	s1.Close(context.Background())

	s2 := newSink(t, cfg, testDeps(t, v2))
	stmts, err := plan(t, s2)
	if err != nil {
		t.Fatalf("plan v2: %v", err)
	}
	want := fmt.Sprintf("ALTER TABLE `default`.`%s`\n", table) +
		"    ADD COLUMN `coupon` String,\n" +
		"    ADD COLUMN `tags` Array(String),\n" +
		"    ADD COLUMN `ship_to_city` String,\n" +
		"    ADD COLUMN `ship_to_zip` String,\n" +
		"    ADD COLUMN `labels_keys` Array(String),\n" +
		"    ADD COLUMN `labels_values` Array(String),\n" +
		"    ADD COLUMN `priority` Nullable(Int32)"
	if len(stmts) != 1 || stmts[0] != want {
		t.Fatalf("plan v2 =\n%s\nwant\n%s", strings.Join(stmts, "\n;\n"), want)
	}
	if n := server.Query(t, "SELECT count() FROM system.columns WHERE table = '"+table+"'")[0][0]; n != "9" {
		t.Fatalf("plan changed the table: %s columns, want 9", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s2.Open(ctx); err != nil {
		t.Fatalf("open v2: %v", err)
	}
	if err := s2.Assigned(ctx, []event.TopicPartition{{Topic: "orders", Partition: 0}}); err != nil {
		t.Fatal(err)
	}
	if err := write(t, s2,
		record("orders", 0, 1, orderTime, fromJSON(t, v2, `{"order_id": "o1", "cents": "101"}`)), // redelivered: skipped
		record("orders", 0, 2, orderTime, fromJSON(t, v2, `{"order_id": "o2", "cents": "102", "coupon": "SAVE10", "tags": ["gift"],
			"ship_to": {"city": "Lyon", "zip": "69001"}, "labels": {"b": "2", "a": "1"}, "priority": 3}`)),
		record("orders", 0, 3, orderTime, fromJSON(t, v2, `{"order_id": "o3", "cents": "103"}`)),
	); err != nil {
		t.Fatalf("write v2: %v", err)
	}
	if stmts, err := plan(t, s2); err != nil || len(stmts) != 0 {
		t.Fatalf("plan after open = %q, %v; want nothing to do", stmts, err)
	}

	// Rollback: v1 starts against the v2 table (the new columns keep their defaults).
	s3 := openSink(t, cfg, testDeps(t, v1))
	if err := write(t, s3, record("orders", 0, 4, orderTime, fromJSON(t, v1, `{"order_id": "o4", "cents": "104"}`))); err != nil {
		t.Fatalf("write v1 after v2: %v", err)
	}

	// Rows in offset order: o0, o1 (v1), o2, o3 (v2), o4 (v1 again); cells joined with ",".
	for col, want := range map[string]string{
		"order_id":      "o0,o1,o2,o3,o4",
		"cents":         "100,101,102,103,104",
		"coupon":        ",,SAVE10,,",
		"tags":          "[],[],['gift'],[],[]",
		"ship_to_city":  ",,Lyon,,",
		"ship_to_zip":   ",,69001,,",
		"labels_keys":   "[],[],['a','b'],[],[]",
		"labels_values": "[],[],['1','2'],[],[]",
		"priority":      `\N,\N,3,\N,\N`,
		"occurred_at":   `2026-11-26 08:00:00,\N,\N,\N,\N`,
		"_event_time":   "2026-11-26 08:00:00,2026-11-26 09:00:00,2026-11-26 09:00:00,2026-11-26 09:00:00,2026-11-26 09:00:00",
	} {
		if got := strings.Join(readColumn(t, table, quoteIdent(col)), ","); got != want {
			t.Errorf("column %s = %q, want %q", col, got, want)
		}
	}
}

// TestSink_refuses_incompatible_contract: after v2, a contract that changes a field's type and
// drops a field of the table's key must stop the sink before it changes anything, with a
// message that says what differs and what to do.
func TestSink_refuses_incompatible_contract(t *testing.T) {
	v2 := compile(t, "order_v2.proto", "evolve.v1.Order")
	bad := compile(t, "order_v3_bad.proto", "evolve.v1.Order")
	table := newTable(t)
	cfg := orderConfig(table)
	openSink(t, cfg, testDeps(t, v2)).Close(context.Background())
	before := server.Query(t, "SELECT name, type FROM system.columns WHERE table = '"+table+"'")

	s := newSink(t, cfg, testDeps(t, bad))
	want := fmt.Sprintf("table `default`.`%s` does not fit contract evolve.v1.Order:\n", table) +
		"  - column cents is Int64 in the table, but field cents (string) needs String (or LowCardinality(String))\n" +
		"  - column order_id (String) is part of the table's partition or sorting key, but the contract has no field for it\n" +
		"what to do:\n" +
		"  - type changes are not applied automatically: add a new field for the new type and deprecate the old one, or migrate the column yourself (ALTER TABLE ... MODIFY COLUMN, or a new table and INSERT ... SELECT)\n" +
		"  - restore the field order_id in the contract, or write the new contract to a new table (set table: or drop the old one)"
	_, err := plan(t, s)
	var m *MismatchError
	if !errors.As(err, &m) || !sinks.IsPermanent(err) || err.Error() != want {
		t.Fatalf("plan error =\n%v\nwant a permanent *MismatchError:\n%s", err, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Open(ctx); err == nil || err.Error() != want {
		t.Fatalf("open error =\n%v\nwant\n%s", err, want)
	}
	after := server.Query(t, "SELECT name, type FROM system.columns WHERE table = '"+table+"'")
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("the refused open changed the table:\n%v\n%v", before, after)
	}
}

// TestSink_concurrent_open: two instances start with v2 at once. On 18.16 there is no ADD
// COLUMN IF NOT EXISTS, so one ALTER fails; that instance re-reads the table and starts too.
func TestSink_concurrent_open(t *testing.T) {
	v1 := compile(t, "order_v1.proto", "evolve.v1.Order")
	v2 := compile(t, "order_v2.proto", "evolve.v1.Order")
	table := newTable(t)
	cfg := orderConfig(table)
	openSink(t, cfg, testDeps(t, v1)).Close(context.Background())

	errs := make(chan error, 2)
	for range 2 {
		s := newSink(t, cfg, testDeps(t, v2))
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			errs <- s.Open(ctx)
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("open: %v", err)
		}
	}
	if n := server.Query(t, "SELECT count() FROM system.columns WHERE table = '"+table+"'")[0][0]; n != "16" {
		t.Fatalf("table has %s columns, want 16", n)
	}
}
