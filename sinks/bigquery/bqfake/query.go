package bqfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	bq "google.golang.org/api/bigquery/v2"
)

// The fake runs a small subset of GoogleSQL, enough for the sink's own queries:
//
//	SELECT item, ... FROM `project.dataset.table` [WHERE pred AND ...] [GROUP BY column]
//
// where an item is a top-level column or MAX(column) [AS alias], and a predicate is
// "column = @param", "column >= @param", "column <= @param" or
// "column BETWEEN @lo AND @hi". Parameters are STRING or INT64.
var (
	reSelect  = regexp.MustCompile("(?is)^\\s*SELECT\\s+(.+?)\\s+FROM\\s+`([^`]+)`(?:\\s+WHERE\\s+(.+?))?(?:\\s+GROUP\\s+BY\\s+(\\w+))?\\s*;?\\s*$")
	reItemMax = regexp.MustCompile(`(?i)^\s*MAX\(\s*(\w+)\s*\)(?:\s+AS\s+(\w+))?\s*$`)
	reItemCol = regexp.MustCompile(`^\s*(\w+)\s*$`)
	reBetween = regexp.MustCompile(`(?i)^\s*(\w+)\s+BETWEEN\s+@(\w+)\s+AND\s+@(\w+)`)
	reCompare = regexp.MustCompile(`^\s*(\w+)\s*(=|>=|<=)\s*@(\w+)`)
	reAnd     = regexp.MustCompile(`(?i)^\s+AND\s+`)
)

type selectItem struct {
	col, name string
	max       bool
}

type predicate struct {
	col    string
	op     string // "=", ">=", "<=", "between"
	params []string
}

type parsedQuery struct {
	items   []selectItem
	ref     string
	preds   []predicate
	groupBy string
}

func parseQuery(sql string) (*parsedQuery, error) {
	m := reSelect.FindStringSubmatch(sql)
	if m == nil {
		return nil, fmt.Errorf("bqfake: unsupported query: %s", sql)
	}
	q := &parsedQuery{ref: m[2], groupBy: m[4]}
	anonymous := 0
	for _, it := range strings.Split(m[1], ",") {
		if mm := reItemMax.FindStringSubmatch(it); mm != nil {
			name := mm[2]
			if name == "" {
				name = fmt.Sprintf("f%d_", anonymous)
				anonymous++
			}
			q.items = append(q.items, selectItem{col: mm[1], name: name, max: true})
			continue
		}
		if mm := reItemCol.FindStringSubmatch(it); mm != nil {
			q.items = append(q.items, selectItem{col: mm[1], name: mm[1]})
			continue
		}
		return nil, fmt.Errorf("bqfake: unsupported select item %q", it)
	}
	for rest := m[3]; rest != ""; {
		if mm := reBetween.FindStringSubmatch(rest); mm != nil {
			q.preds = append(q.preds, predicate{col: mm[1], op: "between", params: []string{mm[2], mm[3]}})
			rest = rest[len(mm[0]):]
		} else if mm := reCompare.FindStringSubmatch(rest); mm != nil {
			q.preds = append(q.preds, predicate{col: mm[1], op: mm[2], params: []string{mm[3]}})
			rest = rest[len(mm[0]):]
		} else {
			return nil, fmt.Errorf("bqfake: unsupported predicate %q", rest)
		}
		if rest == "" {
			break
		}
		loc := reAnd.FindStringIndex(rest)
		if loc == nil {
			return nil, fmt.Errorf("bqfake: unsupported predicate %q", rest)
		}
		rest = rest[loc[1]:]
	}
	hasMax := false
	for _, it := range q.items {
		hasMax = hasMax || it.max
	}
	for _, it := range q.items {
		if !it.max && hasMax && !strings.EqualFold(it.col, q.groupBy) {
			return nil, fmt.Errorf("SELECT list expression references column %s which is neither grouped nor aggregated", it.col)
		}
	}
	return q, nil
}

