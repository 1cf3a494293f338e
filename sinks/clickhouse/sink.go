// Package clickhouse is the ClickHouse sink: it lands events in one MergeTree table over the
// native protocol (clickhouse-go v2), one INSERT per batch that names its columns.
//
// The table is derived from the contract (see docs/sinks.md for the type mapping): Open
// creates it when create_table is set, adds columns for fields the contract gained, and
// refuses to start when the table and the contract disagree in a way it will not fix on its
// own. Column types follow the server version detected on connect, on one code path.
//
// Every row carries _topic, _partition and _offset; Assigned and Write use them so that each
// source record lands once across crashes, rebalances and retried inserts (see dedup.go).
package clickhouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
	sinktable "github.com/switchyard-dev/switchyard/sinks/table"
)

// Sink writes records to one ClickHouse table. Create it with New; the engine calls Open (or
// Plan), then Assigned, Write, Revoked and finally Close. All methods are goroutine-safe.
type Sink struct {
	cfg    Config
	opts   *ch.Options
	schema protoreflect.MessageDescriptor
	log    *slog.Logger
	table  string // table name
	fqtn   string // `database`.`table`

	mu    sync.Mutex // guards conn and feats
	conn  driver.Conn
	feats features

	w     atomic.Pointer[writer] // set by Open
	dedup dedup

	warnedDescriptor atomic.Bool
}

var (
	_ sinks.Sink               = (*Sink)(nil)
	_ sinks.Opener             = (*Sink)(nil)
	_ sinks.Planner            = (*Sink)(nil)
	_ sinks.AssignmentListener = (*Sink)(nil)
)

