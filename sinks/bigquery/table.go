package bigquery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"

	"github.com/switchyard-dev/switchyard/sinks"
)

// tablePlan is what Open would do to the table.
type tablePlan struct {
	create    bool
	adds      []addition
	conflicts []string
	etag      string
	schema    bigquery.Schema // the table's schema after the additions
}

// addition is one column the contract has and the table lacks.
type addition struct {
	path string // dotted path of the parent record; "" for a top-level column
	col  *column
}

// inspect reads the dataset and table and works out what Open would change. It returns an
// error when the dataset or table cannot be read or the sink would refuse to start.
func (s *Sink) inspect(ctx context.Context) (*tablePlan, error) {
	ds := s.bq.Dataset(s.set.cfg.Dataset)
	if _, err := ds.Metadata(ctx); err != nil {
		return nil, s.restError("read dataset", "bigquery.datasets.get", err)
	}
	md, err := ds.Table(s.set.table).Metadata(ctx)
	if err != nil {
		if httpCode(err) == http.StatusNotFound {
			if !s.set.cfg.CreateTable {
				return nil, sinks.Permanent(fmt.Errorf("table %s does not exist in dataset %s:%s; create it or set create_table: true", s.set.table, s.set.cfg.Project, s.set.cfg.Dataset))
			}
			return &tablePlan{create: true, schema: s.lay.bqSchema()}, nil
		}
		return nil, s.restError("read table metadata", "bigquery.tables.get", err)
	}
	p := &tablePlan{etag: md.ETag}
	p.schema, p.adds, p.conflicts = reconcile(s.lay.columns, md.Schema, "")
	if len(p.conflicts) > 0 {
		return p, sinks.Permanent(fmt.Errorf("table %s is incompatible with contract %s: %s", s.ref(), s.lay.contract.FullName(), strings.Join(p.conflicts, "; ")))
	}
	if len(p.adds) > 0 && !s.set.cfg.AddColumns {
		var names []string
		for _, a := range p.adds {
			names = append(names, joinPath(a.path, a.col.name))
		}
		return p, sinks.Permanent(fmt.Errorf("table %s lacks columns for contract fields %s and add_columns is false", s.ref(), strings.Join(names, ", ")))
	}
	return p, nil
}

// reconcile compares the columns the contract needs with the table's schema. It returns the
// table schema extended with the missing columns (as NULLABLE, or REPEATED), the additions,
// and a description of every incompatibility.
func reconcile(want []*column, have bigquery.Schema, path string) (bigquery.Schema, []addition, []string) {
	out := make(bigquery.Schema, 0, len(have)+len(want))
	var adds []addition
	var conflicts []string
	byName := map[string]*column{}
	for _, c := range want {
		byName[strings.ToLower(c.name)] = c
	}
	matched := map[string]bool{}
	for _, h := range have {
		hc := *h
		w, ok := byName[strings.ToLower(h.Name)]
		name := joinPath(path, h.Name)
		if !ok {
			if h.Required {
				conflicts = append(conflicts, fmt.Sprintf("column %s is REQUIRED in the table but the contract has no field for it (make it NULLABLE)", name))
			}
			out = append(out, &hc)
			continue
		}
		matched[strings.ToLower(h.Name)] = true
		switch ht, wt := normType(h.Type), w.typ; {
		case ht != wt:
			conflicts = append(conflicts, fmt.Sprintf("column %s is %s in the table, the contract's %s needs %s", name, sqlTypeName(ht), w.src, sqlTypeName(wt)))
		case h.Repeated != w.repeated:
			conflicts = append(conflicts, fmt.Sprintf("column %s is %s in the table, the contract's %s needs %s", name, mode(h.Repeated, h.Required), w.src, mode(w.repeated, w.required)))
		case h.Required && !w.required:
			conflicts = append(conflicts, fmt.Sprintf("column %s is REQUIRED in the table, but the contract's %s may be unset (make it NULLABLE)", name, w.src))
		case wt == bigquery.RecordFieldType:
			sub, subAdds, subConflicts := reconcile(w.fields, h.Schema, name)
			hc.Schema = sub
			adds = append(adds, subAdds...)
			conflicts = append(conflicts, subConflicts...)
		}
		out = append(out, &hc)
	}
	for _, w := range want {
		if matched[strings.ToLower(w.name)] {
			continue
		}
		nc := w.toBQ()
		relax(nc)
		out = append(out, nc)
		adds = append(adds, addition{path: path, col: w})
	}
	return out, adds, conflicts
}

// relax makes a column addable: BigQuery adds only NULLABLE or REPEATED columns.
func relax(f *bigquery.FieldSchema) {
	f.Required = false
	for _, sub := range f.Schema {
		relax(sub)
	}
}

