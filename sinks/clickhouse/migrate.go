package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// tableColumn is one column of the existing table, from system.columns.
type tableColumn struct {
	name        string
	typ         string
	defaultKind string // "", DEFAULT, MATERIALIZED, ALIAS, EPHEMERAL
	inKey       bool   // part of the partition, sorting, primary or sampling key
}

// table is the existing table, or exists == false.
type table struct {
	exists  bool
	columns []tableColumn
}

func (t *table) column(name string) *tableColumn {
	for i := range t.columns {
		if t.columns[i].name == name {
			return &t.columns[i]
		}
	}
	return nil
}

// readTable reads the columns of the sink's table.
func (s *Sink) readTable(ctx context.Context, conn driver.Conn) (*table, error) {
	where := fmt.Sprintf("database = %s AND %%s = %s", quoteString(s.cfg.Database), quoteString(s.table))
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE "+fmt.Sprintf(where, "name")).Scan(&n); err != nil {
		return nil, fmt.Errorf("look up table %s: %w", s.fqtn, err)
	}
	t := &table{exists: n > 0}
	if !t.exists {
		return t, nil
	}
	rows, err := conn.Query(ctx, "SELECT name, type, default_kind, "+
		"toUInt8(is_in_partition_key OR is_in_sorting_key OR is_in_primary_key OR is_in_sampling_key) "+
		"FROM system.columns WHERE "+fmt.Sprintf(where, "table"))
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", s.fqtn, err)
	}
	defer rows.Close()
	for rows.Next() {
		var c tableColumn
		var inKey uint8
		if err := rows.Scan(&c.name, &c.typ, &c.defaultKind, &inKey); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", s.fqtn, err)
		}
		c.inKey = inKey != 0
		t.columns = append(t.columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", s.fqtn, err)
	}
	return t, nil
}

// boundColumn is a contract column matched to a table column of type typ.
type boundColumn struct {
	lc   *logicalColumn
	typ  chType
	spec colSpec
}

// reconcile compares the contract with the table. It returns the DDL that makes the table
// fit (CREATE TABLE, or one ALTER TABLE that adds columns), or, when none is needed, the
// columns bound to their table types, plus warnings about columns left alone. It returns a
// *MismatchError when the table cannot be made to fit without a change the sink does not
// make on its own: a column whose type cannot hold its field, a key column the contract no
// longer has, a missing column with add_columns off, or a missing table without create_table.
func (s *Sink) reconcile(f features, tbl *table) (stmts []string, bound []boundColumn, warnings []string, err error) {
	has := func(name string) bool { return tbl.exists && tbl.column(name) != nil }
	cols, err := contractColumns(s.schema, f, has)
	if err != nil {
		m := &MismatchError{Table: s.fqtn, Contract: string(s.schema.FullName()), Problems: []string{err.Error()}}
		if me, ok := err.(*mappingError); ok {
			m.Problems = me.problems
		}
		return nil, nil, nil, m
	}
	if !tbl.exists {
		if !s.cfg.CreateTable {
			return nil, nil, nil, &MismatchError{Table: s.fqtn, Contract: string(s.schema.FullName()),
				Problems: []string{"the table does not exist"},
				Fix:      []string{"create it, or set create_table: true to let the sink create it (`switchyard plan` prints the CREATE TABLE)"}}
		}
		return []string{s.createTable(cols, f)}, nil, nil, nil
	}
	m := &MismatchError{Table: s.fqtn, Contract: string(s.schema.FullName())}
	var adds []*logicalColumn
	want := map[string]bool{}
	for _, lc := range cols {
		want[lc.name] = true
		tc := tbl.column(lc.name)
		if tc == nil {
			if s.cfg.AddColumns {
				adds = append(adds, lc)
				continue
			}
			m.Problems = append(m.Problems, fmt.Sprintf("column %s for %s is missing", lc.name, lc.source))
			m.addFix(fmt.Sprintf("add it (ALTER TABLE %s ADD COLUMN %s %s), or set add_columns: true", s.fqtn, quoteIdent(lc.name), lc.desiredType(f)))
			continue
		}
		if tc.defaultKind == "MATERIALIZED" || tc.defaultKind == "ALIAS" {
			m.Problems = append(m.Problems, fmt.Sprintf("column %s for %s is %s and cannot be inserted into", lc.name, lc.source, tc.defaultKind))
			m.addFix(fmt.Sprintf("rename the field, or turn %s into an ordinary column", lc.name))
			continue
		}
		spec, typ, err := bind(lc, tc.typ)
		if err != nil {
			m.Problems = append(m.Problems, fmt.Sprintf("column %s is %s in the table, but %s needs %s", lc.name, tc.typ, lc.source, lc.needs(f)))
			m.addFix("type changes are not applied automatically: add a new field for the new type and deprecate the old one, " +
				"or migrate the column yourself (ALTER TABLE ... MODIFY COLUMN, or a new table and INSERT ... SELECT)")
			continue
		}
		bound = append(bound, boundColumn{lc: lc, typ: typ, spec: spec})
	}
	for _, tc := range tbl.columns {
		if want[tc.name] || tc.defaultKind != "" {
			continue
		}
		if !tc.inKey {
			// Left alone: rows get the column's default. Refusing would also stop an older
			// version of the contract during a rolling deploy or a rollback.
			warnings = append(warnings, fmt.Sprintf("column %s (%s) has no field in contract %s; new rows get its default value", tc.name, tc.typ, s.schema.FullName()))
			continue
		}
		m.Problems = append(m.Problems, fmt.Sprintf("column %s (%s) is part of the table's partition or sorting key, but the contract has no field for it", tc.name, tc.typ))
		m.addFix(fmt.Sprintf("restore the field %s in the contract, or write the new contract to a new table (set table: or drop the old one)", tc.name))
	}
	if len(m.Problems) > 0 {
		return nil, nil, warnings, m
	}
	if len(adds) > 0 {
		return []string{s.addColumns(adds, f)}, nil, warnings, nil
	}
	return nil, bound, warnings, nil
}

