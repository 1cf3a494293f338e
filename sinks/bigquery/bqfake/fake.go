// Package bqfake is an in-process fake of the parts of BigQuery the bigquery sink uses, for
// tests that drive it through the real client libraries:
//
//   - the REST API over httptest: datasets get and insert; tables get, insert and patch (with
//     ETag preconditions); and queries of one shape, the sink's high-water-mark query
//     "SELECT g, MAX(m) FROM `p.d.t` WHERE c = @param GROUP BY g";
//   - the Storage Write API (google.cloud.bigquery.storage.v1.BigQueryWrite) over a loopback
//     gRPC server: CreateWriteStream (COMMITTED and PENDING), AppendRows with offsets,
//     GetWriteStream, FinalizeWriteStream and BatchCommitWriteStreams.
//
// Appended rows are checked the way BigQuery checks them: the writer schema (from the
// ProtoSchema of the connection's first request) must map onto the table's columns with
// compatible types and include every REQUIRED column; each row must parse, carry its
// REQUIRED fields, and hold valid values (UTF-8 strings, TIMESTAMPs in range, JSON,
// INTERVAL literals); a request may not exceed 10MB. Faults can be injected: latency,
// failed appends (UNAVAILABLE, RESOURCE_EXHAUSTED, ...), a response lost after the write took
// effect, row errors, denied permissions, and a server that stops answering (StartHang).
//
// Point a client at it with option.WithEndpoint(s.RESTEndpoint()) and
// option.WithoutAuthentication() (REST), and a plaintext gRPC connection to s.GRPCAddr()
// passed with option.WithGRPCConn (Storage Write API).
package bqfake

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	bq "google.golang.org/api/bigquery/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// RequestLimit is the largest AppendRows request the fake accepts, as BigQuery.
const RequestLimit = 10_000_000

// Row is a landed row: column name -> value. Values are int64 (INTEGER), float64 (FLOAT),
// bool (BOOLEAN), string (STRING, JSON, INTERVAL, NUMERIC, BIGNUMERIC, and other types
// written as strings), []byte (BYTES), time.Time (TIMESTAMP, UTC), Row (RECORD) and []any
// (REPEATED). A NULL column is absent.
type Row map[string]any

// Fault is an injected failure of one AppendRows request.
type Fault struct {
	// Code is the status the request fails with, e.g. codes.Unavailable.
	Code codes.Code
	// Message is the status message; a default is used when empty. The client library
	// retries RESOURCE_EXHAUSTED only when the message starts with
	// "Exceeds 'AppendRows throughput' quota".
	Message string
	// AfterWrite applies the append first: the rows land but the response is lost (the
	// connection fails with Code instead).
	AfterWrite bool
	// InBand returns the status inside the AppendRowsResponse (the connection stays up)
	// instead of failing the connection.
	InBand bool
}

// Server is the fake. It is goroutine-safe.
type Server struct {
	// Location is reported for datasets, tables and write streams.
	Location string

	http *httptest.Server
	grpc *grpc.Server
	lis  net.Listener

	mu       sync.Mutex
	datasets map[string]*bq.Dataset // "project:dataset"
	tables   map[string]*table      // "project:dataset.table"
	streams  map[string]*stream     // full stream name
	jobs     map[string]*bq.QueryResponse
	denied   map[string]bool // permissions
	faults   []Fault
	outage   *Fault // fails every AppendRows request once faults is empty; nil: none
	latency  time.Duration
	hang     chan struct{} // closed by EndHang; nil: not hanging
	rejectFn func(table string, row Row) string
	seq      int

	appends  atomic.Int64 // AppendRows requests received
	faulted  atomic.Int64 // AppendRows requests an injected fault failed
	inFlight atomic.Int64 // AppendRows requests received and not yet answered
	// heldAppends is the number of AppendRows requests StartHang holds right now.
	heldAppends atomic.Int64
	queries     atomic.Int64
}

