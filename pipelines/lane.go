package pipelines

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/internal/expr"
	"github.com/switchyard-dev/switchyard/internal/kafkaconn"
	"github.com/switchyard-dev/switchyard/pipelines/source"
	"github.com/switchyard-dev/switchyard/sinks"
)

// lane consumes a pipeline's topics for one sink.
type lane struct {
	p       *pipeline
	sink    string
	index   int  // in p.lanes
	primary bool // dead-letters decode and validation failures, counts consumed
	payload bool // the sink writes untransformed records from their bytes (sinks.PayloadWriter)
	// blind is set when nothing of the lane reads a decoded message: its sink writes records'
	// bytes, on routes without conditions or transforms. It then routes a record that another
	// lane found valid without decoding it (routeVerdict).
	blind  bool
	routes []*Route // routes to this lane's sink
	others []*Route // routes to other sinks (primary lane: to count unrouted events)
	runner *sinks.Runner
	// Exactly-once lanes write each batch in a transaction of txn through sinkW, instead of
	// through the runner (see transact).
	txn    *kafkaconn.Producer
	sinkW  sinks.Sink
	txns   txnGroup // one transaction at a time, over every batch waiting
	retry  config.Retry
	src    *source.Source
	router *message.Router
	log    *slog.Logger
	state  sync.Pool // *laneState
	health laneHealth

	landed   prometheus.Counter
	paced    prometheus.Counter // seconds waited for slower lanes (verdictRing.pace)
	skipped  prometheus.Counter // records routed without decoding (routeVerdict)
	tapped   prometheus.Counter // records taken from another lane's fetch (source.Tap)
	consumed prometheus.Counter
	unrouted prometheus.Counter
	batchRec prometheus.Observer
	writeSec prometheus.Observer
	landLat  prometheus.Observer
	sinkUp   prometheus.Gauge
	slo      laneSLO

	nLanded, nConsumed atomic.Int64
}

// decodedFactor is what the lane's byte budget counts for the decoded messages it keeps until
// its sink has written them, per byte of payload (source.Config.DecodedFactor): none when
// the sink writes the records' bytes on every route, else about hyperpb's arena (4.7 times
// the payload of a BidPlaced, measured with runtime.MemStats over 10,000 decodes), plus the
// payload once more when the pipeline has other lanes: a message borrowed from another lane
// (process) aliases that lane's fetched record, which the message keeps alive.
func (l *lane) decodedFactor() int {
	decoded := 5 // hyperpb's arena
	if l.p.verdicts != nil {
		decoded++
	}
	if !l.payload {
		return decoded
	}
	for _, r := range l.routes {
		if r.transforms() {
			return decoded
		}
	}
	return 0
}

// laneState is reused across batches by one handler goroutine at a time.
type laneState struct {
	decoders map[*contract.Contract]*contract.Decoder
	act      expr.Activation
	recs     []event.Record
	ptrs     []*event.Record
	headers  []event.Header
	dead     []deadLetter
	outs     []protoreflect.Message // transform results, reused
	// retry is a transient failure of the batch being processed (the schema registry
	// could not be asked): the batch is nacked, not dead-lettered.
	retry error
	// attempt is which delivery of the batch this is (source.AttemptOf), for the
	// switchyard.attempts header of its dead letters.
	attempt int
	slo     sloScratch
	// ring holds the valid verdicts of the batch's partition shared by the pipeline's lanes
	// (nil with one lane).
	ring     *verdictRing
	shared   int64 // validations of the batch skipped thanks to ring
	skipped  int64 // records of the batch routed without decoding (routeVerdict)
	borrowed int64 // records of the batch read from another lane's decoded message
}

func (l *lane) newState() *laneState {
	return &laneState{decoders: map[*contract.Contract]*contract.Decoder{}}
}

func (st *laneState) decoder(c *contract.Contract, cp *CompiledPipeline) *contract.Decoder {
	d := st.decoders[c]
	if d == nil {
		d = cp.NewDecoder(c)
		st.decoders[c] = d
	}
	return d
}