// MismatchError says why a table cannot take a contract's events, and what to do about it.
type MismatchError struct {
	Table    string
	Contract string
	Problems []string
	Fix      []string
}

func (e *MismatchError) addFix(fix string) {
	for _, f := range e.Fix {
		if f == fix {
			return
		}
	}
	e.Fix = append(e.Fix, fix)
}

func (e *MismatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s does not fit contract %s:", e.Table, e.Contract)
	for _, p := range e.Problems {
		b.WriteString("\n  - " + p)
	}
	if len(e.Fix) > 0 {
		b.WriteString("\nwhat to do:")
		for _, f := range e.Fix {
			b.WriteString("\n  - " + f)
		}
	}
	return b.String()
}

// bind matches lc to a table column of type typ: it returns the column's buffers, or an error
// when the type cannot hold lc's values.
func bind(lc *logicalColumn, typ string) (colSpec, chType, error) {
	full, err := parseType(typ)
	if err != nil {
		return nil, chType{}, err
	}
	t := full
	for range lc.depth {
		if t.name != "Array" {
			return nil, full, errIncompatible
		}
		t = t.args[0]
	}
	switch lc.meta {
	case metaTopic, metaSchema:
		c, err := newCell(&logicalColumn{vk: vkString}, t, false)
		if err != nil {
			return nil, full, err
		}
		get := func(r *row) (protoreflect.Value, bool) { return protoreflect.ValueOfString(r.rec.Topic), true }
		if lc.meta == metaSchema {
			get = func(r *row) (protoreflect.Value, bool) { return protoreflect.ValueOfString(r.rec.Contract), true }
		}
		return c.scalar(get, t.isNullable()), full, nil
	case metaPartition, metaOffset:
		c, err := newCell(&logicalColumn{vk: vkInt}, t, false)
		if err != nil {
			return nil, full, err
		}
		get := func(r *row) (protoreflect.Value, bool) { return protoreflect.ValueOfInt64(r.rec.Offset), true }
		if lc.meta == metaPartition {
			get = func(r *row) (protoreflect.Value, bool) {
				return protoreflect.ValueOfInt64(int64(r.rec.Partition)), true
			}
		}
		return c.scalar(get, t.isNullable()), full, nil
	case metaEventTime, metaLandedAt:
		c, err := newCell(&logicalColumn{vk: vkTimestamp}, t, false)
		if err != nil {
			return nil, full, err
		}
		get := func(r *row) time.Time { return r.now }
		if lc.meta == metaEventTime {
			get = eventTime(lc)
		}
		spec, _ := c.timeScalar(get, t.isNullable())
		return spec, full, nil
	}
	switch lc.leaf {
	case leafMap:
		if t.name != "Map" {
			return nil, full, errIncompatible
		}
		kc, err := newCell(lc, t.args[0], true)
		if err != nil {
			return nil, full, err
		}
		vc, err := newCell(lc, t.args[1], false)
		if err != nil {
			return nil, full, err
		}
		return vc.array(lc, kc), full, nil
	case leafMapKeys:
		c, err := newCell(lc, t, true)
		if err != nil {
			return nil, full, err
		}
		return c.array(lc, nil), full, nil
	}
	if t.name == "Map" || t.name == "Array" {
		return nil, full, errIncompatible
	}
	c, err := newCell(lc, t, false)
	if err != nil {
		return nil, full, err
	}
	if lc.depth == 0 {
		return c.scalar(fieldGetter(lc), t.isNullable()), full, nil
	}
	return c.array(lc, nil), full, nil
}

