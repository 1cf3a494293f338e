package bigquery

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/option"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/bigquery/bqfake"
	"github.com/switchyard-dev/switchyard/sinks/sinktest"
	sinktable "github.com/switchyard-dev/switchyard/sinks/table"
)

const (
	testProject = "switchyard-test"
	testDataset = "events"
)

// fakeEnv is a bqfake server with a dataset, created through the real client.
type fakeEnv struct {
	fake   *bqfake.Server
	client *bigquery.Client
	tables atomic.Int64
}

func newFakeEnv(t testing.TB) *fakeEnv {
	t.Helper()
	fake, err := bqfake.New()
	if err != nil {
		t.Fatalf("start bqfake: %v", err)
	}
	t.Cleanup(fake.Close)
	ctx := context.Background()
	client, err := bigquery.NewClient(ctx, testProject, option.WithEndpoint(fake.RESTEndpoint()), option.WithoutAuthentication())
	if err != nil {
		t.Fatalf("bigquery client: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	if err := client.Dataset(testDataset).Create(ctx, &bigquery.DatasetMetadata{Location: "US"}); err != nil {
		t.Fatalf("create dataset: %v", err)
	}
	return &fakeEnv{fake: fake, client: client}
}

// table returns a fresh table name.
func (e *fakeEnv) table(prefix string) string {
	return fmt.Sprintf("%s_%d", prefix, e.tables.Add(1))
}

// config is a sink configuration for table on the fake.
func (e *fakeEnv) config(table string) Config {
	return Config{
		Project:              testProject,
		Dataset:              testDataset,
		Table:                table,
		Endpoint:             e.fake.RESTEndpoint(),
		GRPCEndpoint:         e.fake.GRPCAddr(),
		Insecure:             true,
		CreateTable:          true,
		AddColumns:           true,
		EventTimeField:       "occurred_at",
		PartitionField:       sinktable.ColEventTime,
		PartitionGranularity: "day",
		AppendsInFlight:      1000,
		MaxRequestBytes:      8 << 20,
	}
}

// open builds and opens a sink, closed at the end of the test.
func (e *fakeEnv) open(t testing.TB, cfg Config, schema protoreflect.MessageDescriptor) *Sink {
	t.Helper()
	s, err := New(cfg, Options{}, sinks.Deps{Pipeline: "test", Sink: "bq", Schema: schema, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("new sink: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Open(ctx); err != nil {
		t.Fatalf("open sink: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close sink: %v", err)
		}
	})
	return s
}

// ids returns the id column of every row of table, one entry per landed copy.
func (e *fakeEnv) ids(t testing.TB, table string) []string {
	t.Helper()
	rows, err := e.fake.Rows(testProject, testDataset, table)
	if err != nil {
		t.Fatalf("read rows: %v", err)
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		id, _ := r["id"].(string)
		out = append(out, id)
	}
	return out
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

func TestSink_conformance(t *testing.T) {
	for _, mode := range []struct {
		name        string
		exactlyOnce bool
	}{
		{"at_least_once", false},
		{"exactly_once", true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			e := newFakeEnv(t)
			sinktest.Run(t, sinktest.Features{Dedup: mode.exactlyOnce, ConcurrentWrites: true},
				func(t *testing.T, deps sinks.Deps) sinktest.Env {
					table := e.table("conformance")
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
