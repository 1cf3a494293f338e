package bigquery

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"cloud.google.com/go/bigquery/storage/managedwriter"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"

	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
	sinktable "github.com/switchyard-dev/switchyard/sinks/table"
)

// maxRuns bounds the runs of landed offsets kept per partition; older ones are forgotten
// (and read from the table again should their records come back).
const maxRuns = 20000

// exactly is the exactly_once write path (see docs/sinks.md, section BigQuery, "Exactly
// once").
//
// Every row carries its source coordinates (_topic, _partition, _offset), so the table itself
// records which events landed. Per source partition the sink keeps the set of offsets it
// knows are in the table, exact over a known region of offsets:
//   - when it takes a partition over, it reads the partition's highest _offset M: nothing
//     above M is in the table, so the region above M is known (and empty);
//   - records at or below M that come again (redelivered after a restart or rebalance) are
//     looked up in the table by offset range before anything is appended;
//   - its own appends go through one COMMITTED write stream per partition with explicit
//     stream offsets, so an append the client library sends again after a lost response
//     gets ALREADY_EXISTS (it landed); when an append's outcome stays unknown, the next
//     Write finalizes the stream, whose row count says which of the doubtful rows landed,
//     and continues on a new stream.
//
// Records already in the set count as landed and are not appended again. The order in which
// batches of a partition arrive does not matter.
type exactly struct {
	s     *Sink
	mu    sync.Mutex
	parts map[event.TopicPartition]*partState
}

// partState is one source partition's write state.
type partState struct {
	lock   chan struct{} // held by one Write (or assignment change) at a time
	known  bool          // the table's high-water mark was read
	exact  offsetSet     // offsets whose presence in the table is known
	landed offsetSet     // offsets known to be in the table (within exact)
	stream *managedwriter.ManagedStream
	next   int64      // next stream offset
	broken bool       // an append's outcome is unknown: settle it before appending again
	doubt  []doubtful // the appends whose outcome is unknown
}

// doubtful is an append of unknown outcome: its rows' stream and source offsets.
type doubtful struct {
	off int64   // stream offset of the first row
	src []int64 // source offset of each row
}

// item is one record's row on its way to a partition's stream.
type item struct {
	i   int // index in the Write's records
	off int64
	row []byte
}

func newExactly(s *Sink) *exactly {
	return &exactly{s: s, parts: map[event.TopicPartition]*partState{}}
}

func (e *exactly) part(tp event.TopicPartition) *partState {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.parts[tp]
	if !ok {
		p = &partState{lock: make(chan struct{}, 1)}
		e.parts[tp] = p
	}
	return p
}

