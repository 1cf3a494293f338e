package bigquery

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/bigquery/bqfake"
)

const evoV1 = `
syntax = "proto3";
package evo.v1;
import "google/protobuf/timestamp.proto";
message Address { string city = 1; }
message Order {
  string id = 1;
  int64 amount = 2;
  Address ship_to = 3;
  google.protobuf.Timestamp occurred_at = 4;
}`

// evoV2 adds a top-level scalar, a repeated field and a field of a nested record.
const evoV2 = `
syntax = "proto3";
package evo.v1;
import "google/protobuf/timestamp.proto";
message Address { string city = 1; string zip = 2; }
message Order {
  string id = 1;
  int64 amount = 2;
  Address ship_to = 3;
  google.protobuf.Timestamp occurred_at = 4;
  string currency = 5;
  repeated string tags = 6;
}`

// evoV3 changes the type of amount: incompatible.
const evoV3 = `
syntax = "proto3";
package evo.v1;
import "google/protobuf/timestamp.proto";
message Address { string city = 1; }
message Order {
  string id = 1;
  string amount = 2;
  Address ship_to = 3;
  google.protobuf.Timestamp occurred_at = 4;
}`

func evoSchema(t testing.TB, src string) protoreflect.MessageDescriptor {
	return compileProto(t, "evo.v1.Order", map[string]string{"evo/v1/order.proto": src})
}

func evoRecord(t testing.TB, md protoreflect.MessageDescriptor, offset int64, js string) *event.Record {
	t.Helper()
	m := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal([]byte(js), m); err != nil {
		t.Fatalf("build event: %v", err)
	}
	return &event.Record{Topic: "orders", Offset: offset, Timestamp: time.Now(), Message: m, Contract: string(md.FullName())}
}

// newSink builds a sink on table of the fake (closed at the end of the test); edit changes
// its configuration first.
func newSink(t testing.TB, e *fakeEnv, table string, md protoreflect.MessageDescriptor, edit func(*Config)) *Sink {
	t.Helper()
	cfg := e.config(table)
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg, Options{}, sinks.Deps{Schema: md, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("new sink: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestSink_schema_evolution(t *testing.T) {
	e := newFakeEnv(t)
	ctx := context.Background()
	table := e.table("orders")
	v1, v2, v3 := evoSchema(t, evoV1), evoSchema(t, evoV2), evoSchema(t, evoV3)

	// v1 creates the table.
	s1 := newSink(t, e, table, v1, nil)
	plan, err := s1.Plan(ctx)
	if err != nil || len(plan) != 1 || !strings.HasPrefix(plan[0], "CREATE TABLE `switchyard-test.events."+table+"` (") ||
		!strings.Contains(plan[0], "`ship_to` STRUCT<`city` STRING>") || !strings.Contains(plan[0], "PARTITION BY TIMESTAMP_TRUNC(`_event_time`, DAY)") {
		t.Fatalf("plan for a new table: got %q, %v", plan, err)
	}
	if err := s1.Open(ctx); err != nil {
		t.Fatalf("open v1: %v", err)
	}
	if err := s1.Write(ctx, []*event.Record{evoRecord(t, v1, 0, `{"id": "o1", "amount": "5", "shipTo": {"city": "Oslo"}}`)}); err != nil {
		t.Fatalf("write v1: %v", err)
	}

	// v2 adds columns, after saying so in its plan.
	s2 := newSink(t, e, table, v2, nil)
	plan, err = s2.Plan(ctx)
	want := []string{
		"ALTER TABLE `switchyard-test.events." + table + "` ADD COLUMN `currency` STRING",
		"ALTER TABLE `switchyard-test.events." + table + "` ADD COLUMN `tags` ARRAY<STRING>",
		"tables.patch `switchyard-test.events." + table + "`: add field `zip` STRING to RECORD ship_to",
	}
	if err != nil || !sameSet(plan, want) {
		t.Fatalf("plan for v2: got %q, %v; want %q", plan, err, want)
	}
	if err := s2.Open(ctx); err != nil {
		t.Fatalf("open v2: %v", err)
	}
	if plan, err := s2.Plan(ctx); err != nil || len(plan) != 0 {
		t.Fatalf("plan after evolution: got %q, %v; want nothing to do", plan, err)
	}
	meta := e.fake.Table(testProject, testDataset, table)
	modes := map[string]string{}
	mode := func(m string) string {
		if m == "" {
			return "NULLABLE"
		}
		return m
	}
	for _, f := range meta.Schema.Fields {
		modes[f.Name] = f.Type + " " + mode(f.Mode)
		for _, sub := range f.Fields {
			modes[f.Name+"."+sub.Name] = sub.Type + " " + mode(sub.Mode)
		}
	}
	for col, w := range map[string]string{"currency": "STRING NULLABLE", "tags": "STRING REPEATED", "ship_to.zip": "STRING NULLABLE", "ship_to.city": "STRING NULLABLE"} {
		if modes[col] != w {
			t.Errorf("column %s: got %q, want %q", col, modes[col], w)
		}
	}
	if err := s2.Write(ctx, []*event.Record{evoRecord(t, v2, 1, `{"id": "o2", "amount": "7", "currency": "NOK", "tags": ["a"], "shipTo": {"city": "Bergen", "zip": "5003"}}`)}); err != nil {
		t.Fatalf("write v2: %v", err)
	}
	rows, err := e.fake.Rows(testProject, testDataset, table)
	if err != nil || len(rows) != 2 {
		t.Fatalf("rows: %v %v", rows, err)
	}
	if _, ok := rows[0]["currency"]; ok {
		t.Errorf("v1 row has a currency: %v", rows[0])
	}
	if rows[1]["currency"] != "NOK" || !reflect.DeepEqual(rows[1]["tags"], []any{"a"}) ||
		!reflect.DeepEqual(rows[1]["ship_to"], bqfake.Row{"city": "Bergen", "zip": "5003"}) {
		t.Errorf("v2 row: got %v", rows[1])
	}

	// An older contract still writes to the evolved table.
	s1again := newSink(t, e, table, v1, nil)
	if plan, err := s1again.Plan(ctx); err != nil || len(plan) != 0 {
		t.Fatalf("plan for v1 on the evolved table: got %q, %v", plan, err)
	}
	if err := s1again.Write(ctx, []*event.Record{evoRecord(t, v1, 2, `{"id": "o3"}`)}); err != nil {
		t.Fatalf("write v1 to the evolved table: %v", err)
	}

	// An incompatible contract stops the sink at start-up, saying what differs.
	s3 := newSink(t, e, table, v3, nil)
	wantErr := "column amount is INT64 in the table, the contract's field evo.v1.Order.amount (string) needs STRING"
	if _, err := s3.Plan(ctx); err == nil || !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("plan v3: got %v, want %q", err, wantErr)
	}
	if err := s3.Open(ctx); err == nil || !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("open v3: got %v, want %q", err, wantErr)
	}
}

