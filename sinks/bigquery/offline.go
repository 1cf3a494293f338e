package bigquery

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/sinks"
)

var _ sinks.OfflinePlanner = (*Sink)(nil)

// PlanOffline returns, without connecting, what the sink would do: with previous nil, the
// CREATE TABLE for the contract; otherwise the column additions that bring a table made (by
// this sink) for previous up to the contract, none when it fits. It returns an error when
// the sink would refuse to start on such a table (a column whose type or mode changed, or
// missing columns with add_columns off).
func (s *Sink) PlanOffline(previous protoreflect.MessageDescriptor) (string, []string, error) {
	const assumption = "BigQuery (not connected)"
	if previous == nil {
		note := assumption
		if !s.set.cfg.CreateTable {
			note += "; create_table is off, so the table must exist with these columns"
		}
		return note, s.statements(&tablePlan{create: true, schema: s.lay.bqSchema()}), nil
	}
	old, err := compile(previous, s.set.cfg.EventTimeField)
	if err != nil {
		return assumption, nil, fmt.Errorf("the previous contract %s has no table layout: %w", previous.FullName(), err)
	}
	p := &tablePlan{}
	p.schema, p.adds, p.conflicts = reconcile(s.lay.columns, old.bqSchema(), "")
	if len(p.conflicts) > 0 {
		return assumption, nil, sinks.Permanent(fmt.Errorf("bigquery sink: table %s made for the previous contract is incompatible with contract %s: %s", s.ref(), s.lay.contract.FullName(), strings.Join(p.conflicts, "; ")))
	}
	if len(p.adds) > 0 && !s.set.cfg.AddColumns {
		var names []string
		for _, a := range p.adds {
			names = append(names, joinPath(a.path, a.col.name))
		}
		return assumption, nil, sinks.Permanent(fmt.Errorf("bigquery sink: table %s would lack columns for contract fields %s and add_columns is false", s.ref(), strings.Join(names, ", ")))
	}
	return assumption, s.statements(p), nil
}