func (p *partState) acquire(ctx context.Context) error {
	select {
	case p.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *partState) release() { <-p.lock }

// reset forgets everything about the partition but its lock.
func (p *partState) reset() {
	p.known, p.exact, p.landed, p.broken, p.doubt = false, offsetSet{}, offsetSet{}, false, nil
}

// setMark records the table's high-water mark: nothing above it is in the table.
func (p *partState) setMark(mark int64) {
	p.exact.addRange(mark+1, maxOffset)
	p.known = true
}

// write appends b's rows, partition by partition (partitions concurrently).
func (e *exactly) write(ctx context.Context, records []*event.Record, b *batch) error {
	groups := map[event.TopicPartition][]item{}
	var order []event.TopicPartition
	for k, ri := range b.idx {
		r := records[ri]
		tp := event.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		if _, ok := groups[tp]; !ok {
			order = append(order, tp)
		}
		groups[tp] = append(groups[tp], item{i: ri, off: r.Offset, row: b.rows[k]})
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	run := func(tp event.TopicPartition) {
		failed, unlanded, err := e.writePartition(ctx, tp, groups[tp])
		mu.Lock()
		defer mu.Unlock()
		for i, ferr := range failed {
			b.fail(i, ferr)
		}
		for _, i := range unlanded {
			b.retry(i, err)
		}
	}
	if len(order) == 1 {
		run(order[0])
	} else {
		for _, tp := range order {
			wg.Go(func() { run(tp) })
		}
		wg.Wait()
	}
	return b.result()
}

// writePartition appends one partition's items. It returns the records that can never land,
// and, with the transient error that kept them out, the records that did not land.
func (e *exactly) writePartition(ctx context.Context, tp event.TopicPartition, items []item) (failed map[int]error, unlanded []int, err error) {
	p := e.part(tp)
	if err := p.acquire(ctx); err != nil {
		for _, it := range items {
			unlanded = append(unlanded, it.i)
		}
		return nil, unlanded, err
	}
	defer p.release()
	defer func() { // under the lock: p.landed is current
		if err == nil {
			return
		}
		for _, it := range items {
			if _, bad := failed[it.i]; !bad && !p.landed.contains(it.off) {
				unlanded = append(unlanded, it.i)
			}
		}
	}()
	failed, err = e.appendPartition(ctx, tp, p, items)
	return failed, nil, err
}

// appendPartition appends one partition's items; the caller holds the partition's lock.
func (e *exactly) appendPartition(ctx context.Context, tp event.TopicPartition, p *partState, items []item) (map[int]error, error) {
	s := e.s
	where := fmt.Sprintf("%s/%d", tp.Topic, tp.Partition)
	if !p.known {
		hw, err := s.highWater(ctx, tp.Topic)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		p.setMark(markOf(hw, tp.Partition))
	}
	if p.broken {
		if err := e.resolve(ctx, tp, p); err != nil {
			return nil, fmt.Errorf("%s: settle an append of unknown outcome: %w", where, err)
		}
	}
	// Offsets whose presence is not known (at or below the high-water mark, or forgotten):
	// read them from the table.
	lo, hi := int64(maxOffset), int64(-1)
	for _, it := range items {
		if !p.exact.contains(it.off) {
			lo, hi = min(lo, it.off), max(hi, it.off)
		}
	}
	if hi >= 0 {
		found, err := s.landedOffsets(ctx, tp, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		for _, off := range found {
			p.landed.add(off)
		}
		p.exact.addRange(lo, hi)
	}
	todo := make([]item, 0, len(items))
	var seen map[int64]bool // duplicates within the batch, when offsets are not increasing
	last := int64(-2)
	for _, it := range items {
		if p.landed.contains(it.off) {
			continue
		}
		if it.off <= last {
			if seen == nil {
				seen = map[int64]bool{}
				for _, t := range todo {
					seen[t.off] = true
				}
			}
			if seen[it.off] {
				continue
			}
		}
		if seen != nil {
			seen[it.off] = true
		}
		last = max(last, it.off)
		todo = append(todo, it)
	}
	var failed map[int]error
	fail := func(i int, err error) {
		if failed == nil {
			failed = map[int]error{}
		}
		failed[i] = err
	}
	defer e.trim(p)
	for round := 0; len(todo) > 0; round++ {
		if round == 3 {
			return failed, fmt.Errorf("%s: append to %s: rows kept being rejected", where, s.ref())
		}
		if p.stream == nil {
			if err := e.newStream(ctx, p); err != nil {
				return failed, fmt.Errorf("%s: %w", where, err)
			}
		}
		rows := make([][]byte, len(todo))
		for i := range todo {
			rows[i] = todo[i].row
		}
		spans := split(rows, s.requestBudget())
		results := make([]*managedwriter.AppendResult, len(spans))
		actxs := make([]context.Context, len(spans))
		offs := make([]int64, len(spans))
		off := p.next
		var sendErr error
		for i, sp := range spans {
			offs[i] = off
			off += int64(sp.hi - sp.lo)
			if sendErr != nil {
				continue
			}
			actx, cancel := s.appendCtx(ctx)
			defer cancel()
			actxs[i] = actx
			res, err := p.stream.AppendRows(actx, rows[sp.lo:sp.hi], managedwriter.WithOffset(offs[i]))
			if err != nil {
				sendErr = s.appendExpired(ctx, actx, err) // it may be in flight nonetheless
				continue
			}
			results[i] = res
		}
		var retry []item
	wait:
		for i, sp := range spans {
			if results[i] == nil {
				return failed, e.doubt(tp, p, todo, spans[i:], offs[i:], s.appendError(sendErr))
			}
			// An append without an answer in time has an unknown outcome, like a lost one.
			_, err := results[i].GetResult(actxs[i])
			err = s.appendExpired(ctx, actxs[i], err)
			if err == nil || grpcCode(err) == codes.AlreadyExists {
				for _, it := range todo[sp.lo:sp.hi] {
					p.landed.add(it.off)
				}
				p.next = offs[i] + int64(sp.hi-sp.lo)
				continue
			}
			bad := rowErrors(results[i])
			rejected := len(bad) > 0
			var whole error
			if !rejected {
				if perr := s.appendError(err); sinks.IsPermanent(perr) && !isStreamState(err) {
					rejected, whole = true, perr
				}
			}
			if !rejected {
				return failed, e.doubt(tp, p, todo, spans[i:], offs[i:], s.appendError(err))
			}
			// The request was rejected as a whole, nothing of it written: its bad rows fail,
			// the others go again with the requests after it (which cannot have been written:
			// their offsets lie beyond the end of the stream).
			for j := sp.lo; j < sp.hi; j++ {
				switch msg, isBad := bad[int64(j-sp.lo)]; {
				case whole != nil:
					fail(todo[j].i, whole)
				case isBad:
					fail(todo[j].i, fmt.Errorf("bigquery rejected the row: %s", msg))
				default:
					retry = append(retry, todo[j])
				}
			}
			p.next = offs[i]
			if !e.drain(actxs[i+1:], results[i+1:]) {
				later := todo[sp.hi:]
				return failed, e.doubt(tp, p, later, []span{{0, len(later)}}, []int64{offs[i] + int64(sp.hi-sp.lo)},
					fmt.Errorf("append to %s: an append after a rejected one has an unexpected outcome", s.ref()))
			}
			retry = append(retry, todo[sp.hi:]...)
			break wait
		}
		todo = retry
	}
	return failed, nil
}

// trim forgets the oldest landed offsets when there are too many runs of them.
func (e *exactly) trim(p *partState) {
	if n := p.landed.len(); n > maxRuns {
		floor := p.landed.nthLo(n - maxRuns/2)
		p.landed.trimBelow(floor)
		p.exact.trimBelow(floor)
	}
}

// drain waits for the appends sent after a rejected one, each under its own context (with
// the append_timeout deadline). They must have been rejected too (their offsets lie beyond
// the end of the stream); it reports false when one's outcome is anything else, or unknown.
func (e *exactly) drain(actxs []context.Context, results []*managedwriter.AppendResult) bool {
	ok := true
	for i, res := range results {
		if res == nil {
			continue
		}
		_, err := res.GetResult(actxs[i])
		if err == nil || (grpcCode(err) != codes.OutOfRange && len(rowErrors(res)) == 0) {
			ok = false
		}
	}
	return ok
}

// doubt records that the appends of spans (at stream offsets offs) have an unknown outcome
// and returns the transient error to report.
func (e *exactly) doubt(tp event.TopicPartition, p *partState, todo []item, spans []span, offs []int64, err error) error {
	p.broken = true
	for k, sp := range spans {
		d := doubtful{off: offs[k], src: make([]int64, 0, sp.hi-sp.lo)}
		for _, it := range todo[sp.lo:sp.hi] {
			d.src = append(d.src, it.off)
		}
		p.doubt = append(p.doubt, d)
	}
	e.s.log.Warn("append outcome unknown; the stream is finalized before the next append",
		"topic", tp.Topic, "partition", tp.Partition, "error", err)
	return fmt.Errorf("%s/%d: %w", tp.Topic, tp.Partition, err)
}

// resolve settles the appends of unknown outcome: it finalizes the stream, whose row count
// says which doubtful rows landed, and drops it (a new one is created for the next append).
// When the stream cannot be finalized (it expired, say) it looks the rows up in the table.
func (e *exactly) resolve(ctx context.Context, tp event.TopicPartition, p *partState) error {
	rowCount := int64(-1)
	if p.stream != nil {
		n, err := bounded(ctx, e.s, func(ctx context.Context) (int64, error) { return p.stream.Finalize(ctx) })
		switch grpcCode(err) {
		case codes.OK:
			rowCount = n
		case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition:
			// The stream is gone or unusable: nothing more can land on it; ask the table.
		default:
			return err
		}
	}
	landed := 0
	if rowCount >= 0 {
		for _, d := range p.doubt {
			for j, src := range d.src {
				if d.off+int64(j) < rowCount {
					p.landed.add(src)
					landed++
				}
			}
		}
	} else {
		lo, hi := int64(maxOffset), int64(-1)
		for _, d := range p.doubt {
			for _, src := range d.src {
				lo, hi = min(lo, src), max(hi, src)
			}
		}
		if hi >= 0 {
			found, err := e.s.landedOffsets(ctx, tp, lo, hi)
			if err != nil {
				return err
			}
			for _, off := range found {
				p.landed.add(off)
			}
			landed = len(found)
		}
	}
	e.s.log.Info("settled appends of unknown outcome", "topic", tp.Topic, "partition", tp.Partition,
		"landed_rows", landed, "stream_rows", rowCount)
	e.dropStream(p)
	p.broken, p.doubt = false, nil
	return nil
}

func (e *exactly) dropStream(p *partState) {
	if p.stream != nil {
		_ = p.stream.Close() // returns io.EOF once closed normally
		p.stream, p.next = nil, 0
	}
}

// newStream creates the partition's committed stream.
func (e *exactly) newStream(ctx context.Context, p *partState) error {
	s := e.s
	ws, err := bounded(ctx, s, func(ctx context.Context) (*storagepb.WriteStream, error) {
		return s.mw.CreateWriteStream(ctx, &storagepb.CreateWriteStreamRequest{
			Parent:      s.parent(),
			WriteStream: &storagepb.WriteStream{Type: storagepb.WriteStream_COMMITTED},
		})
	})
	if err != nil {
		return s.writeAPIError("create a write stream for", err)
	}
	ms, err := s.newManagedStream(ctx, "open a write stream for",
		managedwriter.WithStreamName(ws.GetName()),
		managedwriter.WithSchemaDescriptor(s.lay.writer),
		managedwriter.WithMaxInflightRequests(s.set.appendsInFlight),
		managedwriter.EnableWriteRetries(true),
		managedwriter.WithDataOrigin("switchyard"))
	if err != nil {
		return err
	}
	p.stream, p.next = ms, 0
	return nil
}

// finalize finalizes and drops the partition's stream, so that nothing still in flight on it
// can land later.
func (e *exactly) finalize(ctx context.Context, tp event.TopicPartition, p *partState) {
	if p.stream == nil {
		return
	}
	if _, err := bounded(ctx, e.s, func(ctx context.Context) (int64, error) { return p.stream.Finalize(ctx) }); err != nil {
		e.s.log.Warn("finalize write stream", "topic", tp.Topic, "partition", tp.Partition, "error", err)
	}
	e.dropStream(p)
}

// assigned starts newly assigned partitions afresh and reads their high-water marks (one
// query per topic). A failed read is logged and retried by the first Write.
func (e *exactly) assigned(ctx context.Context, tps []event.TopicPartition) {
	byTopic := map[string][]event.TopicPartition{}
	var topics []string
	for _, tp := range tps {
		if _, ok := byTopic[tp.Topic]; !ok {
			topics = append(topics, tp.Topic)
		}
		byTopic[tp.Topic] = append(byTopic[tp.Topic], tp)
	}
	for _, topic := range topics {
		var hw map[int32]int64
		err := errors.New("sink not open yet")
		if e.s.isOpen() {
			if hw, err = e.s.highWater(ctx, topic); err != nil {
				e.s.log.Warn("read landed offsets; retrying at the first write", "topic", topic, "error", err)
			}
		}
		for _, tp := range byTopic[topic] {
			p := e.part(tp)
			if p.acquire(ctx) != nil {
				return
			}
			e.finalize(ctx, tp, p)
			p.reset()
			if err == nil {
				p.setMark(markOf(hw, tp.Partition))
			}
			p.release()
		}
	}
}

// revoked finalizes and forgets partitions.
func (e *exactly) revoked(ctx context.Context, tps []event.TopicPartition) {
	for _, tp := range tps {
		p := e.part(tp)
		if p.acquire(ctx) != nil {
			return
		}
		e.finalize(ctx, tp, p)
		e.mu.Lock()
		delete(e.parts, tp)
		e.mu.Unlock()
		p.release()
	}
}

// closeAll finalizes every stream.
func (e *exactly) closeAll(ctx context.Context) {
	e.mu.Lock()
	parts := make(map[event.TopicPartition]*partState, len(e.parts))
	for tp, p := range e.parts {
		parts[tp] = p
	}
	e.mu.Unlock()
	for tp, p := range parts {
		if p.acquire(ctx) != nil {
			return
		}
		e.finalize(ctx, tp, p)
		p.release()
	}
}

func markOf(hw map[int32]int64, partition int32) int64 {
	if m, ok := hw[partition]; ok {
		return m
	}
	return -1
}

// highWater reads the highest _offset per partition of topic in the table.
func (s *Sink) highWater(ctx context.Context, topic string) (map[int32]int64, error) {
	q := s.bq.Query(fmt.Sprintf("SELECT %s, MAX(%s) FROM `%s` WHERE %s = @topic GROUP BY %s",
		sinktable.ColPartition, sinktable.ColOffset, s.ref(), sinktable.ColTopic, sinktable.ColPartition))
	q.Parameters = []bigquery.QueryParameter{{Name: "topic", Value: topic}}
	out := map[int32]int64{}
	err := s.readRows(ctx, q, func(row []bigquery.Value) error {
		part, ok1 := row[0].(int64)
		mark, ok2 := row[1].(int64)
		if !ok1 || !ok2 {
			return fmt.Errorf("unexpected row %v", row)
		}
		out[int32(part)] = mark
		return nil
	})
	if err != nil {
		return nil, s.queryError(fmt.Sprintf("query the highest landed offsets of topic %s", topic), err)
	}
	return out, nil
}

// landedOffsets reads which offsets in [lo, hi] of a partition are in the table.
func (s *Sink) landedOffsets(ctx context.Context, tp event.TopicPartition, lo, hi int64) ([]int64, error) {
	q := s.bq.Query(fmt.Sprintf("SELECT %s FROM `%s` WHERE %s = @topic AND %s = @partition AND %s BETWEEN @lo AND @hi",
		sinktable.ColOffset, s.ref(), sinktable.ColTopic, sinktable.ColPartition, sinktable.ColOffset))
	q.Parameters = []bigquery.QueryParameter{
		{Name: "topic", Value: tp.Topic}, {Name: "partition", Value: int64(tp.Partition)},
		{Name: "lo", Value: lo}, {Name: "hi", Value: hi},
	}
	var out []int64
	err := s.readRows(ctx, q, func(row []bigquery.Value) error {
		off, ok := row[0].(int64)
		if !ok {
			return fmt.Errorf("unexpected row %v", row)
		}
		out = append(out, off)
		return nil
	})
	if err != nil {
		return nil, s.queryError(fmt.Sprintf("query the landed offsets %d..%d of %s/%d", lo, hi, tp.Topic, tp.Partition), err)
	}
	return out, nil
}

// readRows runs q and calls fn for every row, all under the request_timeout deadline.
func (s *Sink) readRows(ctx context.Context, q *bigquery.Query, fn func([]bigquery.Value) error) error {
	_, err := bounded(ctx, s, func(ctx context.Context) (struct{}, error) {
		it, err := q.Read(ctx)
		if err != nil {
			return struct{}{}, err
		}
		for {
			var row []bigquery.Value
			err := it.Next(&row)
			if errors.Is(err, iterator.Done) {
				return struct{}{}, nil
			}
			if err != nil {
				return struct{}{}, err
			}
			if err := fn(row); err != nil {
				return struct{}{}, err
			}
		}
	})
	return err
}

func (s *Sink) queryError(what string, err error) error {
	return s.restError(what, "bigquery.jobs.create and bigquery.tables.getData", err)
}
