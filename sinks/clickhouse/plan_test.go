package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/sinktest"
)

func plan(t testing.TB, s *Sink) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.Plan(ctx)
}

func newSink(t testing.TB, cfg *Config, deps sinks.Deps) *Sink {
	t.Helper()
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("new sink: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestPlan_creates_table_on_18_16(t *testing.T) {
	table := newTable(t)
	s := newSink(t, testConfig(table), testDeps(t, sinktest.Schema))
	stmts, err := plan(t, s)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	want := fmt.Sprintf("CREATE TABLE IF NOT EXISTS `default`.`%s`\n", table) + `(
    ` + "`id` String," + `
    ` + "`seq` Int64," + `
    ` + "`occurred_at` Nullable(DateTime('UTC'))," + `
    ` + "`kind` String," + `
    ` + "`amount` Float64," + `
    ` + "`tags` Array(String)," + `
    ` + "`_topic` String," + `
    ` + "`_partition` Int32," + `
    ` + "`_offset` Int64," + `
    ` + "`_event_time` DateTime('UTC')," + `
    ` + "`_landed_at` DateTime('UTC')," + `
    ` + "`_schema` String" + `
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(_event_time)
ORDER BY (_topic, _partition, _offset)`
	if len(stmts) != 1 || stmts[0] != want {
		t.Fatalf("plan =\n%s\nwant\n%s", strings.Join(stmts, "\n;\n"), want)
	}
	if n := server.Query(t, "SELECT count() FROM system.tables WHERE name = '"+table+"'")[0][0]; n != "0" {
		t.Fatalf("plan created the table")
	}
	openSink(t, testConfig(table), testDeps(t, sinktest.Schema))
	if stmts, err := plan(t, s); err != nil || len(stmts) != 0 {
		t.Fatalf("plan after open = %q, %v; want nothing to do", stmts, err)
	}
}

// TestPlan_modern_server checks the DDL for a current server without one: DateTime64, Bool,
// Map and the de-duplication window.
func TestPlan_modern_server(t *testing.T) {
	cfg := &Config{Addresses: []string{"127.0.0.1:1"}, Database: "analytics", CreateTable: true, AddColumns: true,
		OrderBy: "_topic, _partition, _offset", PartitionBy: "toYYYYMM(_event_time)"}
	md := compile(t, "order_v2.proto", "evolve.v1.Order")
	s := newSink(t, cfg, testDeps(t, md))
	stmts, _, _, err := s.reconcile(modern, &table{})
	if err != nil {
		t.Fatal(err)
	}
	want := "CREATE TABLE IF NOT EXISTS `analytics`.`evolve_v1_order`\n(\n" +
		"    `order_id` String,\n" +
		"    `cents` Int64,\n" +
		"    `occurred_at` Nullable(DateTime64(3, 'UTC')),\n" +
		"    `coupon` String,\n" +
		"    `tags` Array(String),\n" +
		"    `ship_to_city` String,\n" +
		"    `ship_to_zip` String,\n" +
		"    `labels` Map(String, String),\n" +
		"    `priority` Nullable(Int32),\n" +
		"    `_topic` String,\n" +
		"    `_partition` Int32,\n" +
		"    `_offset` Int64,\n" +
		"    `_event_time` DateTime64(3, 'UTC'),\n" +
		"    `_landed_at` DateTime64(3, 'UTC'),\n" +
		"    `_schema` String\n" +
		")\nENGINE = MergeTree()\nPARTITION BY toYYYYMM(_event_time)\nORDER BY (_topic, _partition, _offset)\n" +
		"SETTINGS non_replicated_deduplication_window = 1000"
	if len(stmts) != 1 || stmts[0] != want {
		t.Fatalf("plan =\n%s\nwant\n%s", strings.Join(stmts, "\n;\n"), want)
	}

	// A table created on an old server keeps its parallel arrays after an upgrade, and new
	// columns use IF NOT EXISTS.
	v1 := compile(t, "order_v1.proto", "evolve.v1.Order")
	old := newSink(t, cfg, testDeps(t, v1))
	stmts, _, _, err = old.reconcile(featuresOf(version{18, 16, 1}), &table{})
	if err != nil {
		t.Fatal(err)
	}
	tbl := tableFromDDL(t, stmts[0])
	tbl.columns = append(tbl.columns, tableColumn{name: "labels_keys", typ: "Array(String)"}, tableColumn{name: "labels_values", typ: "Array(String)"})
	stmts, _, _, err = s.reconcile(modern, tbl)
	if err != nil {
		t.Fatal(err)
	}
	want = "ALTER TABLE `analytics`.`evolve_v1_order`\n" +
		"    ADD COLUMN IF NOT EXISTS `coupon` String,\n" +
		"    ADD COLUMN IF NOT EXISTS `tags` Array(String),\n" +
		"    ADD COLUMN IF NOT EXISTS `ship_to_city` String,\n" +
		"    ADD COLUMN IF NOT EXISTS `ship_to_zip` String,\n" +
		"    ADD COLUMN IF NOT EXISTS `priority` Nullable(Int32)"
	if len(stmts) != 1 || stmts[0] != want {
		t.Fatalf("plan =\n%s\nwant\n%s", strings.Join(stmts, "\n;\n"), want)
	}
}

// tableFromDDL reads the columns of a CREATE TABLE statement the sink planned.
func tableFromDDL(t testing.TB, ddl string) *table {
	tbl := &table{exists: true}
	for _, line := range strings.Split(ddl, "\n") {
		line = strings.TrimSuffix(strings.TrimSpace(line), ",")
		if !strings.HasPrefix(line, "`") {
			continue
		}
		name, typ, _ := strings.Cut(line[1:], "` ")
		tbl.columns = append(tbl.columns, tableColumn{name: name, typ: typ, inKey: strings.HasPrefix(name, "_")})
	}
	return tbl
}

func TestPlan_refuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
		want string
	}{
		{"missing_table_without_create_table", func(c *Config) { c.CreateTable = false },
			"table `default`.`%s` does not fit contract sinktest.v1.Event:\n" +
				"  - the table does not exist\n" +
				"what to do:\n" +
				"  - create it, or set create_table: true to let the sink create it (`switchyard plan` prints the CREATE TABLE)"},
		{"async_insert_on_18_16", func(c *Config) { c.AsyncInsert = true },
			"clickhouse 18.16.1 has no async_insert (needs 21.11.0 or later); unset async_insert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := newTable(t)
			cfg := testConfig(table)
			tc.cfg(cfg)
			s := newSink(t, cfg, testDeps(t, sinktest.Schema))
			want := tc.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, table)
			}
			_, err := plan(t, s)
			if err == nil || err.Error() != want || !sinks.IsPermanent(err) {
				t.Fatalf("plan error = %v (permanent %v), want permanent:\n%s", err, sinks.IsPermanent(err), want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.Open(ctx); err == nil || err.Error() != want {
				t.Fatalf("open error = %v, want the plan error", err)
			}
		})
	}
}

func TestPlan_refuses_colliding_columns(t *testing.T) {
	md := compile(t, "collide.proto", "collide.v1.Event")
	s := newSink(t, testConfig(newTable(t)), testDeps(t, md))
	_, err := plan(t, s)
	var m *MismatchError
	if !errors.As(err, &m) {
		t.Fatalf("plan error = %v, want a *MismatchError", err)
	}
	want := []string{
		"column a_b is claimed by both field a.b (string) and field a_b (int64); rename one of the fields (nested field names are joined with _, and names starting with _ are reserved for metadata)",
		"column _offset is claimed by both field _offset (int64) and metadata (source offset); rename one of the fields (nested field names are joined with _, and names starting with _ are reserved for metadata)",
	}
	if strings.Join(m.Problems, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant\n%s", strings.Join(m.Problems, "\n"), strings.Join(want, "\n"))
	}
}
