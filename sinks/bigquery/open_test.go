package bigquery

import (
	"context"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/sinks/sinktest"
)

// TestSink_open_failures: permission and not-found problems stop the sink at start-up with a
// message that names the dataset, the table and the missing permission.
func TestSink_open_failures(t *testing.T) {
	e := newFakeEnv(t)
	ctx := context.Background()
	existing := e.table("existing")
	if err := newSink(t, e, existing, sinktest.Schema, nil).Open(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		deny    string
		table   string // "" for a fresh one
		dataset string
		create  bool
		want    []string
	}{
		{name: "dataset_denied", deny: "bigquery.datasets.get", create: true,
			want: []string{"read dataset of table", "in dataset switchyard-test:events", "permission denied", "bigquery.datasets.get"}},
		{name: "dataset_missing", dataset: "nope", create: true,
			want: []string{"dataset switchyard-test:nope does not exist"}},
		{name: "table_get_denied", deny: "bigquery.tables.get", table: existing,
			want: []string{"table " + existing + " in dataset switchyard-test:events", "bigquery.tables.get"}},
		{name: "table_missing", create: false,
			want: []string{"does not exist in dataset switchyard-test:events; create it or set create_table: true"}},
		{name: "create_denied", deny: "bigquery.tables.create", create: true,
			want: []string{"create table of table", "in dataset switchyard-test:events", "bigquery.tables.create"}},
		{name: "write_denied", deny: "bigquery.tables.updateData", table: existing,
			want: []string{"open a write stream to table " + existing + " in dataset switchyard-test:events", "bigquery.tables.updateData"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.deny != "" {
				e.fake.Deny(tc.deny)
				defer e.fake.Allow(tc.deny)
			}
			table := tc.table
			if table == "" {
				table = e.table("open")
			}
			s := newSink(t, e, table, sinktest.Schema, func(c *Config) {
				c.CreateTable = tc.create
				if tc.dataset != "" {
					c.Dataset = tc.dataset
				}
			})
			err := s.Open(ctx)
			if err == nil {
				t.Fatal("open succeeded")
			}
			t.Logf("open error: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("open error %q lacks %q", err, w)
				}
			}
		})
	}
	// Evolution needs bigquery.tables.update.
	t.Run("update_denied", func(t *testing.T) {
		table := e.table("orders")
		if err := newSink(t, e, table, evoSchema(t, evoV1), nil).Open(ctx); err != nil {
			t.Fatal(err)
		}
		e.fake.Deny("bigquery.tables.update")
		defer e.fake.Allow("bigquery.tables.update")
		err := newSink(t, e, table, evoSchema(t, evoV2), nil).Open(ctx)
		if err == nil || !strings.Contains(err.Error(), "bigquery.tables.update") || !strings.Contains(err.Error(), table) {
			t.Fatalf("open: got %v", err)
		}
	})
}