type table struct {
	meta    *bq.Table
	etag    int
	rows    []stored // visible rows, in append order
	def     *stream  // the _default stream
	version int      // bumped on every schema change

	validators        map[protoreflect.MessageDescriptor]validated
	validatorsVersion int
}

type stream struct {
	name      string
	table     string // tables key
	typ       storagepb.WriteStream_Type
	created   time.Time
	rows      []stored // PENDING: rows waiting for commit; others: nil
	count     int64    // rows appended
	finalized bool
	committed bool
}

// stored is one appended row with the writer schema it was written with.
type stored struct {
	data   []byte
	desc   protoreflect.MessageDescriptor
	stream string
	offset int64
}

// New starts the fake's REST and gRPC servers on loopback ports. Close stops them.
func New() (*Server, error) {
	s := &Server{
		Location: "US",
		datasets: map[string]*bq.Dataset{},
		tables:   map[string]*table{},
		streams:  map[string]*stream{},
		jobs:     map[string]*bq.QueryResponse{},
		denied:   map[string]bool{},
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for grpc: %w", err)
	}
	s.lis = lis
	s.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	storagepb.RegisterBigQueryWriteServer(s.grpc, &writeServer{s: s})
	go s.grpc.Serve(lis) //nolint:errcheck // Serve returns when Close stops it
	s.http = httptest.NewServer(s.holding(s.restHandler()))
	return s, nil
}

// Close stops the servers. It ends a hang first.
func (s *Server) Close() {
	s.EndHang()
	s.http.Close()
	s.grpc.Stop()
}

// RESTEndpoint is the base URL of the REST API (for option.WithEndpoint). Paths are served
// with and without the /bigquery/v2 prefix.
func (s *Server) RESTEndpoint() string { return s.http.URL }

// GRPCAddr is the host:port of the Storage Write API (plaintext).
func (s *Server) GRPCAddr() string { return s.lis.Addr().String() }

// Deny makes every call that needs permission (e.g. "bigquery.tables.get",
// "bigquery.tables.create", "bigquery.tables.update", "bigquery.tables.updateData",
// "bigquery.datasets.get", "bigquery.jobs.create") fail with access denied.
func (s *Server) Deny(permission string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[permission] = true
}

// Allow undoes Deny.
func (s *Server) Allow(permission string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.denied, permission)
}

// SetLatency delays every AppendRows request by d before it is processed.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// FailAppends makes the next n AppendRows requests (on any stream) fail with f.
func (s *Server) FailAppends(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, f)
	}
}

// StartOutage makes every AppendRows request (on any stream) fail with f until EndOutage,
// once the faults queued by FailAppends are used up. It is for outages of a duration under
// load, where the number of requests is not known; FailAppends is for a known number. Other
// RPCs (CreateWriteStream, GetWriteStream, FinalizeWriteStream, the REST API) keep working.
func (s *Server) StartOutage(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage = &f
}

// EndOutage ends an outage begun with StartOutage; requests received afterwards succeed.
func (s *Server) EndOutage() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage = nil
}

// StartHang makes the fake stop answering, as a server that accepts connections but no longer
// responds: every request received from now on — each AppendRows request (the connection
// and stream stay open), every other Storage Write API call, and every REST call — is held
// unanswered until EndHang. A held request whose caller gives up first (cancels, times out
// or closes the connection) is dropped without effect; the others are processed normally
// once the hang ends, so an append the client stopped waiting for may still land then, as
// it can with BigQuery.
func (s *Server) StartHang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang == nil {
		s.hang = make(chan struct{})
	}
}

// EndHang ends a hang begun with StartHang: held requests are processed, new ones answered.
func (s *Server) EndHang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang != nil {
		close(s.hang)
		s.hang = nil
	}
}

// HeldAppends is the number of AppendRows requests a hang holds right now.
func (s *Server) HeldAppends() int64 { return s.heldAppends.Load() }

