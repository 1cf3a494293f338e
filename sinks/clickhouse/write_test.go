package clickhouse

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/integration/harness"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/sinktest"
)

// TestSink_dead_letters_only_unwritable_records writes into tables whose columns are narrower
// than the contract (created by hand, as an operator might): values that do not fit fail their
// record only, and the rest of the batch lands.
func TestSink_dead_letters_only_unwritable_records(t *testing.T) {
	v1 := compile(t, "order_v1.proto", "evolve.v1.Order")
	kinds := compile(t, "kinds.proto", "kinds.v1.AllKinds")
	for _, tc := range []struct {
		name   string
		create string // %s is the table
		recs   func() []*event.Record
		failed map[int]string // record index -> part of the reason
		check  map[string]string
	}{
		{
			name: "narrow_int_and_datetime",
			create: "CREATE TABLE default.%s (order_id String, cents Int16, occurred_at DateTime, " +
				"_topic String, _partition UInt16, _offset UInt64, _event_time DateTime, _landed_at DateTime, _schema String, " +
				"note String DEFAULT 'manual') ENGINE = MergeTree() ORDER BY (_topic, _partition, _offset)",
			recs: func() []*event.Record {
				return []*event.Record{
					record("o", 0, 0, orderTime, fromJSON(t, v1, `{"order_id": "ok", "cents": "100", "occurred_at": "2026-01-01T00:00:00Z"}`)),
					record("o", 0, 1, orderTime, fromJSON(t, v1, `{"order_id": "too-big", "cents": "70000"}`)),
					record("o", 0, 2, orderTime, fromJSON(t, v1, `{"order_id": "too-old", "cents": "-5", "occurred_at": "1969-12-31T23:59:59Z"}`)),
					record("o", 0, 3, orderTime, fromJSON(t, v1, `{"order_id": "edge", "cents": "-32768"}`)),
					record("o", 70000, 4, orderTime, fromJSON(t, v1, `{"order_id": "partition-too-big"}`)),
					{Topic: "o", Partition: 0, Offset: 5, Timestamp: orderTime, Contract: "evolve.v1.Order"}, // no message
				}
			},
			failed: map[int]string{
				1: "column cents Int16 for field cents (int64): value out of range for Int16",
				2: "column occurred_at DateTime for field occurred_at (google.protobuf.Timestamp): value out of range for DateTime (1970-01-01 to 2106-02-07)",
				4: "column _partition UInt16 for metadata (source partition): value out of range for UInt16",
				5: "record has no decoded message",
			},
			check: map[string]string{
				"order_id": "ok,edge",
				"cents":    "100,-32768",
				// An unset Timestamp in a non-Nullable column is the epoch, which 18.16 prints as zeros.
				"occurred_at": "2026-01-01 00:00:00,0000-00-00 00:00:00",
				"note":        "manual,manual",
			},
		},
		{
			// Only some columns are pre-created (the rest are added): an Enum8 the contract
			// has more values than, and an Int8.
			name: "enum8_and_int8",
			create: "CREATE TABLE default.%s (color Enum8('COLOR_UNSPECIFIED' = 0, 'COLOR_RED' = 1), i32 Int8, " +
				"r_color Array(Enum8('COLOR_UNSPECIFIED' = 0, 'COLOR_RED' = 1)), " +
				"_topic String, _partition Int32, _offset Int64) ENGINE = MergeTree() ORDER BY (_topic, _partition, _offset)",
			recs: func() []*event.Record {
				return []*event.Record{
					record("k", 1, 0, orderTime, fromJSON(t, kinds, `{"color": "COLOR_RED", "i32": -128}`)),
					record("k", 1, 1, orderTime, fromJSON(t, kinds, `{"color": "COLOR_GREEN"}`)),
					record("k", 1, 2, orderTime, fromJSON(t, kinds, `{"i32": 128}`)),
					record("k", 1, 3, orderTime, fromJSON(t, kinds, `{"r_color": ["COLOR_RED", "COLOR_GREEN"]}`)),
					record("k", 1, 4, orderTime, fromJSON(t, kinds, `{"r_color": ["COLOR_RED"], "i32": 127}`)),
					record("k", 1, 5, orderTime, fromJSON(t, v1, `{"order_id": "wrong type"}`)),
				}
			},
			failed: map[int]string{
				1: "column color Enum8('COLOR_UNSPECIFIED' = 0, 'COLOR_RED' = 1) for field color (kinds.v1.Color): value out of range: not an element of the Enum8",
				2: "column i32 Int8 for field i32 (int32): value out of range for Int8",
				3: "column r_color Array(Enum8('COLOR_UNSPECIFIED' = 0, 'COLOR_RED' = 1)) for field r_color (repeated kinds.v1.Color): value out of range: not an element of the Enum8",
				5: "record holds evolve.v1.Order, but the sink writes kinds.v1.AllKinds",
			},
			check: map[string]string{
				"color":   "COLOR_RED,COLOR_UNSPECIFIED",
				"i32":     "-128,127",
				"r_color": "[],['COLOR_RED']",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := newTable(t)
			mustExec(t, fmt.Sprintf(tc.create, table))
			cfg := testConfig(table)
			cfg.CreateTable = false
			recs := tc.recs()
			md := recs[0].Message.Descriptor()
			s := openSink(t, cfg, testDeps(t, md))
			err := write(t, s, recs...)
			var be *sinks.BatchError
			if !errors.As(err, &be) {
				t.Fatalf("write error = %v, want a *sinks.BatchError", err)
			}
			if !be.Landed {
				t.Errorf("BatchError.Landed = false, want true")
			}
			for i, reason := range tc.failed {
				if got := be.Failed[i]; got == nil || got.Error() != reason {
					t.Errorf("record %d failed with %v, want %q", i, got, reason)
				}
			}
			for i, err := range be.Failed {
				if _, ok := tc.failed[i]; !ok {
					t.Errorf("record %d failed unexpectedly: %v", i, err)
				}
			}
			for col, want := range tc.check {
				if got := strings.Join(readColumn(t, table, quoteIdent(col)), ","); got != want {
					t.Errorf("column %s = %q, want %q", col, got, want)
				}
			}
		})
	}
}