func mode(repeated, required bool) string {
	switch {
	case repeated:
		return "REPEATED"
	case required:
		return "REQUIRED"
	}
	return "NULLABLE"
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// apply carries out p: it creates the table or patches its schema. A patch is conditional on
// the ETag it was planned against; when someone else changed the table meanwhile it plans
// again (a few times).
func (s *Sink) apply(ctx context.Context, p *tablePlan) error {
	t := s.bq.Dataset(s.set.cfg.Dataset).Table(s.set.table)
	for attempt := 0; ; attempt++ {
		switch {
		case p.create:
			err := t.Create(ctx, &bigquery.TableMetadata{
				Schema:           p.schema,
				TimePartitioning: s.set.partitioning,
				Clustering:       s.set.clustering,
				Description:      fmt.Sprintf("Events of contract %s, written by switchyard.", s.lay.contract.FullName()),
			})
			if err == nil {
				s.log.Info("created table", "columns", len(p.schema))
				return nil
			}
			if httpCode(err) != http.StatusConflict {
				return s.restError("create table", "bigquery.tables.create", err)
			}
			// Created by someone else meanwhile: check it like any existing table.
		case len(p.adds) > 0:
			_, err := t.Update(ctx, bigquery.TableMetadataToUpdate{Schema: p.schema}, p.etag)
			if err == nil {
				for _, a := range p.adds {
					s.log.Info("added column", "column", joinPath(a.path, a.col.name), "type", a.col.sqlType())
				}
				s.evolved.Store(s.now().UnixNano())
				return nil
			}
			if httpCode(err) != http.StatusPreconditionFailed {
				return s.restError("add columns to table", "bigquery.tables.update", err)
			}
		default:
			return nil
		}
		if attempt == 4 {
			return fmt.Errorf("table %s kept changing while the sink tried to update it", s.ref())
		}
		var err error
		if p, err = s.inspect(ctx); err != nil {
			return err
		}
	}
}

// statements describes p as DDL, for Plan.
func (s *Sink) statements(p *tablePlan) []string {
	ref := quoteIdent(fmt.Sprintf("%s.%s.%s", s.set.cfg.Project, s.set.cfg.Dataset, s.set.table))
	if p.create {
		cols := make([]string, len(s.lay.columns))
		for i, c := range s.lay.columns {
			cols[i] = "  " + quoteIdent(c.name) + " " + c.sqlType()
		}
		ddl := "CREATE TABLE " + ref + " (\n" + strings.Join(cols, ",\n") + "\n)"
		if tp := s.set.partitioning; tp != nil {
			ddl += fmt.Sprintf("\nPARTITION BY TIMESTAMP_TRUNC(%s, %s)", quoteIdent(tp.Field), tp.Type)
		}
		if cl := s.set.clustering; cl != nil {
			quoted := make([]string, len(cl.Fields))
			for i, f := range cl.Fields {
				quoted[i] = quoteIdent(f)
			}
			ddl += "\nCLUSTER BY " + strings.Join(quoted, ", ")
		}
		return []string{ddl}
	}
	var out []string
	for _, a := range p.adds {
		c := *a.col
		c.required = false
		if a.path == "" {
			out = append(out, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", ref, quoteIdent(c.name), c.sqlType()))
			continue
		}
		out = append(out, fmt.Sprintf("tables.patch %s: add field %s %s to RECORD %s", ref, quoteIdent(c.name), c.sqlType(), a.path))
	}
	return out
}

// restError describes a failed REST call, naming the dataset, table and the permission the
// call needs when access was denied.
func (s *Sink) restError(what, permission string, err error) error {
	where := fmt.Sprintf("table %s in dataset %s:%s", s.set.table, s.set.cfg.Project, s.set.cfg.Dataset)
	switch httpCode(err) {
	case http.StatusForbidden, http.StatusUnauthorized:
		return fmt.Errorf("%s of %s: permission denied; the sink's credentials need %s on dataset %s:%s: %w",
			what, where, permission, s.set.cfg.Project, s.set.cfg.Dataset, err)
	case http.StatusNotFound:
		if permission == "bigquery.datasets.get" {
			return fmt.Errorf("%s of %s: dataset %s:%s does not exist (or the credentials lack %s): %w",
				what, where, s.set.cfg.Project, s.set.cfg.Dataset, permission, err)
		}
		return fmt.Errorf("%s of %s: not found: %w", what, where, err)
	}
	return fmt.Errorf("%s of %s: %w", what, where, err)
}

func httpCode(err error) int {
	var e *googleapi.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}