// handle processes one batch of records from one partition. Returning nil acks the batch: by
// then every record has landed in this lane's sink, been dead-lettered, or matched no route
// of this lane. Returning an error nacks it and the source redelivers it.
func (l *lane) handle(msg *message.Message) error {
	b := source.BatchOf(msg)
	if b == nil {
		return fmt.Errorf("message %s carries no batch", msg.UUID)
	}
	st, _ := l.state.Get().(*laneState)
	if st == nil {
		st = l.newState()
	}
	reuse := true
	defer func() {
		if !reuse {
			// The runner may still hold records of this state (the write was abandoned).
			return
		}
		for _, d := range st.decoders {
			d.Release()
		}
		// Drop the references to the batch's fetched records (their keys and values alias
		// whole decompressed fetch buffers), so a pooled state does not keep them alive.
		clear(st.recs)
		clear(st.headers)
		clear(st.ptrs)
		st.ptrs = st.ptrs[:0]
		clear(st.dead)
		st.dead = st.dead[:0]
		l.state.Put(st)
	}()
	st.attempt = max(source.AttemptOf(msg), 1)
	st.ring, st.shared, st.skipped, st.borrowed = l.p.verdicts.ring(b.Topic, b.Partition), 0, 0, 0
	n := len(b.Records)
	if st.ring != nil && n > 0 {
		// A batch admitted before the pipeline's breaker tripped finishes without waiting for
		// the lanes that stopped.
		if closed, trip := l.p.brk.closed(); closed {
			if waited := st.ring.pace(msg.Context(), trip, l.index, b.Records[0].Offset, b.Records[n-1].Offset); waited > 0 {
				l.paced.Add(waited.Seconds())
			}
		}
	}
	if cap(st.recs) < n {
		st.recs = make([]event.Record, n)
	}
	recs := st.recs[:n]
	st.headers = st.headers[:0]
	st.slo.reset(n)
	for i, kr := range b.Records {
		st.slo.evTime = kr.Timestamp
		l.process(st, kr, &recs[i])
		st.slo.times[i] = st.slo.evTime
		if st.retry != nil {
			err := st.retry
			st.retry = nil
			return fmt.Errorf("pipeline %q sink %q: %w", l.p.name, l.sink, err)
		}
	}
	if st.ring != nil && n > 0 {
		st.ring.advance(l.index, b.Records[n-1].Offset+1)
	}
	if st.shared > 0 {
		l.p.shared.Add(float64(st.shared))
		st.shared = 0
	}
	if st.skipped > 0 {
		l.skipped.Add(float64(st.skipped))
		st.skipped = 0
	}
	if st.borrowed > 0 {
		l.p.borrowed.Add(float64(st.borrowed))
		st.borrowed = 0
	}
	for i := range st.dead {
		st.dead[i].attempts = st.attempt
	}
	if l.primary {
		l.consumed.Add(float64(n))
		l.nConsumed.Add(int64(n))
	}
	ctx := msg.Context()
	if l.txn != nil {
		return l.transact(ctx, b, st, recs)
	}
	landed := st.ptrs
	if len(st.ptrs) > 0 {
		failures, err := l.runner.Write(ctx, st.ptrs)
		if err != nil {
			reuse = false
			return fmt.Errorf("pipeline %q sink %q: %w", l.p.name, l.sink, err)
		}
		for _, f := range failures {
			i, ok := indexOf(recs, f.Record)
			if !ok {
				// Never dead-letter another record in its place: hand the batch back.
				return fmt.Errorf("pipeline %q sink %q: failed record %s/%d@%d is not in its batch", l.p.name, l.sink, f.Record.Topic, f.Record.Partition, f.Record.Offset)
			}
			st.dead = append(st.dead, deadLetter{rec: b.Records[i], reason: ReasonSink,
				err: f.Err, contract: f.Record.Contract, sink: l.sink, route: f.Record.Route, attempts: st.attempt})
		}
		landed = st.slo.landedNonFailing(st.ptrs, failures)
	}
	if err := l.p.dlq.write(ctx, st.dead); err != nil {
		return &deadLetterWriteError{pipeline: l.p.name, topic: l.p.dlq.topic, n: len(st.dead), err: err}
	}
	l.account(recs, st, landed, st.dead)
	return nil
}

// indexOf finds the batch index of a record given to the runner. Routed records point into
// recs, or are copies (one event, several routes) that carry the same offset.
func indexOf(recs []event.Record, r *event.Record) (int, bool) {
	i := offsetIndex(recs, r.Offset)
	return i, i >= 0
}

// offsetIndex is the batch index of the record at offset off, or -1. Batches are contiguous
// offsets, so the index is usually off minus the first offset.
func offsetIndex(recs []event.Record, off int64) int {
	if i := int(off - recs[0].Offset); i >= 0 && i < len(recs) && recs[i].Offset == off {
		return i
	}
	for i := range recs {
		if recs[i].Offset == off {
			return i
		}
	}
	return -1
}