// New returns a sink for cfg that writes records of deps.Schema. It does not connect; Open
// and Plan do.
func New(cfg *Config, deps sinks.Deps) (*Sink, error) {
	if cfg == nil {
		return nil, errors.New("clickhouse: no configuration")
	}
	if deps.Schema == nil {
		return nil, errors.New("clickhouse: no schema")
	}
	c := withDefaults(*cfg)
	opts, err := options(c)
	if err != nil {
		return nil, err
	}
	table := c.Table
	if table == "" {
		table = sinktable.Name(deps.Schema.FullName())
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fqtn := quoteIdent(c.Database) + "." + quoteIdent(table)
	return &Sink{
		cfg:    c,
		opts:   opts,
		schema: deps.Schema,
		table:  table,
		fqtn:   fqtn,
		log:    log.With("sink_type", "clickhouse", "database", c.Database, "table", table),
	}, nil
}

// Table returns the `database`.`table` the sink writes to.
func (s *Sink) Table() string { return s.fqtn }

// connect opens the connection pool once and detects the server version.
func (s *Sink) connect(ctx context.Context) (driver.Conn, features, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		return s.conn, s.feats, nil
	}
	conn, err := ch.Open(s.opts)
	if err != nil {
		return nil, features{}, fmt.Errorf("connect to clickhouse %s: %w", strings.Join(s.cfg.Addresses, ","), err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, features{}, fmt.Errorf("connect to clickhouse %s: %w", strings.Join(s.cfg.Addresses, ","), err)
	}
	sv, err := conn.ServerVersion()
	if err != nil {
		conn.Close()
		return nil, features{}, fmt.Errorf("read clickhouse server version: %w", err)
	}
	s.conn = conn
	s.feats = featuresOf(version{sv.Version.Major, sv.Version.Minor, sv.Version.Patch})
	s.log.Info("connected to clickhouse", "server_version", s.feats.version.String(), "revision", sv.Revision)
	return conn, s.feats, nil
}

// checkServer reports configuration the server cannot honour.
func (s *Sink) checkServer(f features) error {
	if s.cfg.AsyncInsert && !f.asyncInsert {
		return sinks.Permanent(fmt.Errorf("clickhouse %s has no async_insert (needs %s or later); unset async_insert", f.version, minAsyncInsert))
	}
	return nil
}

// Plan connects, compares the contract with the table and returns the DDL that Open would run
// (none when the table fits), without running it. It returns an error wrapped with
// sinks.Permanent, holding a *MismatchError, when Open would refuse to start.
func (s *Sink) Plan(ctx context.Context) ([]string, error) {
	conn, f, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.checkServer(f); err != nil {
		return nil, err
	}
	tbl, err := s.readTable(ctx, conn)
	if err != nil {
		return nil, err
	}
	stmts, _, warnings, err := s.reconcile(f, tbl)
	for _, w := range warnings {
		s.log.Warn("table differs from the contract", "detail", w)
	}
	if err != nil {
		return nil, sinks.Permanent(err)
	}
	return stmts, nil
}

// Open connects, detects the server version, creates the table (create_table) or adds the
// columns the contract gained (add_columns), and prepares the INSERT. It blocks until done.
// An error wrapped with sinks.Permanent (holding a *MismatchError for schema problems) means
// the sink cannot start until the configuration, contract or table changes; other errors
// (server unreachable) may pass on a later attempt.
func (s *Sink) Open(ctx context.Context) error {
	conn, f, err := s.connect(ctx)
	if err != nil {
		return err
	}
	if err := s.checkServer(f); err != nil {
		return err
	}
	bound, err := s.migrate(ctx, conn, f)
	if err != nil {
		return err
	}
	w := newWriter(s.fqtn, bound, f)
	s.w.Store(w)
	s.log.Info("clickhouse sink open", "server_version", f.version.String(), "columns", len(bound))
	return nil
}

// migrate runs the planned DDL and returns the bound columns of the table it leaves behind.
func (s *Sink) migrate(ctx context.Context, conn driver.Conn, f features) ([]boundColumn, error) {
	var execErr error
	for attempt := 0; ; attempt++ {
		tbl, err := s.readTable(ctx, conn)
		if err != nil {
			return nil, err
		}
		stmts, bound, warnings, err := s.reconcile(f, tbl)
		if err != nil {
			return nil, sinks.Permanent(err)
		}
		if len(stmts) == 0 {
			for _, w := range warnings {
				s.log.Warn("table differs from the contract", "detail", w)
			}
			return bound, nil
		}
		if attempt == 2 {
			if execErr != nil {
				return nil, fmt.Errorf("change the schema of %s: %w", s.fqtn, execErr)
			}
			return nil, fmt.Errorf("table %s still differs from the contract after changing its schema", s.fqtn)
		}
		for _, stmt := range stmts {
			if execErr = conn.Exec(ctx, stmt); execErr != nil {
				// Another instance may have run the same DDL at the same time (no IF NOT
				// EXISTS on old servers); the next round re-reads the table and decides.
				s.log.Warn("schema change failed; re-reading the table", "err", execErr)
				break
			}
			s.log.Info("changed table schema", "statement", oneLine(stmt))
		}
	}
}

// Close closes the connections. It does not wait for Writes: the engine calls it after the
// last Write returned.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// writer is the prepared INSERT of an open sink; its builders are pooled.
type writer struct {
	cols   []boundColumn
	insert string
	token  bool      // send insert_deduplication_token
	pool   sync.Pool // *builder
}

func newWriter(fqtn string, cols []boundColumn, f features) *writer {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = quoteIdent(c.lc.name)
	}
	w := &writer{cols: cols, insert: "INSERT INTO " + fqtn + " (" + strings.Join(names, ", ") + ")", token: f.dedupToken}
	w.pool.New = func() any {
		b := &builder{w: w, cols: make([]column, len(cols)), hash: sha256.New()}
		for i, c := range cols {
			b.cols[i] = c.spec.newColumn()
		}
		return b
	}
	return w
}

// builder converts one batch.
type builder struct {
	w    *writer
	cols []column
	rows int
	skip []bool
	rp   []*batchPart
	hash hash.Hash
	num  []byte
	row  row // the row being converted; a field so that it does not escape per record
}

func (b *builder) reset(n int) {
	for _, c := range b.cols {
		c.reset()
	}
	b.rows = 0
	b.skip = slices.Grow(b.skip[:0], n)[:n]
	clear(b.skip)
	clear(b.rp)
	b.rp = slices.Grow(b.rp[:0], n)[:n]
	b.hash.Reset()
}

