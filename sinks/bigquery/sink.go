package bigquery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"cloud.google.com/go/bigquery/storage/managedwriter"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
)

// Sink appends records to one BigQuery table. It is goroutine-safe. It implements
// sinks.Opener, sinks.Planner and sinks.AssignmentListener.
type Sink struct {
	set  *settings
	opt  Options
	deps sinks.Deps
	log  *slog.Logger
	lay  *layout
	now  func() time.Time

	// layouts caches the layout of descriptors other than deps.Schema that describe the
	// same message (protoreflect.MessageDescriptor -> *layout).
	layouts sync.Map

	// life is the context of background work (write connections); Close cancels it.
	life   context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // guards the fields below while connecting and opening
	bq     *bigquery.Client
	mw     *managedwriter.Client
	conn   *grpc.ClientConn // dialled by the sink (insecure mode)
	def    *managedwriter.ManagedStream
	opened bool

	eo      *exactly     // exactly_once state; nil otherwise
	evolved atomic.Int64 // unix nanos of the last column addition by this sink
}

// New validates the configuration against the sink's schema. It does not connect; Open does.
func New(cfg Config, opt Options, deps sinks.Deps) (*Sink, error) {
	if deps.Schema == nil {
		return nil, errors.New("bigquery sink: no schema")
	}
	lay, err := compile(deps.Schema, cfg.EventTimeField)
	if err != nil {
		return nil, fmt.Errorf("bigquery sink: contract %s: %w", deps.Schema.FullName(), err)
	}
	set, err := check(cfg, lay)
	if err != nil {
		return nil, fmt.Errorf("bigquery sink: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Sink{set: set, opt: opt, deps: deps, lay: lay, now: time.Now,
		log: log.With("table", fmt.Sprintf("%s.%s.%s", cfg.Project, cfg.Dataset, set.table))}
	s.life, s.cancel = context.WithCancel(context.Background())
	if cfg.ExactlyOnce {
		s.eo = newExactly(s)
	}
	for _, f := range lay.skipped {
		s.log.Warn("contract field has no column", "field", f, "reason", "message without fields")
	}
	return s, nil
}

// WritesPayload implements sinks.PayloadWriter: records no transform changed are written
// from their payloads, transcoded field by field (wire.go), when the pipeline reads binary
// protobuf and the contract has no group or JSON field.
func (s *Sink) WritesPayload() bool {
	return s.lay.wire && (s.opt.Input == contract.Raw || s.opt.Input == contract.Confluent)
}

// ValidateConfig checks a bigquery sink's options against the schema it will write, without
// connecting. It returns one message per problem.
func ValidateConfig(cfg Config, schema protoreflect.MessageDescriptor) []string {
	lay, err := compile(schema, cfg.EventTimeField)
	if err != nil {
		return []string{fmt.Sprintf("contract %s: %v", schema.FullName(), err)}
	}
	if _, err := check(cfg, lay); err != nil {
		return []string{err.Error()}
	}
	return nil
}

// Table returns the table the sink writes, as project.dataset.table.
func (s *Sink) Table() string { return s.ref() }

func (s *Sink) ref() string {
	return fmt.Sprintf("%s.%s.%s", s.set.cfg.Project, s.set.cfg.Dataset, s.set.table)
}

func (s *Sink) parent() string {
	return managedwriter.TableParentFromParts(s.set.cfg.Project, s.set.cfg.Dataset, s.set.table)
}

// connect creates the clients. Callers hold s.mu.
func (s *Sink) connect(ctx context.Context) error {
	if s.bq != nil {
		return nil
	}
	cfg := s.set.cfg
	var common []option.ClientOption
	if cfg.CredentialsFile != "" {
		common = append(common, option.WithAuthCredentialsFile(option.ServiceAccount, cfg.CredentialsFile))
	}
	if cfg.Insecure {
		common = append(common, option.WithoutAuthentication())
	}
	rest := append([]option.ClientOption(nil), common...)
	if cfg.Endpoint != "" {
		rest = append(rest, option.WithEndpoint(cfg.Endpoint))
	}
	rest = append(rest, s.opt.REST...)
	bq, err := bigquery.NewClient(ctx, cfg.Project, rest...)
	if err != nil {
		return fmt.Errorf("create bigquery client: %w", err)
	}
	wr := append([]option.ClientOption(nil), common...)
	var conn *grpc.ClientConn
	switch {
	case cfg.Insecure && cfg.GRPCEndpoint != "":
		conn, err = grpc.NewClient(cfg.GRPCEndpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithStreamInterceptor(namedAppends))
		if err != nil {
			bq.Close()
			return fmt.Errorf("dial storage write api at %s: %w", cfg.GRPCEndpoint, err)
		}
		wr = append(wr, option.WithGRPCConn(conn))
	case cfg.GRPCEndpoint != "":
		wr = append(wr, option.WithEndpoint(cfg.GRPCEndpoint))
	}
	wr = append(wr, s.opt.GRPC...)
	// The write client retains its context for its connections: give it the sink's life.
	mw, err := managedwriter.NewClient(s.life, cfg.Project, wr...)
	if err != nil {
		bq.Close()
		if conn != nil {
			conn.Close()
		}
		return fmt.Errorf("create storage write client: %w", err)
	}
	s.bq, s.mw, s.conn = bq, mw, conn
	return nil
}

// Open connects, checks the dataset, creates or evolves the table (see Plan), and checks
// that the credentials may write to it. An error names the dataset, table and, when access
// was denied, the permission that is missing; the sink must not be used after one.
func (s *Sink) Open(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened {
		return nil
	}
	if err := s.connect(ctx); err != nil {
		return fmt.Errorf("bigquery sink: %w", err)
	}
	p, err := s.inspect(ctx)
	if err != nil {
		return fmt.Errorf("bigquery sink: %w", err)
	}
	if err := s.apply(ctx, p); err != nil {
		return fmt.Errorf("bigquery sink: %w", err)
	}
	// The write path: reading the table's default stream needs the same permission as
	// appending (bigquery.tables.updateData).
	if _, err := s.mw.GetWriteStream(ctx, &storagepb.GetWriteStreamRequest{Name: s.parent() + "/streams/_default"}); err != nil {
		return fmt.Errorf("bigquery sink: %w", s.writeAPIError("open a write stream to", err))
	}
	if s.eo == nil {
		if err := s.openDefault(ctx); err != nil {
			return fmt.Errorf("bigquery sink: %w", err)
		}
	}
	s.opened = true
	return nil
}

// openDefault opens the managed stream (and with it a connection) to the table's default
// stream. Callers hold s.mu.
func (s *Sink) openDefault(ctx context.Context) error {
	def, err := s.newManagedStream(ctx, "open the default stream of",
		managedwriter.WithDestinationTable(s.parent()),
		managedwriter.WithType(managedwriter.DefaultStream),
		managedwriter.WithSchemaDescriptor(s.lay.writer),
		managedwriter.WithMaxInflightRequests(s.set.appendsInFlight),
		managedwriter.EnableWriteRetries(true),
		managedwriter.WithDataOrigin("switchyard"))
	if err != nil {
		return err
	}
	s.def = def
	return nil
}

// newManagedStream opens a managed stream, waiting at most request_timeout (the client
// library looks the stream up first). The stream keeps the context it is opened with for its
// connection, the sink's life, so the wait is bounded here rather than by that context: when
// it ends first, the opening goes on in the background, and a stream it still opens is
// closed.
func (s *Sink) newManagedStream(ctx context.Context, what string, opts ...managedwriter.WriterOption) (*managedwriter.ManagedStream, error) {
	type opened struct {
		ms  *managedwriter.ManagedStream
		err error
	}
	ch := make(chan opened, 1)
	mw := s.mw
	go func() {
		ms, err := mw.NewManagedStream(s.life, opts...)
		ch <- opened{ms, err}
	}()
	abandon := func() {
		go func() {
			if o := <-ch; o.ms != nil {
				_ = o.ms.Close()
			}
		}()
	}
	timer := time.NewTimer(s.set.requestTimeout)
	defer timer.Stop()
	select {
	case o := <-ch:
		if o.err != nil {
			return nil, s.writeAPIError(what, o.err)
		}
		return o.ms, nil
	case <-timer.C:
		abandon()
		return nil, s.writeAPIError(what, &timeoutError{key: "request_timeout", d: s.set.requestTimeout, err: context.DeadlineExceeded})
	case <-ctx.Done():
		abandon()
		return nil, s.writeAPIError(what, ctx.Err())
	}
}

// defaultStream returns the managed default stream, opening a new one when a timed-out
// append made the sink drop the last.
func (s *Sink) defaultStream(ctx context.Context) (*managedwriter.ManagedStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.def == nil {
		if s.mw == nil {
			return nil, fmt.Errorf("append to %s: the sink is closed", s.ref())
		}
		if err := s.openDefault(ctx); err != nil {
			return nil, err
		}
	}
	return s.def, nil
}

// dropDefault closes def, the managed default stream, after one of its appends got no
// answer in time: closing it cancels its connection, so requests still unanswered on it are
// abandoned rather than left to block the appends of the next Write; the next Write opens a
// new one. A stream another Write already replaced is left alone.
func (s *Sink) dropDefault(def *managedwriter.ManagedStream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.def != def {
		return
	}
	_ = def.Close() // returns io.EOF once closed normally
	s.def = nil
	s.log.Warn("append got no answer in time; reconnecting the default stream",
		"append_timeout", s.set.appendTimeout.String())
}

// Plan returns what Open would change, as DDL: a CREATE TABLE, or one ALTER TABLE ... ADD
// COLUMN per column the contract gained (nested fields as tables.patch descriptions). It
// returns an error when Open would refuse to start. It does not change anything.
func (s *Sink) Plan(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.connect(ctx); err != nil {
		return nil, fmt.Errorf("bigquery sink: %w", err)
	}
	p, err := s.inspect(ctx)
	if err != nil {
		switch httpCode(err) {
		case http.StatusForbidden, http.StatusUnauthorized, http.StatusNotFound:
			// Reached BigQuery, which refused: the sink would not start either.
			err = sinks.Permanent(err)
		}
		return nil, fmt.Errorf("bigquery sink: %w", err)
	}
	return s.statements(p), nil
}

// Close finalizes the sink's own write streams and closes the clients. Write must not be
// called after Close.
func (s *Sink) Close(ctx context.Context) error {
	if s.eo != nil {
		s.eo.closeAll(ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.def != nil {
		if err := s.def.Close(); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
			errs = append(errs, fmt.Errorf("close default stream: %w", err))
		}
		s.def = nil
	}
	// End background work first: a stream lookup still waiting for a server that stopped
	// answering (see newManagedStream) holds the write client's lock, which Close takes.
	s.cancel()
	if s.mw != nil {
		s.mw.Close()
		s.mw = nil
	}
	if s.bq != nil {
		s.bq.Close()
		s.bq = nil
	}
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	s.cancel()
	return errors.Join(errs...)
}

// Assigned starts, for exactly_once, the partitions afresh from the table: it reads their
// highest landed offsets (one query per topic). A failure is logged and retried by the first
// Write of the partition. It always returns nil.
func (s *Sink) Assigned(ctx context.Context, partitions []event.TopicPartition) error {
	if s.eo != nil {
		s.eo.assigned(ctx, partitions)
	}
	return nil
}

// Revoked finalizes the partitions' write streams (exactly_once), so that no append still in
// flight can land after another owner has read the table's high-water mark.
func (s *Sink) Revoked(ctx context.Context, partitions []event.TopicPartition) {
	if s.eo != nil {
		s.eo.revoked(ctx, partitions)
	}
}

// Write appends records and blocks until they landed or failed; it is goroutine-safe. See
// sinks.Sink for what its errors mean. Rows the service rejects (row errors) and events that
// cannot be rows (a Timestamp out of range, say) are in BatchError.Failed, after the rest of
// the batch was appended again inside Write. UNAVAILABLE, RESOURCE_EXHAUSTED, INTERNAL,
// ABORTED and lost connections are retried by the client library a few times; what still
// failed is in BatchError.Retry when other records of the batch landed, and returned as the
// (transient) error when none did. Write blocks for a bounded time even when the service
// stops answering: each append waits at most append_timeout for its answer and every other
// call at most request_timeout; an expiry is such a transient error, naming the setting.
// With exactly_once, records already in the table count as landed and are not appended
// again.
func (s *Sink) Write(ctx context.Context, records []*event.Record) error {
	if len(records) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !s.isOpen() {
		if err := s.Open(ctx); err != nil {
			return err
		}
	}
	b := s.encode(records)
	if s.eo != nil {
		return s.eo.write(ctx, records, b)
	}
	err := s.writeDefault(ctx, b)
	if b.settled {
		b.recycle()
	}
	return err
}

func (s *Sink) isOpen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened
}

// batch is a Write's records serialized as rows, and what became of them.
type batch struct {
	buf     []byte   // the rows, back to back
	rows    [][]byte // rows[i] is the row of records[idx[i]]
	idx     []int
	records int
	failed  map[int]error // record index -> why it can never land
	retried map[int]error // record index -> why it did not land this time
	// settled is set once every append of the batch has its answer: the client then holds
	// none of buf, and recycle may hand it to the next Write.
	settled bool
}

// batches holds batches whose Write is over, for their buffers.
var batches sync.Pool

// recycle puts b back in batches. The maps go to whoever got them from result.
func (b *batch) recycle() {
	*b = batch{buf: b.buf[:0], rows: b.rows[:0], idx: b.idx[:0]}
	batches.Put(b)
}

func (b *batch) fail(i int, err error) {
	if b.failed == nil {
		b.failed = map[int]error{}
	}
	b.failed[i] = err
}

func (b *batch) retry(i int, err error) {
	if b.retried == nil {
		b.retried = map[int]error{}
	}
	b.retried[i] = err
}

// result is what Write returns for the batch: nil when every record landed; the transient
// error when none did; a *sinks.BatchError otherwise (every record in neither Failed nor
// Retry landed).
func (b *batch) result() error {
	if len(b.failed) == 0 && len(b.retried) == 0 {
		return nil
	}
	if len(b.failed) == 0 && len(b.retried) == b.records {
		for _, err := range b.retried {
			return err
		}
	}
	return &sinks.BatchError{Failed: b.failed, Retry: b.retried, Landed: true}
}

// encode serializes records into one buffer, in order.
func (s *Sink) encode(records []*event.Record) *batch {
	size := 0
	for _, r := range records {
		size += len(r.Value) + len(r.Topic) + 64
	}
	size += size / 4
	b, _ := batches.Get().(*batch)
	if b == nil {
		b = &batch{}
	}
	buf := slices.Grow(b.buf[:0], size)
	b.rows, b.idx, b.records = slices.Grow(b.rows[:0], len(records)), slices.Grow(b.idx[:0], len(records)), len(records)
	landed := s.now().UnixMicro()
	var t transcoder
	for i, r := range records {
		lay, err := s.layoutFor(r)
		if err != nil {
			b.fail(i, err)
			continue
		}
		start := len(buf)
		if r.Message == nil && !r.Transformed {
			buf, err = s.appendPayloadRow(&t, buf, r, landed)
		} else {
			buf, err = lay.appendRow(buf, r, landed)
		}
		if err != nil {
			b.fail(i, fmt.Errorf("convert event to a row of %s: %w", s.ref(), err))
			continue
		}
		if n := len(buf) - start; n > s.set.maxRequest-1024 {
			buf = buf[:start]
			b.fail(i, fmt.Errorf("%w: row of %d bytes exceeds max_request_bytes %d", sinks.ErrTooLarge, n, s.set.maxRequest))
			continue
		}
		b.rows = append(b.rows, buf[start:len(buf):len(buf)])
		b.idx = append(b.idx, i)
	}
	b.buf = buf
	return b
}

// appendPayloadRow appends the row of r, which carries no decoded message, from its payload.
func (s *Sink) appendPayloadRow(t *transcoder, buf []byte, r *event.Record, landed int64) ([]byte, error) {
	if !s.WritesPayload() {
		return buf, errors.New("record has no decoded message")
	}
	if r.Contract != "" && r.Contract != string(s.lay.contract.FullName()) {
		return buf, fmt.Errorf("record is a %s whose fields differ from the sink's schema %s", r.Contract, s.lay.contract.FullName())
	}
	body := r.Value
	if s.opt.Input == contract.Confluent {
		var err error
		if body, err = contract.ConfluentBody(r.Value); err != nil {
			return buf, err
		}
	}
	return s.lay.appendWireRow(t, buf, r, body, landed)
}

// layoutFor returns the layout for r's message descriptor: the sink's, or one compiled for
// another descriptor of the same message when its writer descriptor is identical.
func (s *Sink) layoutFor(r *event.Record) (*layout, error) {
	if r.Message == nil {
		return s.lay, nil // appendRow reports it
	}
	md := r.Message.Descriptor()
	if md == s.lay.contract {
		return s.lay, nil
	}
	if l, ok := s.layouts.Load(md); ok {
		if l == nil {
			return nil, fmt.Errorf("record is a %s whose fields differ from the sink's schema %s", md.FullName(), s.lay.contract.FullName())
		}
		return l.(*layout), nil
	}
	l, err := compile(md, s.set.cfg.EventTimeField)
	if err != nil || !proto.Equal(l.writer, s.lay.writer) {
		s.layouts.Store(md, (*layout)(nil))
		return nil, fmt.Errorf("record is a %s whose fields differ from the sink's schema %s", md.FullName(), s.lay.contract.FullName())
	}
	s.layouts.Store(md, l)
	return l, nil
}

// span is a run of rows that go in one append request.
type span struct{ lo, hi int }

// split cuts rows into requests of at most max bytes.
func split(rows [][]byte, max int) []span {
	var out []span
	lo, size := 0, 0
	for i, r := range rows {
		n := len(r) + 6 // tag and length
		if i > lo && size+n > max {
			out = append(out, span{lo, i})
			lo, size = i, 0
		}
		size += n
	}
	if lo < len(rows) {
		out = append(out, span{lo, len(rows)})
	}
	return out
}

// requestBudget is the room for rows in one request, leaving some for the writer schema and
// the stream name.
func (s *Sink) requestBudget() int {
	return s.set.maxRequest - proto.Size(s.lay.writer) - 1024
}

// writeDefault appends to the default stream (at-least-once). An append that got no answer
// within append_timeout is retried by the engine: it may still land (a duplicate), as any
// append whose answer was lost.
func (s *Sink) writeDefault(ctx context.Context, b *batch) error {
	rows, idx := b.rows, b.idx
	def, err := s.defaultStream(ctx)
	if err != nil {
		for _, i := range idx {
			b.retry(i, err)
		}
		return b.result()
	}
	var timeout error  // the first append that got no answer in time
	unsettled := false // an append was not sent whole, or got no answer: it may still read rows
	defer func() {
		if timeout != nil {
			s.dropDefault(def)
		}
	}()
	for round := 0; len(rows) > 0; round++ {
		if round == 3 || timeout != nil {
			err := timeout
			if err == nil {
				err = fmt.Errorf("append to %s: rows kept being rejected", s.ref())
			}
			for _, i := range idx {
				b.retry(i, err)
			}
			break
		}
		spans := split(rows, s.requestBudget())
		results := make([]*managedwriter.AppendResult, len(spans))
		actxs := make([]context.Context, len(spans))
		var sendErr error
		for i, sp := range spans {
			if sendErr != nil {
				break
			}
			actx, cancel := s.appendCtx(ctx)
			defer cancel()
			actxs[i] = actx
			res, err := def.AppendRows(actx, rows[sp.lo:sp.hi])
			if err != nil {
				unsettled = true
				sendErr = s.appendError(s.appendExpired(ctx, actx, err))
				if isTimeout(sendErr) && timeout == nil {
					timeout = sendErr
				}
				break
			}
			results[i] = res
		}
		var retryRows [][]byte
		var retryIdx []int
		for i, res := range results {
			sp := spans[i]
			if res == nil { // not sent
				for j := sp.lo; j < sp.hi; j++ {
					b.retry(idx[j], sendErr)
				}
				continue
			}
			_, err := res.GetResult(actxs[i])
			if err == nil {
				continue
			}
			if err = s.appendExpired(ctx, actxs[i], err); isTimeout(err) && timeout == nil {
				timeout = s.appendError(err)
			}
			if bad := rowErrors(res); len(bad) > 0 {
				// The request was rejected as a whole: the bad rows fail, the others go again.
				for j := sp.lo; j < sp.hi; j++ {
					if msg, ok := bad[int64(j-sp.lo)]; ok {
						b.fail(idx[j], fmt.Errorf("bigquery rejected the row: %s", msg))
						continue
					}
					retryRows = append(retryRows, rows[j])
					retryIdx = append(retryIdx, idx[j])
				}
				continue
			}
			err = s.appendError(err)
			for j := sp.lo; j < sp.hi; j++ {
				if sinks.IsPermanent(err) {
					b.fail(idx[j], err)
				} else {
					b.retry(idx[j], err)
				}
			}
		}
		rows, idx = retryRows, retryIdx
	}
	b.settled = !unsettled && timeout == nil
	return b.result()
}