// decodeReason is the dead-letter class of a Decoder error: framing for a Confluent frame
// that is malformed or names another schema or message, decode otherwise.
func decodeReason(err error) Reason {
	if de := (*contract.DecodeError)(nil); errors.As(err, &de) && de.Reason == contract.ReasonFraming {
		return ReasonFraming
	}
	return ReasonDecode
}

// process decodes, validates and routes one record. A panic in any of it dead-letters the
// record instead of stalling the partition.
func (l *lane) process(st *laneState, kr *kgo.Record, rec *event.Record) {
	defer func() {
		if v := recover(); v != nil {
			st.dead = append(st.dead, deadLetter{rec: kr, reason: ReasonDecode, err: fmt.Errorf("panic while processing: %v", v), sink: l.sink})
		}
	}()
	*rec = event.Record{Topic: kr.Topic, Partition: kr.Partition, Offset: kr.Offset, Timestamp: kr.Timestamp, Key: kr.Key, Value: kr.Value}
	if limit := l.p.cp.Config.MaxEventBytes; limit > 0 && int64(len(kr.Value)) > int64(limit) {
		if l.primary {
			st.dead = append(st.dead, deadLetter{rec: kr, reason: ReasonDecode, cause: CauseTooLarge,
				err: fmt.Errorf("%w: value of %d bytes is larger than max_event_bytes (%d)", sinks.ErrTooLarge, len(kr.Value), int64(limit))})
		}
		return
	}
	ct, err := l.p.contractFor(kr)
	if err != nil {
		if l.primary {
			st.dead = append(st.dead, deadLetter{rec: kr, reason: ReasonDecode, err: err})
		}
		return
	}
	name := string(ct.Descriptor().FullName())
	var h uint64 // the record's verdict hash, when the pipeline's lanes share verdicts
	var found verdict
	shared := false // another lane found the record valid (found)
	if st.ring != nil {
		h = st.ring.hash(kr.Value, ct)
		if found, shared = st.ring.valid(kr.Offset, h); shared && l.blind {
			l.routeVerdict(st, kr, rec, name, found.at, ct.HasRules())
			return
		}
	}
	dec := st.decoder(ct, l.p.cp)
	// A record another lane found valid is read from that lane's decoded message while that
	// lane still holds it (verdict.lease); decoded here only once it is gone.
	var msg protoreflect.Message
	borrowed := false
	if shared {
		msg, borrowed = dec.Borrow(found.lease)
	}
	if !borrowed {
		msg, err = dec.Decode(kr.Value)
	}
	// keep reports whether a sink will read the decoded message; if not, its memory goes
	// back to the decoder at once rather than at the end of the batch.
	keep := false
	first := len(st.ptrs)
	defer func() {
		if !keep {
			dec.Discard()
			rec.Message = nil
			for _, r := range st.ptrs[first:] {
				r.Message = nil // copies for further routes
			}
		}
	}()
	if err != nil {
		if re := (*contract.RegistryError)(nil); errors.As(err, &re) {
			st.retry = err
			return
		}
		if l.primary {
			st.dead = append(st.dead, deadLetter{rec: kr, reason: decodeReason(err), err: err, contract: name})
		}
		return
	}
	var evTime time.Time
	if shared {
		// The verdict's: time-dependent rules saw it, and it saves reading the field again.
		evTime = found.at
		if evTime.IsZero() {
			evTime = kr.Timestamp
		}
	} else {
		evTime = l.p.cp.eventTimeOf(ct, msg, kr.Timestamp)
	}
	if borrowed {
		st.borrowed++
	}
	if err := l.validate(st, ct, kr, msg, h, evTime, shared, borrowed, dec); err != nil {
		keep = true // the error may refer to the message; invalid events are rare
		if l.primary {
			st.dead = append(st.dead, deadLetter{rec: kr, reason: ReasonValidate, err: err, contract: name})
		}
		return
	}
	rec.Message = msg
	rec.Contract = name
	st.slo.evTime = evTime
	st.copyHeaders(kr, rec)
	st.act.Reset(msg, rec)
	matched := false
	for _, r := range l.routes {
		ok, err := r.Match(&st.act)
		if err != nil {
			st.dead = append(st.dead, deadLetter{rec: kr, reason: ReasonRoute, err: err, contract: name, sink: l.sink, route: r.Name})
			matched = true // dead-lettered, so not "unrouted"
			continue
		}
		if !ok {
			continue
		}
		ch := r.chain(msg.Descriptor())
		if ch == nil || ch.Identity() {
			keep = keep || !l.payload
			st.routed(rec, r, !matched)
			matched = true
			continue
		}
		matched = true
		keep = true // transformed messages may share memory with the decoded one
		outs, err := ch.Apply(msg, rec, st.outs[:0])
		st.outs = outs[:0]
		if err != nil {
			st.dead = append(st.dead, deadLetter{rec: kr, reason: ReasonTransform, err: err, contract: name, sink: l.sink, route: r.Name})
			continue
		}
		for _, m := range outs {
			cp := *rec
			cp.Target, cp.Message, cp.Transformed, cp.Route = r.Target, m, true, r.Name
			st.ptrs = append(st.ptrs, &cp)
		}
		clear(outs)
	}
	if l.primary && !matched && !l.matchesOther(&st.act) {
		l.unrouted.Inc()
	}
}

