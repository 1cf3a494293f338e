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

	"switchyard/sinks"
)

// exactly is the exactly_once write path (see docs/sinks.md, "BigQuery", "Exactly once").
//
// Each source partition appends through its own COMMITTED write stream, in source-offset
// order, one Write at a time, with explicit stream offsets. So the rows of a partition in the
// table are always a prefix of what the sink was given (minus dead-lettered records), and the
// highest _offset of a partition says exactly what has landed:
//   - on assignment (or the first Write of a partition) the sink reads MAX(_offset) per
//     partition from the table and skips records at or below it;
//   - within a process it keeps that mark up to date; an append whose response was lost and
//     that the client library sends again gets ALREADY_EXISTS, which counts as landed;
//   - when an append's outcome stays unknown, the next Write finalizes the stream first: the
//     row count FinalizeWriteStream returns says which of the doubtful rows landed; a new
//     stream continues from there.
type exactly struct {
	s     *Sink
	mu    sync.Mutex
	parts map[sinks.TopicPartition]*partState
}

// partState is one source partition's write state.
type partState struct {
	lock   chan struct{} // held by one Write (or assignment change) at a time
	known  bool          // landed was read from the table
	landed int64         // every record at or below this offset landed or failed; -1: none
	gap    int64         // >= 0: the lowest offset not known to have landed after a failed append
	stream *managedwriter.ManagedStream
	next   int64      // next stream offset
	broken bool       // an append's outcome is unknown: finalize before appending again
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
	return &exactly{s: s, parts: map[sinks.TopicPartition]*partState{}}
}