// hashRecord adds the record's position to the batch's insert_deduplication_token.
func (b *builder) hashRecord(r *event.Record) {
	b.num = strconv.AppendInt(append(append(b.num[:0], r.Topic...), 0), int64(r.Partition), 10)
	b.num = strconv.AppendInt(append(b.num, 0), r.Offset, 10)
	b.hash.Write(append(b.num, '\n'))
}

// token is the insert_deduplication_token of the rows added so far: a retried batch (the same
// records) gets the same token, so the server drops it when the first attempt landed.
func (b *builder) token() string { return hex.EncodeToString(b.hash.Sum(nil)[:16]) }

// Write inserts the records in one INSERT and blocks until the server confirms it. Records
// already in the table (see dedup.go) are skipped and count as landed. A record whose value
// cannot be written (out of range for its column, an invalid Timestamp, a message of another
// type) fails alone: Write returns a *sinks.BatchError with Landed true after inserting the
// rest. Errors wrapped with sinks.Permanent mean the table no longer fits the contract; any
// other error (server down, timeout) is transient and the whole batch may be retried.
func (s *Sink) Write(ctx context.Context, records []*event.Record) error {
	if len(records) == 0 {
		return nil
	}
	w := s.w.Load()
	if w == nil {
		return errors.New("clickhouse: write before open")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b := w.pool.Get().(*builder)
	defer w.pool.Put(b)
	b.reset(len(records))

	parts, err := s.landed(ctx, records, b.skip, b.rp)
	if err != nil {
		return err
	}
	var failed map[int]error
	now := time.Now().UTC()
	for i, r := range records {
		if b.skip[i] {
			continue
		}
		if err := b.add(s, r, now); err != nil {
			if failed == nil {
				failed = map[int]error{}
			}
			failed[i] = err
			continue
		}
		p := b.rp[i]
		p.written = max(p.written, r.Offset)
		if w.token {
			b.hashRecord(r)
		}
	}
	if b.rows > 0 {
		err := s.insert(ctx, b)
		s.attempted(parts)
		if err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return &sinks.BatchError{Failed: failed, Landed: true}
	}
	return nil
}

// add converts one record into a row of every column, or into none.
func (b *builder) add(s *Sink, r *event.Record, now time.Time) (err error) {
	n := b.rows
	col := -1
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("convert record: %v", p)
		}
		if err != nil {
			for _, c := range b.cols {
				if c.len() > n {
					c.truncate(n)
				}
			}
			if col >= 0 {
				bc := b.w.cols[col]
				err = fmt.Errorf("column %s %s for %s: %w", bc.lc.name, bc.typ, bc.lc.source, err)
			}
		}
	}()
	msg, err := s.message(r)
	if err != nil {
		return err
	}
	b.row = row{rec: r, msg: msg, now: now}
	defer func() { b.row = row{} }()
	for i, c := range b.cols {
		col = i
		if err := c.add(&b.row); err != nil {
			return err
		}
	}
	b.rows++
	return nil
}

// message returns the record's message as one of the sink's schema. A message built from
// another descriptor of the same type is converted through its wire form.
func (s *Sink) message(r *event.Record) (protoreflect.Message, error) {
	m := r.Message
	if m == nil {
		return nil, errors.New("record has no decoded message")
	}
	md := m.Descriptor()
	if md == s.schema {
		return m, nil
	}
	if md.FullName() != s.schema.FullName() {
		return nil, fmt.Errorf("record holds %s, but the sink writes %s", md.FullName(), s.schema.FullName())
	}
	if !s.warnedDescriptor.Swap(true) {
		s.log.Warn("records use another descriptor of the sink's contract; converting them (slower)", "contract", md.FullName())
	}
	b, err := proto.Marshal(m.Interface())
	if err != nil {
		return nil, fmt.Errorf("convert record to the sink schema: %w", err)
	}
	out := dynamicpb.NewMessage(s.schema)
	if err := proto.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("convert record to the sink schema: %w", err)
	}
	return out, nil
}