func TestSink_add_columns_false_refuses_a_table_that_lacks_columns(t *testing.T) {
	e := newFakeEnv(t)
	ctx := context.Background()
	table := e.table("orders")
	if err := newSink(t, e, table, evoSchema(t, evoV1), nil).Open(ctx); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, e, table, evoSchema(t, evoV2), func(c *Config) { c.AddColumns = false })
	err := s.Open(ctx)
	if err == nil || !strings.Contains(err.Error(), "lacks columns for contract fields") ||
		!strings.Contains(err.Error(), "currency") || !strings.Contains(err.Error(), "ship_to.zip") {
		t.Fatalf("open: got %v", err)
	}
}

func TestSink_required_column_unknown_to_the_contract_is_incompatible(t *testing.T) {
	e := newFakeEnv(t)
	ctx := context.Background()
	table := e.table("orders")
	s1 := newSink(t, e, table, evoSchema(t, evoV1), nil)
	if err := s1.Open(ctx); err != nil {
		t.Fatal(err)
	}
	tb := e.client.Dataset(testDataset).Table(table)
	md, err := tb.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// BigQuery cannot add a REQUIRED column; build a table that has one from the start.
	other := e.table("orders_required")
	schema := append(md.Schema, &bigquery.FieldSchema{Name: "legacy_code", Type: bigquery.StringFieldType, Required: true})
	if err := e.client.Dataset(testDataset).Table(other).Create(ctx, &bigquery.TableMetadata{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, e, other, evoSchema(t, evoV1), nil)
	if err := s.Open(ctx); err == nil || !strings.Contains(err.Error(), "column legacy_code is REQUIRED in the table but the contract has no field for it") {
		t.Fatalf("open: got %v", err)
	}
}

// TestSink_evolution_retries_when_the_etag_moved: someone changes the table between the
// sink's read and its patch; the patch is refused (412) and the sink plans again.
func TestSink_evolution_retries_when_the_etag_moved(t *testing.T) {
	e := newFakeEnv(t)
	ctx := context.Background()
	table := e.table("orders")
	if err := newSink(t, e, table, evoSchema(t, evoV1), nil).Open(ctx); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, e, table, evoSchema(t, evoV2), nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.connect(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := s.inspect(ctx)
	if err != nil || len(p.adds) != 3 {
		t.Fatalf("inspect: %+v, %v", p, err)
	}
	tb := e.client.Dataset(testDataset).Table(table)
	md, err := tb.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	schema := append(md.Schema, &bigquery.FieldSchema{Name: "added_by_someone_else", Type: bigquery.StringFieldType})
	if _, err := tb.Update(ctx, bigquery.TableMetadataToUpdate{Schema: schema}, md.ETag); err != nil {
		t.Fatal(err)
	}
	if err := s.apply(ctx, p); err != nil {
		t.Fatalf("apply with a moved etag: %v", err)
	}
	var names []string
	for _, f := range e.fake.Table(testProject, testDataset, table).Schema.Fields {
		names = append(names, f.Name)
	}
	for _, want := range []string{"added_by_someone_else", "currency", "tags"} {
		if !strings.Contains(strings.Join(names, ","), want) {
			t.Errorf("columns %v lack %s", names, want)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
