package clickhouse

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/sinks"
)

// OfflineServerVersion is the ClickHouse server version PlanOffline assumes: a current
// release, on which every feature the sink uses is available (DateTime64, Bool, Map, ADD
// COLUMN IF NOT EXISTS, insert deduplication tokens, async inserts). Older servers get other
// column types (see features.go); `switchyard plan` reads the real version.
var OfflineServerVersion = version{25, 8, 0}

var _ sinks.OfflinePlanner = (*Sink)(nil)

// PlanOffline returns, without connecting, the DDL the sink would run on a server of
// OfflineServerVersion: with previous nil, the CREATE TABLE for the contract; otherwise the
// ALTER TABLE that brings a table made (by this sink) for previous up to the contract, none
// when it fits. It returns an error wrapped with sinks.Permanent, holding a *MismatchError,
// when the sink would refuse to start on such a table.
func (s *Sink) PlanOffline(previous protoreflect.MessageDescriptor) (string, []string, error) {
	f := featuresOf(OfflineServerVersion)
	assumption := fmt.Sprintf("ClickHouse %s (assumed, not connected)", f.version)
	if err := s.checkServer(f); err != nil {
		return assumption, nil, err
	}
	if previous == nil {
		cols, err := contractColumns(s.schema, f, func(string) bool { return false })
		if err != nil {
			m := &MismatchError{Table: s.fqtn, Contract: string(s.schema.FullName()), Problems: []string{err.Error()}}
			if me, ok := err.(*mappingError); ok {
				m.Problems = me.problems
			}
			return assumption, nil, sinks.Permanent(m)
		}
		if !s.cfg.CreateTable {
			assumption += "; create_table is off, so the table must exist with these columns"
		}
		return assumption, []string{s.createTable(cols, f)}, nil
	}
	oldCols, err := contractColumns(previous, f, func(string) bool { return false })
	if err != nil {
		return assumption, nil, fmt.Errorf("the previous contract %s has no column layout: %w", previous.FullName(), err)
	}
	keys := map[string]bool{}
	for _, k := range strings.Split(s.cfg.OrderBy+","+s.cfg.PartitionBy, ",") {
		keys[strings.Trim(strings.TrimSpace(k), "`()")] = true
	}
	tbl := &table{exists: true}
	for _, lc := range oldCols {
		tbl.columns = append(tbl.columns, tableColumn{name: lc.name, typ: lc.desiredType(f), inKey: keys[lc.name]})
	}
	stmts, _, _, err := s.reconcile(f, tbl)
	if err != nil {
		return assumption, nil, sinks.Permanent(err)
	}
	return assumption, stmts, nil
}