// insert sends the builder's rows in one INSERT.
// insertBlockRows is the most rows sent in one native-protocol data block. The driver makes
// new columns for each INSERT and grows them by appending, so a batch of 5,000 rows
// allocated several times its size; blocks of 256 rows reuse one block's buffers.
// `go test ./sinks/clickhouse -bench Write` (5,000-row batches): 3.3-3.4 client CPU-µs and
// 10 MB allocated per batch in one block; 2.4 µs and 0.8 MB in blocks of 256 (1024: 2.6 µs,
// 2.2 MB); the server's CPU per row is the same, as it squashes the blocks back into one.
const insertBlockRows = 256

func (s *Sink) insert(ctx context.Context, b *builder) error {
	// The deadline covers connecting too: a server that accepts connections but stopped
	// answering must not hold the write forever.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.InsertTimeout)
	defer cancel()
	conn, f, err := s.connect(ctx)
	if err != nil {
		return err
	}
	settings := ch.Settings{}
	if b.w.token && (!s.cfg.AsyncInsert || f.asyncDedup) {
		settings["insert_deduplication_token"] = b.token()
	}
	if s.cfg.AsyncInsert {
		settings["async_insert"] = 1
		settings["wait_for_async_insert"] = 1
		if f.asyncDedup {
			settings["async_insert_deduplicate"] = 1
		}
	}
	if len(settings) > 0 {
		ctx = ch.Context(ctx, ch.WithSettings(settings))
	}
	batch, err := conn.PrepareBatch(ctx, b.w.insert)
	if err != nil {
		return s.classify(fmt.Errorf("insert %d rows into %s: %w", b.rows, s.fqtn, err))
	}
	// The rows go to the server in blocks of insertBlockRows within the one INSERT: the
	// driver's column buffers are reset, not reallocated, between blocks, so a batch of any
	// size allocates and holds one block's worth.
	for lo := 0; lo < b.rows; lo += insertBlockRows {
		hi := min(lo+insertBlockRows, b.rows)
		for i, c := range b.cols {
			if err := c.flush(batch.Column(i), lo, hi); err != nil {
				_ = batch.Abort()
				// The columns were checked at Open; the driver refusing values is a bug or a
				// table changed behind the sink's back. Retrying cannot help.
				return sinks.Permanent(fmt.Errorf("insert into %s: column %s %s: %w", s.fqtn, b.w.cols[i].lc.name, b.w.cols[i].typ, err))
			}
		}
		if hi == b.rows {
			break
		}
		if err := batch.Flush(); err != nil {
			_ = batch.Abort()
			return s.classify(fmt.Errorf("insert %d rows into %s: %w", b.rows, s.fqtn, err))
		}
	}
	if err := batch.Send(); err != nil {
		return s.classify(fmt.Errorf("insert %d rows into %s: %w", b.rows, s.fqtn, err))
	}
	return nil
}

// schemaErrors are server error codes meaning the table no longer fits the INSERT.
var schemaErrors = map[int32]bool{
	8:  true, // THERE_IS_NO_COLUMN
	10: true, // NOT_FOUND_COLUMN_IN_BLOCK
	16: true, // NO_SUCH_COLUMN_IN_TABLE
	44: true, // ILLEGAL_COLUMN
	47: true, // UNKNOWN_IDENTIFIER
	53: true, // TYPE_MISMATCH
	60: true, // UNKNOWN_TABLE
	70: true, // CANNOT_CONVERT_TYPE
	81: true, // UNKNOWN_DATABASE
}

// classify marks errors that retrying cannot fix; the rest are transient.
func (s *Sink) classify(err error) error {
	var ex *ch.Exception
	if errors.As(err, &ex) && schemaErrors[ex.Code] {
		return sinks.Permanent(fmt.Errorf("%w (the table changed after the sink started; restart it to re-check the schema)", err))
	}
	var conv *chcol.ColumnConverterError
	if errors.As(err, &conv) {
		return sinks.Permanent(err)
	}
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
