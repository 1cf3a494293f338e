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

// reMaxQuery is the one query shape the fake runs:
// SELECT g, MAX(m) FROM `p.d.t` WHERE c = @param GROUP BY g.
var reMaxQuery = regexp.MustCompile("(?is)^\\s*SELECT\\s+(\\w+)\\s*,\\s*MAX\\(\\s*(\\w+)\\s*\\)(?:\\s+AS\\s+(\\w+))?\\s+FROM\\s+`([^`]+)`\\s+WHERE\\s+(\\w+)\\s*=\\s*@(\\w+)\\s+GROUP\\s+BY\\s+(\\w+)\\s*;?\\s*$")

func (s *Server) query(w http.ResponseWriter, r *http.Request, project string) {
	var req bq.QueryRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "bqfake: bad query body")
		return
	}
	s.queries.Add(1)
	m := reMaxQuery.FindStringSubmatch(req.Query)
	if m == nil {
		writeError(w, http.StatusBadRequest, "invalid", "bqfake: unsupported query (only SELECT g, MAX(m) FROM `p.d.t` WHERE c = @param GROUP BY g): "+req.Query)
		return
	}
	group, maxCol, alias, ref, filterCol, param, groupBy := m[1], m[2], m[3], m[4], m[5], m[6], m[7]
	if !strings.EqualFold(group, groupBy) {
		writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("SELECT list expression references column %s which is neither grouped nor aggregated", group))
		return
	}
	var value *string
	for _, p := range req.QueryParameters {
		if p.Name == param && p.ParameterValue != nil {
			v := p.ParameterValue.Value
			value = &v
		}
	}
	if value == nil {
		writeError(w, http.StatusBadRequest, "invalid", "Query parameter '"+param+"' not found")
		return
	}
	parts := strings.Split(ref, ".")
	if len(parts) == 2 {
		parts = append([]string{project}, parts...)
	}
	if len(parts) != 3 {
		writeError(w, http.StatusBadRequest, "invalid", "bqfake: table reference must be project.dataset.table: "+ref)
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

	maxes := map[int64]int64{}
	for _, st := range rows {
		row, err := decodeRow(st.desc, st.data, schema.Fields)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internalError", err.Error())
			return
		}
		if v, _ := lookup(row, filterCol).(string); v != *value {
			continue
		}
		g, ok1 := lookup(row, group).(int64)
		v, ok2 := lookup(row, maxCol).(int64)
		if !ok1 || !ok2 {
			continue // NULL group or value
		}
		if cur, ok := maxes[g]; !ok || v > cur {
			maxes[g] = v
		}
	}
	keys := make([]int64, 0, len(maxes))
	for k := range maxes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	if alias == "" {
		alias = "f0_"
	}
	resp := &bq.QueryResponse{
		Kind:         "bigquery#queryResponse",
		JobComplete:  true,
		JobReference: &bq.JobReference{ProjectId: project, JobId: jobID, Location: s.Location},
		Schema: &bq.TableSchema{Fields: []*bq.TableFieldSchema{
			{Name: group, Type: "INTEGER", Mode: "NULLABLE"},
			{Name: alias, Type: "INTEGER", Mode: "NULLABLE"},
		}},
		TotalRows: uint64(len(keys)),
	}
	for _, k := range keys {
		resp.Rows = append(resp.Rows, &bq.TableRow{F: []*bq.TableCell{
			{V: strconv.FormatInt(k, 10)}, {V: strconv.FormatInt(maxes[k], 10)},
		}})
	}
	s.mu.Lock()
	s.jobs[project+"/"+jobID] = resp
	s.mu.Unlock()
	writeJSON(w, resp)
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