func (e *exactly) part(tp sinks.TopicPartition) *partState {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.parts[tp]
	if !ok {
		p = &partState{lock: make(chan struct{}, 1), landed: -1, gap: -1}
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

// write appends b's rows, partition by partition (partitions concurrently).
func (e *exactly) write(ctx context.Context, records []*sinks.Record, b *batch) error {
	groups := map[sinks.TopicPartition][]item{}
	var order []sinks.TopicPartition
	for k, ri := range b.idx {
		r := records[ri]
		tp := sinks.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		if _, ok := groups[tp]; !ok {
			order = append(order, tp)
		}
		groups[tp] = append(groups[tp], item{i: ri, off: r.Offset, row: b.rows[k]})
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	run := func(tp sinks.TopicPartition) {
		failed, err := e.writePartition(ctx, tp, groups[tp])
		mu.Lock()
		defer mu.Unlock()
		for i, ferr := range failed {
			b.fail(i, ferr)
		}
		if err != nil {
			errs = append(errs, err)
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
	err := errors.Join(errs...)
	if len(b.failed) > 0 {
		return &sinks.BatchError{Failed: b.failed, Landed: err == nil}
	}
	return err
}

// writePartition appends items (one partition's, in offset order). It returns the records
// that can never land, and a transient error when some of the others have not landed.
func (e *exactly) writePartition(ctx context.Context, tp sinks.TopicPartition, items []item) (map[int]error, error) {
	s := e.s
	p := e.part(tp)
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	defer p.release()
	if !p.known {
		hw, err := s.highWater(ctx, tp.Topic)
		if err != nil {
			return nil, err
		}
		p.landed, p.known = markOf(hw, tp.Partition), true
	}
	if p.broken {
		if err := e.resolve(ctx, tp, p); err != nil {
			return nil, fmt.Errorf("%s/%d: settle an append of unknown outcome: %w", tp.Topic, tp.Partition, err)
		}
	}
	todo := make([]item, 0, len(items))
	last := p.landed
	for _, it := range items {
		if it.off > last { // at or below: landed already (or a duplicate within the batch)
			todo = append(todo, it)
			last = it.off
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	if p.gap >= 0 && todo[0].off > p.gap {
		return nil, fmt.Errorf("%s/%d: offset %d must land before offset %d; waiting for its batch to be retried", tp.Topic, tp.Partition, p.gap, todo[0].off)
	}
	p.gap = -1
	var failed map[int]error
	fail := func(i int, err error) {
		if failed == nil {
			failed = map[int]error{}
		}
		failed[i] = err
	}
	for round := 0; len(todo) > 0; round++ {
		if round == 3 {
			p.gap = todo[0].off
			return failed, fmt.Errorf("%s/%d: append to %s: rows kept being rejected", tp.Topic, tp.Partition, s.ref())
		}
		if p.stream == nil {
			if err := e.newStream(ctx, p); err != nil {
				p.gap = todo[0].off
				return failed, fmt.Errorf("%s/%d: %w", tp.Topic, tp.Partition, err)
			}
		}
		rows := make([][]byte, len(todo))
		for i := range todo {
			rows[i] = todo[i].row
		}
		spans := split(rows, s.requestBudget())
		results := make([]*managedwriter.AppendResult, len(spans))
		offs := make([]int64, len(spans))
		off := p.next
		var sendErr error
		for i, sp := range spans {
			offs[i] = off
			off += int64(sp.hi - sp.lo)
			if sendErr != nil {
				continue
			}
			res, err := p.stream.AppendRows(ctx, rows[sp.lo:sp.hi], managedwriter.WithOffset(offs[i]))
			if err != nil {
				sendErr = err // it may be in flight nonetheless
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
			_, err := results[i].GetResult(ctx)
			if err == nil || grpcCode(err) == codes.AlreadyExists {
				p.landed, p.next = todo[sp.hi-1].off, offs[i]+int64(sp.hi-sp.lo)
				continue
			}
			bad := rowErrors(results[i])
			if len(bad) == 0 {
				if perr := s.appendError(err); sinks.IsPermanent(perr) && !isStreamState(err) {
					// Rejected as a whole, nothing written: these records fail, and the
					// requests after it cannot have been written (their offsets lie beyond).
					for j := sp.lo; j < sp.hi; j++ {
						fail(todo[j].i, perr)
					}
					retry = append(retry, todo[sp.hi:]...)
					if !e.drain(ctx, results[i+1:]) {
						return failed, e.doubt(tp, p, retry, []span{{0, len(retry)}}, []int64{offs[i]}, perr)
					}
					p.next = offs[i]
					break wait
				}
				return failed, e.doubt(tp, p, todo, spans[i:], offs[i:], s.appendError(err))
			}
			// Row errors: the request was rejected as a whole; its other rows go again, with
			// the requests after it.
			for j := sp.lo; j < sp.hi; j++ {
				if msg, ok := bad[int64(j-sp.lo)]; ok {
					fail(todo[j].i, fmt.Errorf("bigquery rejected the row: %s", msg))
					continue
				}
				retry = append(retry, todo[j])
			}
			retry = append(retry, todo[sp.hi:]...)
			if !e.drain(ctx, results[i+1:]) {
				return failed, e.doubt(tp, p, retry, []span{{0, len(retry)}}, []int64{offs[i]}, fmt.Errorf("append to %s: an append after a rejected one has an unknown outcome", s.ref()))
			}
			p.next = offs[i]
			break
		}
		todo = retry
	}
	return failed, nil
}

// drain waits for the appends sent after a rejected one. They must have been rejected too
// (their offsets lie beyond the end of the stream); it reports false when one's outcome is
// anything else.
func (e *exactly) drain(ctx context.Context, results []*managedwriter.AppendResult) bool {
	ok := true
	for _, res := range results {
		if res == nil {
			continue
		}
		_, err := res.GetResult(ctx)
		if err == nil || (grpcCode(err) != codes.OutOfRange && len(rowErrors(res)) == 0) {
			ok = false
		}
	}
	return ok
}

// doubt records that the appends of spans (at stream offsets offs) have an unknown outcome
// and returns the transient error to report.
func (e *exactly) doubt(tp sinks.TopicPartition, p *partState, todo []item, spans []span, offs []int64, err error) error {
	p.broken = true
	for k, sp := range spans {
		d := doubtful{off: offs[k], src: make([]int64, 0, sp.hi-sp.lo)}
		for _, it := range todo[sp.lo:sp.hi] {
			d.src = append(d.src, it.off)
		}
		p.doubt = append(p.doubt, d)
	}
	if len(spans) > 0 && spans[0].hi > spans[0].lo {
		p.gap = todo[spans[0].lo].off
	}
	e.s.log.Warn("append outcome unknown; the stream is finalized before the next append",
		"topic", tp.Topic, "partition", tp.Partition, "error", err)
	return fmt.Errorf("%s/%d: %w", tp.Topic, tp.Partition, err)
}

// resolve settles the appends of unknown outcome: it finalizes the stream, whose row count
// says which doubtful rows landed, and drops the stream (a new one is created for the next
// append). When the stream cannot be finalized (it expired, say) it reads the table's
// high-water mark instead.
func (e *exactly) resolve(ctx context.Context, tp sinks.TopicPartition, p *partState) error {
	rowCount := int64(-1)
	if p.stream != nil {
		n, err := p.stream.Finalize(ctx)
		switch grpcCode(err) {
		case codes.OK:
			rowCount = n
		case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition:
			// The stream is gone or unusable: fall back to the table.
		default:
			return err
		}
	}
	if rowCount >= 0 {
		p.gap = -1
		for _, d := range p.doubt {
			for j, src := range d.src {
				switch {
				case d.off+int64(j) < rowCount:
					p.landed = max(p.landed, src)
				case p.gap < 0:
					p.gap = src
				}
			}
		}
	} else {
		hw, err := e.s.highWater(ctx, tp.Topic)
		if err != nil {
			return err
		}
		p.landed = max(p.landed, markOf(hw, tp.Partition))
		if p.gap <= p.landed {
			p.gap = -1
		}
	}
	e.s.log.Info("settled appends of unknown outcome", "topic", tp.Topic, "partition", tp.Partition,
		"landed_up_to", p.landed, "stream_rows", rowCount)
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
	ws, err := s.mw.CreateWriteStream(ctx, &storagepb.CreateWriteStreamRequest{
		Parent:      s.parent(),
		WriteStream: &storagepb.WriteStream{Type: storagepb.WriteStream_COMMITTED},
	})
	if err != nil {
		return s.writeAPIError("create write stream for", err)
	}
	// The managed stream keeps its context for its connection: give it the sink's life.
	ms, err := s.mw.NewManagedStream(s.life,
		managedwriter.WithStreamName(ws.GetName()),
		managedwriter.WithSchemaDescriptor(s.lay.writer),
		managedwriter.WithMaxInflightRequests(s.set.appendsInFlight),
		managedwriter.EnableWriteRetries(true),
		managedwriter.WithDataOrigin("switchyard"))
	if err != nil {
		return s.writeAPIError("open write stream for", err)
	}
	p.stream, p.next = ms, 0
	return nil
}

// finalize finalizes and drops the partition's stream, so that nothing still in flight on it
// can land later.
func (e *exactly) finalize(ctx context.Context, tp sinks.TopicPartition, p *partState) {
	if p.stream == nil {
		return
	}
	if _, err := p.stream.Finalize(ctx); err != nil {
		e.s.log.Warn("finalize write stream", "topic", tp.Topic, "partition", tp.Partition, "error", err)
	}
	e.dropStream(p)
}

// assigned reads the high-water marks of newly assigned partitions.
func (e *exactly) assigned(ctx context.Context, tps []sinks.TopicPartition) {
	byTopic := map[string][]sinks.TopicPartition{}
	for _, tp := range tps {
		byTopic[tp.Topic] = append(byTopic[tp.Topic], tp)
	}
	for topic, list := range byTopic {
		hw, err := e.s.highWater(ctx, topic)
		if err != nil {
			e.s.log.Warn("read landed offsets; retrying at the first write", "topic", topic, "error", err)
		}
		for _, tp := range list {
			p := e.part(tp)
			if p.acquire(ctx) != nil {
				return
			}
			e.finalize(ctx, tp, p)
			p.known, p.landed, p.gap, p.broken, p.doubt = err == nil, markOf(hw, tp.Partition), -1, false, nil
			p.release()
		}
	}
}

// revoked finalizes and forgets partitions.
func (e *exactly) revoked(ctx context.Context, tps []sinks.TopicPartition) {
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
	parts := make(map[sinks.TopicPartition]*partState, len(e.parts))
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
		ColPartition, ColOffset, s.ref(), ColTopic, ColPartition))
	q.Parameters = []bigquery.QueryParameter{{Name: "topic", Value: topic}}
	it, err := q.Read(ctx)
	if err != nil {
		return nil, s.restError(fmt.Sprintf("query the landed offsets (topic %s)", topic), "bigquery.jobs.create and bigquery.tables.getData", err)
	}
	out := map[int32]int64{}
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, s.restError(fmt.Sprintf("query the landed offsets (topic %s)", topic), "bigquery.tables.getData", err)
		}
		part, ok1 := row[0].(int64)
		mark, ok2 := row[1].(int64)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("read the landed offsets of topic %s from %s: unexpected row %v", topic, s.ref(), row)
		}
		out[int32(part)] = mark
	}
}
