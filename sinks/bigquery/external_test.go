package bigquery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/switchyard-dev/switchyard/internal/bqemu"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/sinktest"
)

// The external mode runs the conformance suite against a BigQuery this repository did not
// write: the endpoints in SWITCHYARD_BQ_ENDPOINT (REST base URL, ending in /bigquery/v2/ for
// the emulator) and SWITCHYARD_BQ_GRPC_ENDPOINT (Storage Write host:port), or, when they are
// unset, a bqemulator (PyPI, installed by .ci/setup) started for the test. What landed is
// read back with SQL through the REST API, as a user would check it. bqfake stays for the
// rest of the tests and for fault injection; docs/sinks.md lists what the emulator lacks.

// externalEnv is a dataset on an external BigQuery endpoint.
type externalEnv struct {
	rest, grpc string
	dataset    string
	client     *bigquery.Client
	tables     int
}

func newExternalEnv(t *testing.T) *externalEnv {
	t.Helper()
	rest, grpc := os.Getenv("SWITCHYARD_BQ_ENDPOINT"), os.Getenv("SWITCHYARD_BQ_GRPC_ENDPOINT")
	if (rest == "") != (grpc == "") {
		t.Fatal("set both SWITCHYARD_BQ_ENDPOINT and SWITCHYARD_BQ_GRPC_ENDPOINT, or neither")
	}
	if rest == "" {
		emu := startEmulator(t)
		rest, grpc = emu.RESTEndpoint(), emu.GRPCAddr()
	}
	ctx := context.Background()
	client, err := bigquery.NewClient(ctx, testProject, option.WithEndpoint(rest), option.WithoutAuthentication())
	if err != nil {
		t.Fatalf("bigquery client: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	e := &externalEnv{rest: rest, grpc: grpc, dataset: fmt.Sprintf("ext_%d", time.Now().UnixNano()), client: client}
	if err := client.Dataset(e.dataset).Create(ctx, &bigquery.DatasetMetadata{Location: "US"}); err != nil {
		t.Fatalf("create dataset %s on %s: %v", e.dataset, rest, err)
	}
	return e
}

// startEmulator starts a bqemulator for the test, stopped at its end.
func startEmulator(t *testing.T) *bqemu.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	emu, err := bqemu.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Stop)
	t.Logf("bqemulator on %s and %s started in %s (log %s)", emu.RESTEndpoint(), emu.GRPCAddr(), time.Since(start).Round(time.Millisecond), emu.LogPath())
	return emu
}

func (e *externalEnv) config(table string) Config {
	return Config{
		Project:              testProject,
		Dataset:              e.dataset,
		Table:                table,
		Endpoint:             e.rest,
		GRPCEndpoint:         e.grpc,
		Insecure:             true,
		CreateTable:          true,
		AddColumns:           true,
		EventTimeField:       "occurred_at",
		PartitionGranularity: "day",
		Clustering:           []string{"_topic", "_partition"},
	}
}

// query runs sql through jobs.query and returns every row.
func (e *externalEnv) query(t testing.TB, sql string) [][]bigquery.Value {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	it, err := e.client.Query(sql).Read(ctx)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	var out [][]bigquery.Value
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatalf("query %q: %v", sql, err)
		}
		out = append(out, row)
	}
}

// ids reads the id column of table back with SQL, one entry per landed copy.
func (e *externalEnv) ids(t testing.TB, table string) []string {
	t.Helper()
	rows := e.query(t, fmt.Sprintf("SELECT id FROM `%s.%s.%s`", testProject, e.dataset, table))
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i], _ = r[0].(string)
	}
	return out
}

