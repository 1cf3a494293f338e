package clickhouse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/chserver"
	"github.com/switchyard-dev/switchyard/internal/event"
)

// The wire-level tests run against Debian's clickhouse-server 18.16. These check what the
// sink sends a CURRENT server with chDB (PyPI chdb-core, the ClickHouse 26.x engine as a
// library, installed by .ci/setup): the DDL is accepted verbatim, the column types come back
// identical, Native blocks of real batches round-trip value for value, a repeated insert with
// the same insert_deduplication_token adds nothing, and ADD COLUMN evolution runs.

// current is a current server's feature set: DateTime64, Bool, Map, dedup tokens.
var current = featuresOf(version{26, 9, 0})

// chdbPython is the interpreter of the venv .ci/setup installs chdb-core into
// ($SWITCHYARD_CHDB_VENV overrides it).
func chdbPython(t *testing.T) string {
	dir := os.Getenv("SWITCHYARD_CHDB_VENV")
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(base, "switchyard", "chdb-venv")
	}
	py := filepath.Join(dir, "bin", "python")
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("chdb-core is not installed in %s: run .ci/setup (%v)", dir, err)
	}
	return py
}

// runCHDB runs sql statements in order in one chDB session and returns each one's TSV output.
func runCHDB(t *testing.T, sql ...string) []string {
	t.Helper()
	steps := make([]map[string]string, len(sql))
	for i, s := range sql {
		steps[i] = map[string]string{"sql": s}
	}
	b, _ := json.Marshal(steps)
	path := filepath.Join(t.TempDir(), "steps.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, chdbPython(t), filepath.Join("testdata", "chdb_run.py"), path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chdb: %v\n%s%s", err, out, stderr.String())
	}
	var res []string
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("chdb output %q: %v", out, err)
	}
	return res
}