func (s *Server) query(w http.ResponseWriter, r *http.Request, project string) {
	var req bq.QueryRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "bqfake: bad query body")
		return
	}
	s.queries.Add(1)
	q, err := parseQuery(req.Query)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	params := map[string]any{}
	for _, p := range req.QueryParameters {
		if p.ParameterValue == nil || p.ParameterType == nil {
			continue
		}
		v := p.ParameterValue.Value
		switch p.ParameterType.Type {
		case "INT64":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("Query parameter '%s': %v", p.Name, err))
				return
			}
			params[p.Name] = n
		case "STRING":
			params[p.Name] = v
		default:
			writeError(w, http.StatusBadRequest, "invalid", "bqfake: unsupported parameter type "+p.ParameterType.Type)
			return
		}
	}
	for _, pr := range q.preds {
		for _, name := range pr.params {
			if _, ok := params[name]; !ok {
				writeError(w, http.StatusBadRequest, "invalid", "Query parameter '"+name+"' not found")
				return
			}
		}
	}
	parts := strings.Split(q.ref, ".")
	if len(parts) == 2 {
		parts = append([]string{project}, parts...)
	}
	if len(parts) != 3 {
		writeError(w, http.StatusBadRequest, "invalid", "bqfake: table reference must be project.dataset.table: "+q.ref)
		return
	}
	s.mu.Lock()
	if s.deniedREST(w, "bigquery.jobs.create", "Project "+project) {
		s.mu.Unlock()
		return
	}
	tref := fmt.Sprintf("Table %s:%s.%s", parts[0], parts[1], parts[2])
	if s.deniedREST(w, "bigquery.tables.getData", tref) {
		s.mu.Unlock()
		return
	}
	t, ok := s.tables[tableKey(parts[0], parts[1], parts[2])]
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "notFound", "Not found: "+tref)
		return
	}
	rows := append([]stored(nil), t.rows...)
	schema := t.meta.Schema
	jobID := fmt.Sprintf("job_%d", s.nextSeq())
	s.mu.Unlock()

	colType := map[string]string{}
	for _, f := range schema.Fields {
		colType[strings.ToLower(f.Name)] = normType(f.Type)
	}
	for _, it := range q.items {
		if _, ok := colType[strings.ToLower(it.col)]; !ok {
			writeError(w, http.StatusBadRequest, "invalid", "Unrecognized name: "+it.col)
			return
		}
	}
	var matched []Row
	for _, st := range rows {
		row, err := decodeRow(st.desc, st.data, schema.Fields)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internalError", err.Error())
			return
		}
		if matches(row, q.preds, params) {
			matched = append(matched, row)
		}
	}
	out := evaluate(q, matched)
	resp := &bq.QueryResponse{
		Kind:         "bigquery#queryResponse",
		JobComplete:  true,
		JobReference: &bq.JobReference{ProjectId: project, JobId: jobID, Location: s.Location},
		Schema:       &bq.TableSchema{},
		TotalRows:    uint64(len(out)),
	}
	for _, it := range q.items {
		resp.Schema.Fields = append(resp.Schema.Fields, &bq.TableFieldSchema{Name: it.name, Type: colType[strings.ToLower(it.col)], Mode: "NULLABLE"})
	}
	for _, vals := range out {
		tr := &bq.TableRow{}
		for _, v := range vals {
			tr.F = append(tr.F, &bq.TableCell{V: cell(v)})
		}
		resp.Rows = append(resp.Rows, tr)
	}
	s.mu.Lock()
	s.jobs[project+"/"+jobID] = resp
	s.mu.Unlock()
	writeJSON(w, resp)
}

func matches(row Row, preds []predicate, params map[string]any) bool {
	for _, p := range preds {
		v := lookup(row, p.col)
		if v == nil {
			return false
		}
		switch p.op {
		case "=":
			if compare(v, params[p.params[0]]) != 0 {
				return false
			}
		case ">=":
			if compare(v, params[p.params[0]]) < 0 {
				return false
			}
		case "<=":
			if compare(v, params[p.params[0]]) > 0 {
				return false
			}
		case "between":
			if compare(v, params[p.params[0]]) < 0 || compare(v, params[p.params[1]]) > 0 {
				return false
			}
		}
	}
	return true
}

// compare orders two values of the same kind (int64 or string); values of different kinds
// compare unequal.
func compare(a, b any) int {
	switch x := a.(type) {
	case int64:
		if y, ok := b.(int64); ok {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	}
	return 2
}

// evaluate projects (and groups) the matched rows.
func evaluate(q *parsedQuery, rows []Row) [][]any {
	hasMax := false
	for _, it := range q.items {
		hasMax = hasMax || it.max
	}
	if !hasMax {
		out := make([][]any, 0, len(rows))
		for _, r := range rows {
			vals := make([]any, len(q.items))
			for i, it := range q.items {
				vals[i] = lookup(r, it.col)
			}
			out = append(out, vals)
		}
		return out
	}
	type group struct {
		key  any
		vals []any
	}
	groups := map[string]*group{}
	var keys []string
	for _, r := range rows {
		var key any
		if q.groupBy != "" {
			key = lookup(r, q.groupBy)
		}
		k := fmt.Sprint(key)
		g, ok := groups[k]
		if !ok {
			g = &group{key: key, vals: make([]any, len(q.items))}
			groups[k] = g
			keys = append(keys, k)
		}
		for i, it := range q.items {
			v := lookup(r, it.col)
			if !it.max {
				g.vals[i] = v
				continue
			}
			if v != nil && (g.vals[i] == nil || compare(v, g.vals[i]) > 0) {
				g.vals[i] = v
			}
		}
	}
	if q.groupBy == "" && len(groups) == 0 {
		return [][]any{make([]any, len(q.items))} // an aggregate over no rows: one row of NULLs
	}
	sort.Slice(keys, func(i, j int) bool {
		return compare(groups[keys[i]].key, groups[keys[j]].key) < 0
	})
	out := make([][]any, 0, len(keys))
	for _, k := range keys {
		out = append(out, groups[k].vals)
	}
	return out
}

func cell(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case int64:
		return strconv.FormatInt(x, 10)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

func (s *Server) queryResults(w http.ResponseWriter, project, jobID string) {
	s.mu.Lock()
	resp, ok := s.jobs[project+"/"+jobID]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "notFound", "Not found: Job "+project+":"+jobID)
		return
	}
	rows := resp.Rows
	if rows == nil {
		rows = []*bq.TableRow{}
	}
	writeJSON(w, &bq.GetQueryResultsResponse{
		Kind:         "bigquery#getQueryResultsResponse",
		JobComplete:  true,
		JobReference: resp.JobReference,
		Schema:       resp.Schema,
		TotalRows:    resp.TotalRows,
		Rows:         rows,
	})
}

// lookup reads a top-level column case-insensitively.
func lookup(row Row, col string) any {
	if v, ok := row[col]; ok {
		return v
	}
	for k, v := range row {
		if strings.EqualFold(k, col) {
			return v
		}
	}
	return nil
}