func TestSink_conformance_external(t *testing.T) {
	e := newExternalEnv(t)
	for _, mode := range []struct {
		name        string
		exactlyOnce bool
	}{
		{"at_least_once", false},
		{"exactly_once", true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			sinktest.Run(t, sinktest.Features{Dedup: mode.exactlyOnce, ConcurrentWrites: true},
				func(t *testing.T, deps sinks.Deps) sinktest.Env {
					e.tables++
					table := fmt.Sprintf("conformance_%d", e.tables)
					cfg := e.config(table)
					cfg.ExactlyOnce = mode.exactlyOnce
					s, err := New(cfg, Options{}, deps)
					if err != nil {
						t.Fatalf("new sink: %v", err)
					}
					return sinktest.Env{
						Sink:     s,
						ReadBack: func(t *testing.T, target string) []string { return e.ids(t, table) },
					}
				})
		})
	}
}

// TestSink_external_table_and_values checks on the external BigQuery what the sink created
// (column types, DAY partitioning, clustering) and that values read back with SQL are the
// ones written.
func TestSink_external_table_and_values(t *testing.T) {
	e := newExternalEnv(t)
	table := "layout"
	cfg := e.config(table)
	cfg.ExactlyOnce = true
	s, err := New(cfg, Options{}, sinks.Deps{Pipeline: "test", Sink: "bq", Schema: sinktest.Schema, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Open(ctx); err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close(context.Background())
	recs := sinktest.Records("src-layout", "layout", 10, 2)
	if err := s.Assigned(ctx, []event.TopicPartition{{Topic: "src-layout", Partition: 0}, {Topic: "src-layout", Partition: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, recs); err != nil {
		t.Fatalf("write: %v", err)
	}

	md, err := e.client.Dataset(e.dataset).Table(table).Metadata(ctx)
	if err != nil {
		t.Fatalf("table metadata: %v", err)
	}
	if tp := md.TimePartitioning; tp == nil || tp.Type != bigquery.DayPartitioningType || tp.Field != "_event_time" {
		t.Errorf("time partitioning = %+v, want DAY on _event_time", tp)
	}
	if c := md.Clustering; c == nil || !slices.Equal(c.Fields, []string{"_topic", "_partition"}) {
		t.Errorf("clustering = %+v, want [_topic _partition]", c)
	}
	got := map[string]string{}
	for _, f := range md.Schema {
		typ := string(normType(f.Type))
		if f.Repeated {
			typ = "REPEATED " + typ
		}
		got[f.Name] = typ
	}
	want := map[string]string{
		"id": "STRING", "seq": "INTEGER", "occurred_at": "TIMESTAMP", "kind": "STRING", "amount": "FLOAT",
		"tags": "REPEATED STRING", "_topic": "STRING", "_partition": "INTEGER", "_offset": "INTEGER",
		"_event_time": "TIMESTAMP", "_landed_at": "TIMESTAMP", "_schema": "STRING",
	}
	if !maps.Equal(got, want) {
		t.Errorf("columns = %v, want %v", got, want)
	}

	rows := e.query(t, fmt.Sprintf("SELECT seq, occurred_at, kind, amount, tags, _topic, _partition, _offset, _event_time FROM `%s.%s.%s` WHERE id = 'layout-7'", testProject, e.dataset, table))
	if len(rows) != 1 {
		t.Fatalf("rows for layout-7: %v", rows)
	}
	r := rows[0]
	ts := time.Date(2026, 11, 26, 12, 0, 0, 7e6, time.UTC)
	if r[0] != int64(7) || r[2] != "KIND_BID" || r[3] != 1.75 || r[5] != "src-layout" || r[6] != int64(1) || r[7] != int64(3) {
		t.Errorf("row = %#v", r)
	}
	for i, name := range map[int]string{1: "occurred_at", 8: "_event_time"} {
		if tv, ok := r[i].(time.Time); !ok || !tv.Equal(ts) {
			t.Errorf("%s = %#v, want %s", name, r[i], ts)
		}
	}
	if tags, ok := r[4].([]bigquery.Value); !ok || len(tags) != 1 || tags[0] != "t1" {
		t.Errorf("tags = %#v, want [t1]", r[4])
	}
}