// hold waits while the fake hangs, counting the wait in held when it is not nil. It returns
// ctx's error when the caller gave up first.
func (s *Server) hold(ctx context.Context, held *atomic.Int64) error {
	s.mu.Lock()
	hang := s.hang
	s.mu.Unlock()
	if hang == nil {
		return nil
	}
	if held != nil {
		held.Add(1)
		defer held.Add(-1)
	}
	select {
	case <-hang:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// holding wraps the REST handler with hold.
func (s *Server) holding(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.hold(r.Context(), nil) != nil {
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Faulted is the number of AppendRows requests that an injected fault (FailAppends or
// StartOutage) failed or whose response it dropped.
func (s *Server) Faulted() int64 { return s.faulted.Load() }

// PendingFaults is the number of injected append faults not yet used.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.faults)
}

// RejectRows installs fn, called for every appended row (decoded) of every table: a non-empty
// result rejects the row with that message (a row error), failing its whole request as
// BigQuery does. nil removes it.
func (s *Server) RejectRows(fn func(table string, row Row) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectFn = fn
}

// Appends is the number of AppendRows requests received.
func (s *Server) Appends() int64 { return s.appends.Load() }

// InFlight is the number of AppendRows requests received and not yet answered (or failed).
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// Queries is the number of queries run.
func (s *Server) Queries() int64 { return s.queries.Load() }

// Table returns a copy of a table's metadata, or nil.
func (s *Server) Table(project, dataset, tableID string) *bq.Table {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tables[tableKey(project, dataset, tableID)]
	if !ok {
		return nil
	}
	cp := *t.meta
	return &cp
}

// Rows returns the visible rows of a table, in the order they landed.
func (s *Server) Rows(project, dataset, tableID string) ([]Row, error) {
	s.mu.Lock()
	t, ok := s.tables[tableKey(project, dataset, tableID)]
	if !ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("bqfake: no table %s:%s.%s", project, dataset, tableID)
	}
	rows := append([]stored(nil), t.rows...)
	schema := t.meta.Schema
	s.mu.Unlock()
	out := make([]Row, 0, len(rows))
	for _, r := range rows {
		row, err := decodeRow(r.desc, r.data, schema.Fields)
		if err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, nil
}

// RowCount is the number of visible rows of a table (cheaper than Rows).
func (s *Server) RowCount(project, dataset, tableID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tables[tableKey(project, dataset, tableID)]; ok {
		return len(t.rows)
	}
	return 0
}

// Streams returns the names of a table's application-created write streams, sorted.
func (s *Server) Streams(project, dataset, tableID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := tableKey(project, dataset, tableID)
	var out []string
	for name, st := range s.streams {
		if st.table == key {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// StreamFinalized reports whether a write stream was finalized.
func (s *Server) StreamFinalized(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[name]
	return ok && st.finalized
}

func tableKey(project, dataset, tableID string) string {
	return project + ":" + dataset + "." + tableID
}

// tableFromParent parses projects/{p}/datasets/{d}/tables/{t}[/streams/{s}].
func tableFromParent(name string) (key, streamID string, ok bool) {
	parts := strings.Split(name, "/")
	if len(parts) < 6 || parts[0] != "projects" || parts[2] != "datasets" || parts[4] != "tables" {
		return "", "", false
	}
	key = tableKey(parts[1], parts[3], parts[5])
	switch {
	case len(parts) == 6:
		return key, "", true
	case len(parts) == 8 && parts[6] == "streams":
		return key, parts[7], true
	}
	return "", "", false
}

// popFault takes the next injected fault, if any: a queued one, else the outage's. Callers
// hold s.mu.
func (s *Server) popFault() (Fault, bool) {
	if len(s.faults) == 0 {
		if s.outage != nil {
			return *s.outage, true
		}
		return Fault{}, false
	}
	f := s.faults[0]
	s.faults = s.faults[1:]
	return f, true
}