// fieldGetter reads a singular leaf outside any array.
func fieldGetter(lc *logicalColumn) func(*row) (protoreflect.Value, bool) {
	steps := lc.steps
	if len(steps) == 0 {
		return func(r *row) (protoreflect.Value, bool) { return leafGet(r.msg, lc) }
	}
	return func(r *row) (protoreflect.Value, bool) {
		m := r.child(steps[0].fd)
		for _, s := range steps[1:] {
			m = m.Get(s.fd).Message()
		}
		return leafGet(m, lc)
	}
}

// eventTime returns the _event_time of a row: the top-level Timestamp field lc.fd (see
// sinktable.EventTimeField) when set and valid, else the Kafka record timestamp, else the landing time.
func eventTime(lc *logicalColumn) func(*row) time.Time {
	fd := lc.fd
	var ts *wkt
	if fd != nil {
		ts = newWKT(fd)
	}
	return func(r *row) time.Time {
		if fd != nil {
			if m := r.msg.Get(fd).Message(); m.IsValid() {
				if t, err := ts.timestamp(m); err == nil {
					return t
				}
			}
		}
		if !r.rec.Timestamp.IsZero() {
			return r.rec.Timestamp
		}
		return r.now
	}
}

// createTable is the CREATE TABLE statement for cols.
func (s *Sink) createTable(cols []*logicalColumn, f features) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s\n(\n", s.fqtn)
	for i, lc := range cols {
		fmt.Fprintf(&b, "    %s %s", quoteIdent(lc.name), lc.desiredType(f))
		if i < len(cols)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, ")\nENGINE = %s", s.cfg.Engine)
	if s.cfg.PartitionBy != "" {
		fmt.Fprintf(&b, "\nPARTITION BY %s", s.cfg.PartitionBy)
	}
	fmt.Fprintf(&b, "\nORDER BY (%s)", s.cfg.OrderBy)
	if f.dedupToken && strings.HasPrefix(s.cfg.Engine, "MergeTree") {
		fmt.Fprintf(&b, "\nSETTINGS non_replicated_deduplication_window = %d", dedupWindow)
	}
	return b.String()
}

// addColumns is the ALTER TABLE statement that adds cols.
func (s *Sink) addColumns(cols []*logicalColumn, f features) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ALTER TABLE %s", s.fqtn)
	ifNotExists := ""
	if f.addColumnIfNotExists {
		ifNotExists = "IF NOT EXISTS "
	}
	for i, lc := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "\n    ADD COLUMN %s%s %s", ifNotExists, quoteIdent(lc.name), lc.desiredType(f))
	}
	return b.String()
}