// chdbSink is a sink for md writing database.table, never connected.
func chdbSink(t *testing.T, md protoreflect.MessageDescriptor, table string) *Sink {
	t.Helper()
	cfg := &Config{Addresses: []string{"127.0.0.1:1"}, Database: "switchyard", Table: table, CreateTable: true, AddColumns: true}
	s, err := New(cfg, testDeps(t, md))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ddl is the statement the sink runs for tbl on a current server.
func ddl(t *testing.T, s *Sink, tbl *table) ([]string, []boundColumn) {
	t.Helper()
	stmts, bound, _, err := s.reconcile(current, tbl)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return stmts, bound
}

// columnsQuery reads a table's columns as readTable does.
func columnsQuery(table string) string {
	return "SELECT name, type, default_kind, toUInt8(is_in_partition_key OR is_in_sorting_key OR is_in_primary_key OR is_in_sampling_key) " +
		"FROM system.columns WHERE database = 'switchyard' AND table = " + quoteString(table) + " ORDER BY position"
}

func parseColumns(t *testing.T, tsv string) *table {
	t.Helper()
	tbl := &table{exists: true}
	for _, r := range chserver.ParseTSV([]byte(tsv)) {
		if len(r) != 4 {
			t.Fatalf("system.columns row %q", r)
		}
		tbl.columns = append(tbl.columns, tableColumn{name: r[0], typ: r[1], defaultKind: r[2], inKey: r[3] == "1"})
	}
	return tbl
}

// nativeBatch converts records as Write does and encodes them as one block in ClickHouse's
// Native format (the native protocol's block without the block info), with the batch's
// insert_deduplication_token.
func nativeBatch(t *testing.T, s *Sink, bound []boundColumn, recs []*event.Record) ([]byte, string) {
	t.Helper()
	w := newWriter(s.fqtn, bound, current)
	b := w.pool.Get().(*builder)
	b.reset(len(recs))
	for _, r := range recs {
		if err := b.add(s, r, r.Timestamp); err != nil {
			t.Fatalf("convert offset %d: %v", r.Offset, err)
		}
		b.hashRecord(r)
	}
	block := proto.NewBlock()
	for _, c := range bound {
		if err := block.AddColumn(c.lc.name, chcol.Type(c.typ.String())); err != nil {
			t.Fatalf("driver column %s %s: %v", c.lc.name, c.typ, err)
		}
	}
	for i, c := range b.cols {
		if err := c.flush(batchColumn{block.Columns[i]}, 0, c.len()); err != nil {
			t.Fatalf("append to column %s %s: %v", bound[i].lc.name, bound[i].typ, err)
		}
	}
	var buf chproto.Buffer
	if err := block.Encode(&buf, 0); err != nil {
		t.Fatalf("encode block: %v", err)
	}
	return buf.Buf, b.token()
}

func decodeNative(t *testing.T, b []byte) *proto.Block {
	t.Helper()
	blocks := decodeNativeAll(t, b)
	if len(blocks) != 1 {
		t.Fatalf("%d Native blocks, want 1", len(blocks))
	}
	return blocks[0]
}

// decodeNativeAll decodes every block of a Native-format file (one per part read).
func decodeNativeAll(t *testing.T, b []byte) []*proto.Block {
	t.Helper()
	r := chproto.NewReader(bytes.NewReader(b)) // buffered: one reader for all blocks
	var out []*proto.Block
	for {
		blk := proto.NewBlock()
		err := blk.Decode(r, 0)
		if errors.Is(err, io.EOF) && len(out) > 0 {
			return out
		}
		if err != nil {
			t.Fatalf("decode Native block %d: %v", len(out), err)
		}
		out = append(out, blk)
	}
}

func TestCurrentServer_chdb_accepts_ddl_and_blocks(t *testing.T) {
	md := compile(t, "kinds.proto", "kinds.v1.AllKinds")
	s := chdbSink(t, md, "kinds")
	stmts, _ := ddl(t, s, &table{})
	if len(stmts) != 1 || !strings.HasPrefix(stmts[0], "CREATE TABLE") {
		t.Fatalf("DDL for a missing table: %q", stmts)
	}
	create := stmts[0]
	for _, want := range []string{"DateTime64(3, 'UTC')", "Bool", "Map(String, Int64)", "non_replicated_deduplication_window"} {
		if !strings.Contains(create, want) {
			t.Errorf("CREATE TABLE lacks %s:\n%s", want, create)
		}
	}
	// The column types the sink wants, to compare with what the server reports.
	cols, err := contractColumns(md, current, func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, lc := range cols {
		want[lc.name] = lc.desiredType(current)
	}

	// Real batches: the full and the empty message, each as a dynamic and a hyperpb message.
	kafkaTime := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	var recs []*event.Record
	for i, js := range []string{allKindsJSON, `{}`, allKindsJSON, `{}`} {
		msg := fromJSON(t, md, js).ProtoReflect()
		if i >= 2 {
			msg = asHyper(t, fromJSON(t, md, js))
		}
		recs = append(recs, record("kinds", 0, int64(i), kafkaTime, msg))
	}
	// Bind the batch to the table as the server reports it (first chDB run), as Open does.
	res := runCHDB(t, "CREATE DATABASE switchyard", create, columnsQuery("kinds"))
	tbl := parseColumns(t, res[2])
	got := map[string]string{}
	for _, c := range tbl.columns {
		got[c.name] = c.typ
	}
	for name, typ := range want {
		if got[name] != typ {
			t.Errorf("column %s: chDB reports %q, the sink created %q", name, got[name], typ)
		}
	}
	if len(got) != len(want) {
		t.Errorf("chDB reports %d columns, the sink created %d", len(got), len(want))
	}
	again, bound := ddl(t, s, tbl)
	if len(again) > 0 {
		t.Fatalf("the sink wants to change the table it created: %q", again)
	}

	dir := t.TempDir()
	file := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b1, tok1 := nativeBatch(t, s, bound, recs[:2])
	b2, tok2 := nativeBatch(t, s, bound, recs[2:])
	if tok1 == tok2 {
		t.Fatalf("two batches of different records share the token %s", tok1)
	}
	insert := func(path, token string) string {
		return fmt.Sprintf("%s SELECT * FROM file(%s, 'Native') SETTINGS insert_deduplication_token = %s",
			newWriter(s.fqtn, bound, current).insert, quoteString(path), quoteString(token))
	}
	count := "SELECT count() FROM " + s.fqtn
	out := filepath.Join(dir, "out.native")
	res = runCHDB(t, "CREATE DATABASE switchyard", create,
		insert(file("b1.native", b1), tok1), count,
		insert(filepath.Join(dir, "b1.native"), tok1), count, // a retried batch
		insert(file("b2.native", b2), tok2), count,
		fmt.Sprintf("SELECT * FROM %s ORDER BY _offset INTO OUTFILE %s FORMAT Native", s.fqtn, quoteString(out)),
	)
	if c := []string{res[3], res[5], res[7]}; c[0] != "2\n" || c[1] != "2\n" || c[2] != "4\n" {
		t.Errorf("row counts after the first batch, its retry with the same token, and a second batch: %q, want 2, 2, 4", c)
	}

	// Every value of every column comes back as written.
	back, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// rowsOf flattens blocks into (block, row) positions.
	type pos struct {
		b   *proto.Block
		row int
	}
	rowsOf := func(blocks ...*proto.Block) []pos {
		var out []pos
		for _, b := range blocks {
			for r := range b.Rows() {
				out = append(out, pos{b, r})
			}
		}
		return out
	}
	sent := rowsOf(decodeNative(t, b1), decodeNative(t, b2))
	readBlocks := decodeNativeAll(t, back)
	read := rowsOf(readBlocks...)
	if len(read) != 4 {
		t.Fatalf("read back %d rows in %d blocks (%d bytes), want 4; counts %q", len(read), len(readBlocks), len(back), res)
	}
	for _, blk := range readBlocks {
		if len(blk.Columns) != len(bound) {
			t.Fatalf("read back a block of %d columns, want %d", len(blk.Columns), len(bound))
		}
	}
	for i, c := range bound {
		col := readBlocks[0].Columns[i]
		if col.Name() != c.lc.name || string(col.Type()) != c.typ.String() {
			t.Errorf("column %d: read back %s %s, sent %s %s", i, col.Name(), col.Type(), c.lc.name, c.typ)
			continue
		}
		for row := range 4 {
			w, g := sent[row].b.Columns[i].Row(sent[row].row, false), read[row].b.Columns[i].Row(read[row].row, false)
			if !equalValues(g, w) {
				t.Errorf("column %s %s row %d: read back %#v, sent %#v", c.lc.name, c.typ, row, g, w)
			}
		}
	}
	// The values that use a current server's types are the contract's.
	value := func(name string, row int) any {
		for i, c := range bound {
			if c.lc.name == name {
				return read[row].b.Columns[i].Row(read[row].row, false)
			}
		}
		t.Fatalf("no column %s", name)
		return nil
	}
	ts := time.Date(2026, 11, 26, 12, 34, 56, 789e6, time.UTC)
	for _, tc := range []struct {
		col  string
		row  int
		want any
	}{
		{"b", 0, true}, {"b", 1, false},
		{"occurred_at", 2, &ts}, {"occurred_at", 3, (*time.Time)(nil)},
		{"_event_time", 0, ts}, {"_event_time", 1, kafkaTime},
		{"counts", 0, map[string]int64{"a": 2, "x": 1}},
		{"flags", 2, map[bool]string{false: "n", true: "y"}},
		{"r_b", 0, []bool{true, false}},
		{"seen", 0, map[uint64]time.Time{5: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	} {
		if got := value(tc.col, tc.row); !equalValues(got, tc.want) {
			t.Errorf("column %s row %d = %#v, want %#v", tc.col, tc.row, got, tc.want)
		}
	}
}

// TestCurrentServer_chdb_add_column_evolution creates the table of evolve.v1.Order v1 in chDB,
// reads it back as Open does, and runs the ALTER TABLE the sink derives for v2.
func TestCurrentServer_chdb_add_column_evolution(t *testing.T) {
	v1 := compile(t, "order_v1.proto", "evolve.v1.Order")
	v2 := compile(t, "order_v2.proto", "evolve.v1.Order")
	create, _ := ddl(t, chdbSink(t, v1, "orders"), &table{})
	res := runCHDB(t, "CREATE DATABASE switchyard", create[0], columnsQuery("orders"))
	s2 := chdbSink(t, v2, "orders")
	alter, _ := ddl(t, s2, parseColumns(t, res[2]))
	if len(alter) != 1 || !strings.Contains(alter[0], "ADD COLUMN IF NOT EXISTS") {
		t.Fatalf("evolution DDL: %q", alter)
	}
	res = runCHDB(t, "CREATE DATABASE switchyard", create[0], alter[0], alter[0], columnsQuery("orders"))
	if again, _ := ddl(t, s2, parseColumns(t, res[4])); len(again) > 0 {
		t.Fatalf("after the ALTER TABLE the sink still wants %q", again)
	}
}