// copyHeaders gives rec the headers of kr, in the state's header buffer.
func (st *laneState) copyHeaders(kr *kgo.Record, rec *event.Record) {
	if len(kr.Headers) == 0 {
		return
	}
	start := len(st.headers)
	for _, h := range kr.Headers {
		st.headers = append(st.headers, event.Header{Key: h.Key, Value: h.Value})
	}
	rec.Headers = st.headers[start:len(st.headers):len(st.headers)]
}

// validate validates msg, the decoded kr with verdict hash h, unless another lane of the
// pipeline already found kr valid (shared; see verdicts). A valid verdict is shared with the
// other lanes, with the record's event time and a lease of the message this lane decoded
// (dec.Lease), for them to borrow rather than decode. A contract without rules has nothing
// to validate, but its verdict ("it decodes") is stored all the same.
func (l *lane) validate(st *laneState, ct *contract.Contract, kr *kgo.Record, msg protoreflect.Message, h uint64, evTime time.Time, shared, borrowed bool, dec *contract.Decoder) error {
	switch {
	case st.ring == nil:
		return ct.Validate(msg)
	case shared:
		if ct.HasRules() {
			st.shared++
		}
		if borrowed {
			return nil // the slot already names a live message
		}
	default:
		if err := ct.Validate(msg); err != nil {
			return err
		}
	}
	st.ring.store(kr.Offset, h, evTime, dec.Lease())
	return nil
}

// routeVerdict routes kr to every route of a blind lane without decoding it, once another
// lane stored it as valid; at is the event time that lane found.
func (l *lane) routeVerdict(st *laneState, kr *kgo.Record, rec *event.Record, name string, at time.Time, rules bool) {
	if rules {
		st.shared++
	}
	st.skipped++
	rec.Contract = name
	if at.IsZero() {
		at = kr.Timestamp
	}
	st.slo.evTime = at
	st.copyHeaders(kr, rec)
	for i, r := range l.routes {
		st.routed(rec, r, i == 0)
	}
}

// routed hands rec to the sink for route r: rec itself for the first route matched, unless
// r has a target of its own, else a copy.
func (st *laneState) routed(rec *event.Record, r *Route, first bool) {
	out := rec
	if !first || r.Target != "" {
		cp := *rec
		cp.Target = r.Target
		out = &cp
	}
	out.Route = r.Name
	st.ptrs = append(st.ptrs, out)
}

// isBlind reports whether nothing of the lane reads decoded messages (lane.blind): its sink
// writes records' bytes and its routes neither have conditions nor transform.
func (l *lane) isBlind() bool {
	if !l.payload || len(l.routes) == 0 {
		return false
	}
	for _, r := range l.routes {
		if !r.Unconditional() || r.transforms() {
			return false
		}
	}
	return true
}

// matchesOther reports whether a route of another sink matches (an evaluation error counts as
// a match: that lane dead-letters it).
func (l *lane) matchesOther(act *expr.Activation) bool {
	for _, r := range l.others {
		if ok, err := r.Match(act); ok || err != nil {
			return true
		}
	}
	return false
}

// observer feeds runner telemetry into the lane's metrics.
type observer struct{ l *lane }

func (o observer) Landed(recs []*event.Record, took time.Duration) {
	l := o.l
	n := len(recs)
	l.landed.Add(float64(n))
	l.nLanded.Add(int64(n))
	l.batchRec.Observe(float64(n))
	l.writeSec.Observe(took.Seconds())
	now := time.Now()
	for _, r := range recs {
		if !r.Timestamp.IsZero() {
			l.landLat.Observe(now.Sub(r.Timestamp).Seconds())
		}
	}
	l.sinkUp.Set(1)
	l.slo.setLanded(now)
}

func (o observer) WriteFailed(n, attempt int, err error) {
	l := o.l
	l.slo.setFailed(err, time.Now())
	l.p.e.sinkFailing(l.p.name, l.sink, n, attempt, err)
}
