package bqfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	bq "google.golang.org/api/bigquery/v2"
)

var (
	reDatasets = regexp.MustCompile(`^projects/([^/]+)/datasets$`)
	reDataset  = regexp.MustCompile(`^projects/([^/]+)/datasets/([^/]+)$`)
	reTables   = regexp.MustCompile(`^projects/([^/]+)/datasets/([^/]+)/tables$`)
	reTable    = regexp.MustCompile(`^projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)$`)
	reQueries  = regexp.MustCompile(`^projects/([^/]+)/queries$`)
	reQuery    = regexp.MustCompile(`^projects/([^/]+)/queries/([^/]+)$`)
	reName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,299}$`)
)

func (s *Server) restHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(r.URL.Path, "/")
		path = strings.TrimPrefix(path, "bigquery/v2/")
		var m []string
		match := func(re *regexp.Regexp) bool {
			m = re.FindStringSubmatch(path)
			return m != nil
		}
		switch {
		case r.Method == http.MethodGet && match(reDataset):
			s.getDataset(w, m[1], m[2])
		case r.Method == http.MethodPost && match(reDatasets):
			s.insertDataset(w, r, m[1])
		case r.Method == http.MethodGet && match(reTable):
			s.getTable(w, m[1], m[2], m[3])
		case r.Method == http.MethodPost && match(reTables):
			s.insertTable(w, r, m[1], m[2])
		case (r.Method == http.MethodPatch || r.Method == http.MethodPut) && match(reTable):
			s.patchTable(w, r, m[1], m[2], m[3])
		case r.Method == http.MethodDelete && match(reTable):
			s.deleteTable(w, m[1], m[2], m[3])
		case r.Method == http.MethodPost && match(reQueries):
			s.query(w, r, m[1])
		case r.Method == http.MethodGet && match(reQuery):
			s.queryResults(w, m[1], m[2])
		default:
			writeError(w, http.StatusNotFound, "notFound", fmt.Sprintf("bqfake: no handler for %s %s", r.Method, r.URL.Path))
		}
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code":    code,
		"message": msg,
		"errors":  []any{map[string]any{"reason": reason, "message": msg, "domain": "global"}},
	}})
}

// deniedREST writes an access-denied error if permission is denied. Callers hold s.mu.
func (s *Server) deniedREST(w http.ResponseWriter, permission, resource string) bool {
	if !s.denied[permission] {
		return false
	}
	writeError(w, http.StatusForbidden, "accessDenied",
		fmt.Sprintf("Access Denied: %s: Permission %s denied on %s (or it may not exist).", resource, permission, resource))
	return true
}

func (s *Server) getDataset(w http.ResponseWriter, project, dataset string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deniedREST(w, "bigquery.datasets.get", fmt.Sprintf("Dataset %s:%s", project, dataset)) {
		return
	}
	ds, ok := s.datasets[project+":"+dataset]
	if !ok {
		writeError(w, http.StatusNotFound, "notFound", fmt.Sprintf("Not found: Dataset %s:%s", project, dataset))
		return
	}
	writeJSON(w, ds)
}

func (s *Server) insertDataset(w http.ResponseWriter, r *http.Request, project string) {
	var ds bq.Dataset
	if err := json.NewDecoder(r.Body).Decode(&ds); err != nil || ds.DatasetReference == nil {
		writeError(w, http.StatusBadRequest, "invalid", "bqfake: bad dataset body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deniedREST(w, "bigquery.datasets.create", "Project "+project) {
		return
	}
	id := ds.DatasetReference.DatasetId
	key := project + ":" + id
	if _, ok := s.datasets[key]; ok {
		writeError(w, http.StatusConflict, "duplicate", "Already Exists: Dataset "+key)
		return
	}
	ds.DatasetReference.ProjectId = project
	ds.Id = key
	ds.Kind = "bigquery#dataset"
	ds.Etag = strconv.Itoa(s.nextSeq())
	if ds.Location == "" {
		ds.Location = s.Location
	}
	now := time.Now().UnixMilli()
	ds.CreationTime, ds.LastModifiedTime = now, now
	s.datasets[key] = &ds
	writeJSON(w, &ds)
}

func (s *Server) nextSeq() int {
	s.seq++
	return s.seq
}

func (s *Server) getTable(w http.ResponseWriter, project, dataset, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := fmt.Sprintf("Table %s:%s.%s", project, dataset, id)
	if s.deniedREST(w, "bigquery.tables.get", ref) {
		return
	}
	t, ok := s.tables[tableKey(project, dataset, id)]
	if !ok {
		writeError(w, http.StatusNotFound, "notFound", "Not found: "+ref)
		return
	}
	t.meta.NumRows = uint64(len(t.rows))
	writeJSON(w, t.meta)
}

func (s *Server) insertTable(w http.ResponseWriter, r *http.Request, project, dataset string) {
	var t bq.Table
	if err := json.NewDecoder(r.Body).Decode(&t); err != nil || t.TableReference == nil {
		writeError(w, http.StatusBadRequest, "invalid", "bqfake: bad table body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := t.TableReference.TableId
	ref := fmt.Sprintf("Table %s:%s.%s", project, dataset, id)
	if s.deniedREST(w, "bigquery.tables.create", fmt.Sprintf("Dataset %s:%s", project, dataset)) {
		return
	}
	if _, ok := s.datasets[project+":"+dataset]; !ok {
		writeError(w, http.StatusNotFound, "notFound", fmt.Sprintf("Not found: Dataset %s:%s", project, dataset))
		return
	}
	key := tableKey(project, dataset, id)
	if _, ok := s.tables[key]; ok {
		writeError(w, http.StatusConflict, "duplicate", "Already Exists: "+ref)
		return
	}
	if t.Schema == nil || len(t.Schema.Fields) == 0 {
		writeError(w, http.StatusBadRequest, "invalid", "bqfake: tables without a schema are not supported")
		return
	}
	if err := checkSchema(t.Schema.Fields, 1); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	if err := checkLayout(&t); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	now := time.Now().UnixMilli()
	t.TableReference.ProjectId, t.TableReference.DatasetId = project, dataset
	t.Id = fmt.Sprintf("%s:%s.%s", project, dataset, id)
	t.Kind, t.Type, t.Location = "bigquery#table", "TABLE", s.Location
	t.CreationTime, t.LastModifiedTime = now, uint64(now)
	tb := &table{meta: &t, etag: s.nextSeq()}
	t.Etag = strconv.Itoa(tb.etag)
	tb.def = &stream{name: fmt.Sprintf("projects/%s/datasets/%s/tables/%s/streams/_default", project, dataset, id),
		table: key, typ: storagepb.WriteStream_COMMITTED, created: time.Now()}
	s.tables[key] = tb
	writeJSON(w, &t)
}

func (s *Server) deleteTable(w http.ResponseWriter, project, dataset, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deniedREST(w, "bigquery.tables.delete", fmt.Sprintf("Table %s:%s.%s", project, dataset, id)) {
		return
	}
	key := tableKey(project, dataset, id)
	if _, ok := s.tables[key]; !ok {
		writeError(w, http.StatusNotFound, "notFound", fmt.Sprintf("Not found: Table %s:%s.%s", project, dataset, id))
		return
	}
	delete(s.tables, key)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) patchTable(w http.ResponseWriter, r *http.Request, project, dataset, id string) {
	var patch bq.Table
	if err := json.NewDecoder(r.Body).Decode(&patch); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "bqfake: bad table body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := fmt.Sprintf("Table %s:%s.%s", project, dataset, id)
	if s.deniedREST(w, "bigquery.tables.update", ref) {
		return
	}
	t, ok := s.tables[tableKey(project, dataset, id)]
	if !ok {
		writeError(w, http.StatusNotFound, "notFound", "Not found: "+ref)
		return
	}
	if etag := r.Header.Get("If-Match"); etag != "" && etag != t.meta.Etag {
		writeError(w, http.StatusPreconditionFailed, "conditionNotMet", "Precondition check failed.")
		return
	}
	if patch.Schema != nil {
		if err := checkSchema(patch.Schema.Fields, 1); err != nil {
			writeError(w, http.StatusBadRequest, "invalid", err.Error())
			return
		}
		if err := checkEvolution(t.meta.Schema.Fields, patch.Schema.Fields, ""); err != nil {
			writeError(w, http.StatusBadRequest, "invalid", "Provided Schema does not match "+ref+". "+err.Error())
			return
		}
		t.meta.Schema = patch.Schema
		t.version++
	}
	if patch.Description != "" {
		t.meta.Description = patch.Description
	}
	t.etag = s.nextSeq()
	t.meta.Etag = strconv.Itoa(t.etag)
	t.meta.LastModifiedTime = uint64(time.Now().UnixMilli())
	writeJSON(w, t.meta)
}

var knownTypes = []string{"STRING", "BYTES", "INTEGER", "INT64", "FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC",
	"BOOLEAN", "BOOL", "TIMESTAMP", "DATE", "TIME", "DATETIME", "GEOGRAPHY", "RECORD", "STRUCT", "JSON", "INTERVAL"}

// normType maps the legacy and GoogleSQL spellings of a type to one name.
func normType(t string) string {
	switch t = strings.ToUpper(t); t {
	case "INT64":
		return "INTEGER"
	case "FLOAT64":
		return "FLOAT"
	case "BOOL":
		return "BOOLEAN"
	case "STRUCT":
		return "RECORD"
	}
	return t
}

// checkSchema validates column names, types, modes and nesting as tables.insert does.
func checkSchema(fields []*bq.TableFieldSchema, depth int) error {
	if depth > 15 {
		return fmt.Errorf("Field nesting exceeds the limit of 15 levels")
	}
	seen := map[string]bool{}
	for _, f := range fields {
		if !reName.MatchString(f.Name) {
			return fmt.Errorf("Invalid field name %q. Fields must contain only letters, numbers, and underscores, start with a letter or underscore, and be at most 300 characters long.", f.Name)
		}
		if seen[strings.ToLower(f.Name)] {
			return fmt.Errorf("Field %s already exists in schema", f.Name)
		}
		seen[strings.ToLower(f.Name)] = true
		if !slices.Contains(knownTypes, strings.ToUpper(f.Type)) {
			return fmt.Errorf("Invalid value for type: %s is not a valid value", f.Type)
		}
		switch f.Mode {
		case "", "NULLABLE", "REQUIRED", "REPEATED":
		default:
			return fmt.Errorf("Invalid value for mode: %s is not a valid value", f.Mode)
		}
		if normType(f.Type) == "RECORD" {
			if len(f.Fields) == 0 {
				return fmt.Errorf("Field %s is type RECORD but has no schema", f.Name)
			}
			if err := checkSchema(f.Fields, depth+1); err != nil {
				return err
			}
		} else if len(f.Fields) > 0 {
			return fmt.Errorf("Field %s is type %s but has subfields", f.Name, f.Type)
		}
	}
	return nil
}

// checkLayout validates time partitioning and clustering.
func checkLayout(t *bq.Table) error {
	top := map[string]*bq.TableFieldSchema{}
	for _, f := range t.Schema.Fields {
		top[strings.ToLower(f.Name)] = f
	}
	if tp := t.TimePartitioning; tp != nil {
		switch tp.Type {
		case "DAY", "HOUR", "MONTH", "YEAR":
		default:
			return fmt.Errorf("Invalid time partitioning type %q", tp.Type)
		}
		if tp.Field != "" {
			f, ok := top[strings.ToLower(tp.Field)]
			if !ok {
				return fmt.Errorf("The field specified for time partitioning can only be a top-level field: %s", tp.Field)
			}
			if typ := normType(f.Type); (typ != "TIMESTAMP" && typ != "DATE" && typ != "DATETIME") || f.Mode == "REPEATED" {
				return fmt.Errorf("Partitioning field %s has type %s; it must be DATE, DATETIME or TIMESTAMP", f.Name, f.Type)
			}
		}
	}
	if c := t.Clustering; c != nil {
		if len(c.Fields) > 4 {
			return fmt.Errorf("Too many clustering fields: %d, only 4 are allowed", len(c.Fields))
		}
		for _, name := range c.Fields {
			f, ok := top[strings.ToLower(name)]
			if !ok {
				return fmt.Errorf("The field specified for clustering cannot be found in the schema: %s", name)
			}
			switch normType(f.Type) {
			case "STRING", "INTEGER", "NUMERIC", "BIGNUMERIC", "BOOLEAN", "TIMESTAMP", "DATE", "DATETIME", "GEOGRAPHY":
			default:
				return fmt.Errorf("Field %s of type %s is not supported for clustering", f.Name, f.Type)
			}
			if f.Mode == "REPEATED" {
				return fmt.Errorf("Clustering on repeated field %s is not supported", f.Name)
			}
		}
	}
	return nil
}

// checkEvolution allows what tables.patch allows: new NULLABLE or REPEATED columns (also in
// records) and relaxing REQUIRED to NULLABLE. Columns cannot be dropped or change type.
func checkEvolution(old, new []*bq.TableFieldSchema, path string) error {
	byName := map[string]*bq.TableFieldSchema{}
	for _, f := range new {
		byName[strings.ToLower(f.Name)] = f
	}
	for _, o := range old {
		name := o.Name
		if path != "" {
			name = path + "." + o.Name
		}
		n, ok := byName[strings.ToLower(o.Name)]
		if !ok {
			return fmt.Errorf("Field %s is missing in new schema", name)
		}
		if normType(o.Type) != normType(n.Type) {
			return fmt.Errorf("Field %s has changed type from %s to %s", name, o.Type, n.Type)
		}
		om, nm := mode(o.Mode), mode(n.Mode)
		if om != nm && !(om == "REQUIRED" && nm == "NULLABLE") {
			return fmt.Errorf("Field %s has changed mode from %s to %s", name, om, nm)
		}
		if normType(o.Type) == "RECORD" {
			if err := checkEvolution(o.Fields, n.Fields, name); err != nil {
				return err
			}
		}
		delete(byName, strings.ToLower(o.Name))
	}
	for _, n := range byName {
		if mode(n.Mode) == "REQUIRED" {
			return fmt.Errorf("Cannot add required field %s to an existing schema", n.Name)
		}
	}
	return nil
}

func mode(m string) string {
	if m == "" {
		return "NULLABLE"
	}
	return strings.ToUpper(m)
}