// TestSink_schema_change_after_open_is_permanent: a column dropped behind the sink's back
// makes every later insert fail; retrying cannot help, so the error is permanent.
func TestSink_schema_change_after_open_is_permanent(t *testing.T) {
	table := newTable(t)
	s := openSink(t, testConfig(table), testDeps(t, sinktest.Schema))
	mustExec(t, "ALTER TABLE default."+table+" DROP COLUMN amount")
	err := write(t, s, sinktest.Records("src", "drop", 3, 1)...)
	if err == nil || !sinks.IsPermanent(err) || !strings.Contains(err.Error(), "restart it to re-check the schema") {
		t.Fatalf("write error = %v, want a permanent error that says to restart", err)
	}
}

// TestSink_server_outage_is_transient stops a server under the sink: writes fail with a
// transient error (the engine retries) and succeed, exactly once, after the server is back.
func TestSink_server_outage_is_transient(t *testing.T) {
	srv := harness.StartClickHouse(t)
	table := newTable(t)
	cfg := testConfig(table)
	cfg.Addresses = []string{srv.Addr()}
	cfg.InsertTimeout = 5 * time.Second
	cfg.DialTimeout = time.Second
	s := openSink(t, cfg, testDeps(t, sinktest.Schema))
	recs := sinktest.Records("src-outage", "outage", 200, 2)
	if err := write(t, s, recs[:100]...); err != nil {
		t.Fatalf("write before outage: %v", err)
	}
	srv.Stop()
	start := time.Now()
	err := write(t, s, recs[100:]...)
	var be *sinks.BatchError
	if err == nil || sinks.IsPermanent(err) || errors.As(err, &be) {
		t.Fatalf("write during outage = %v, want a transient error", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("write during outage took %s, want about insert_timeout (5s) or less", d)
	}
	srv.Start(t)
	deadline := time.Now().Add(time.Minute)
	for {
		// The engine retries the whole batch, including records that may have landed.
		err = write(t, s, recs[100:]...)
		if err == nil {
			break
		}
		if sinks.IsPermanent(err) || time.Now().After(deadline) {
			t.Fatalf("write after outage: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := srv.Query(t, "SELECT count(), uniqExact(_topic, _partition, _offset) FROM default."+table)[0]
	if got[0] != "200" || got[1] != "200" {
		t.Fatalf("count, unique = %v, want 200, 200", got)
	}
}

// TestSink_accepts_other_descriptor_of_the_contract: records decoded with another copy of the
// contract's descriptor (a separate compile) are converted and land.
func TestSink_accepts_other_descriptor_of_the_contract(t *testing.T) {
	md := compile(t, "order_v1.proto", "evolve.v1.Order")
	other := compile(t, "order_v1.proto", "evolve.v1.Order")
	if md == other {
		t.Fatal("the two compiles share a descriptor")
	}
	table := newTable(t)
	s := openSink(t, testConfig(table), testDeps(t, md))
	if err := write(t, s,
		record("o", 0, 0, orderTime, fromJSON(t, other, `{"order_id": "a", "cents": "1", "occurred_at": "2026-01-01T00:00:00Z"}`)),
		record("o", 0, 1, orderTime, asHyper(t, fromJSON(t, other, `{"order_id": "b", "cents": "2"}`))),
	); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got := strings.Join(readColumn(t, table, "concat(order_id, ':', toString(cents), ':', ifNull(toString(occurred_at), 'null'))"), ","); got != "a:1:2026-01-01 00:00:00,b:2:null" {
		t.Fatalf("rows = %q", got)
	}
}

// TestSink_batch_of_several_blocks_lands_whole: a batch of more rows than one data block
// (insertBlockRows) goes to the server in several blocks of the one INSERT; every row lands
// exactly once and in its place, also when records that cannot be written sit at the block
// boundaries, and the table gets the batch as one INSERT (one part on a MergeTree).
func TestSink_batch_of_several_blocks_lands_whole(t *testing.T) {
	v1 := compile(t, "order_v1.proto", "evolve.v1.Order")
	table := newTable(t)
	mustExec(t, fmt.Sprintf("CREATE TABLE default.%s (order_id String, cents Int16, "+
		"_topic String, _partition Int32, _offset Int64) ENGINE = MergeTree() ORDER BY (_topic, _partition, _offset)", table))
	cfg := testConfig(table)
	cfg.CreateTable = false
	s := openSink(t, cfg, testDeps(t, v1))
	n := 2*insertBlockRows + 1000
	bad := map[int]bool{0: true, insertBlockRows - 1: true, insertBlockRows: true, 2 * insertBlockRows: true, n - 1: true}
	recs := make([]*event.Record, n)
	for i := range recs {
		cents := i % 30000
		if bad[i] {
			cents = 70000 // does not fit Int16
		}
		recs[i] = record("o", 0, int64(i), orderTime, fromJSON(t, v1, fmt.Sprintf(`{"order_id": "o%d", "cents": "%d"}`, i, cents)))
	}
	err := write(t, s, recs...)
	var be *sinks.BatchError
	if !errors.As(err, &be) || !be.Landed || len(be.Failed) != len(bad) {
		t.Fatalf("write: %v, want a BatchError for the %d bad records", err, len(bad))
	}
	got := server.Query(t, "SELECT count(), uniqExact(_offset), sum(cents), min(_offset), max(_offset) FROM default."+table)
	var want int
	for i := range n {
		if !bad[i] {
			want += i % 30000
		}
	}
	if w := fmt.Sprintf("%d %d %d 1 %d", n-len(bad), n-len(bad), want, n-2); strings.Join(got[0], " ") != w {
		t.Fatalf("table holds count, distinct offsets, sum, min, max = %v, want %s", got[0], w)
	}
	// The server squashes the INSERT's blocks into one before writing: one part, as before
	// the batch was split into blocks.
	if parts := server.Query(t, "SELECT count() FROM system.parts WHERE database = 'default' AND table = '"+table+"'"); parts[0][0] != "1" {
		t.Errorf("the batch made %s parts, want 1", parts[0][0])
	}
	for _, off := range []int{1, insertBlockRows - 2, insertBlockRows + 1, n - 2} {
		if got := server.Query(t, fmt.Sprintf("SELECT order_id FROM default.%s WHERE _offset = %d", table, off)); len(got) != 1 || got[0][0] != fmt.Sprintf("o%d", off) {
			t.Errorf("offset %d holds %v, want o%d", off, got, off)
		}
	}
}
