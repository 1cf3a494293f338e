package pipelines

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/internal/kafkaconn"
	"github.com/switchyard-dev/switchyard/sinks"
)

// OneShot runs records of one pipeline through the engine's own decode, validate, route and
// transform code into chosen sinks, outside the lanes: it has no consumer group, commits no
// offsets and writes no dead letters. `switchyard replay` and `switchyard dlq redrive` use it.
//
// Records keep the source coordinates they are given, so the exactly-once sinks
// (clickhouse, bigquery with exactly_once) skip what they already hold, as they do for a
// batch the engine redelivers. Kafka sinks publish every record again.
type OneShot struct {
	e     *Engine
	p     *pipeline
	lanes []*lane
	sinks []sinks.Sink
}

// Outcome is what became of one record in Process.
type Outcome struct {
	// Failed is the reason (see Reason and HeaderReason) the record cannot land, empty if it
	// landed or matched no route. A record that fails in one sink counts as failed.
	Failed string
	// Error is the failure's message (names fields and rules, never values).
	Error string
	// Landed lists the sinks that hold the record now (written, or already there).
	Landed []string
}

// NewOneShot builds the named sinks of pipeline (all of them when sinkNames is empty) and
// opens them. Close releases them.
func NewOneShot(ctx context.Context, c *Compiled, pipeline string, sinkNames []string, opt Options) (*OneShot, error) {
	e, err := New(c, opt)
	if err != nil {
		return nil, err
	}
	o := &OneShot{e: e}
	for _, p := range e.pipelines {
		if p.name == pipeline {
			o.p = p
		}
	}
	if o.p == nil {
		return nil, fmt.Errorf("no pipeline %q in the configuration", pipeline)
	}
	for _, name := range sinkNames {
		if !slices.ContainsFunc(o.p.lanes, func(l *lane) bool { return l.sink == name }) {
			return nil, fmt.Errorf("pipeline %q has no sink %q", pipeline, name)
		}
	}
	for i, l := range o.p.lanes {
		if len(sinkNames) > 0 && !slices.Contains(sinkNames, l.sink) {
			continue
		}
		// Every one-shot lane reports decode and validation failures (nothing is
		// dead-lettered, so nothing is written twice).
		l.primary = true
		if err := o.open(ctx, l, &o.p.cp.Config.Sinks[i]); err != nil {
			_ = o.Close(ctx)
			return nil, fmt.Errorf("pipeline %q sink %q: %w", pipeline, l.sink, err)
		}
		o.lanes = append(o.lanes, l)
	}
	return o, nil
}

// Sinks returns the names of the opened sinks.
func (o *OneShot) Sinks() []string {
	var out []string
	for _, l := range o.lanes {
		out = append(out, l.sink)
	}
	return out
}

func (o *OneShot) open(ctx context.Context, l *lane, sc *config.Sink) error {
	p, e := o.p, o.e
	group := p.cp.Config.Source.Group
	if group == "" {
		group = "switchyard." + p.name
	}
	po := e.producerOptions(p.name + "." + sc.Name + ".oneshot")
	// Never the lane's own transactional id: that would fence the running daemon's producer.
	po.TransactionalID = transactionalID(group+"."+sc.Name+".oneshot", "")
	s, err := e.opt.NewSink(ctx, sc, SinkDeps{
		Deps:      sinks.Deps{Pipeline: p.name, Sink: sc.Name, Schema: p.cp.Schemas[sc.Name], Logger: l.log},
		Kafka:     e.c.Config.Kafka,
		KafkaOpts: e.franz,
		Producer:  po,
		Input:     p.cp.Encoding,
	})
	if err != nil {
		return err
	}
	if op, ok := s.(sinks.Opener); ok {
		if err := op.Open(ctx); err != nil {
			_ = s.Close(ctx)
			return fmt.Errorf("open: %w", err)
		}
	}
	if pw, ok := s.(sinks.PayloadWriter); ok {
		l.payload = pw.WritesPayload()
	}
	if t, ok := s.(transactional); ok && t.Transactions() != nil {
		l.txn, l.sinkW = t.Transactions(), s
	}
	l.runner = sinks.NewRunner(s, sinks.RunnerOptions{
		MaxRows:  sc.Batch.MaxRows,
		MaxBytes: int64(sc.Batch.MaxBytes),
		// Process hands over whole batches: linger only briefly for more.
		Interval:       5 * time.Millisecond,
		MaxInFlight:    sc.MaxInFlight,
		MaxAttempts:    sc.Retry.MaxAttempts,
		InitialBackoff: sc.Retry.InitialBackoff,
		MaxBackoff:     sc.Retry.MaxBackoff,
		Observer:       observer{l},
		Logger:         l.log,
	})
	return nil
}

// Process runs recs (records of the pipeline's source topics, with their original
// coordinates) through the sinks named in only (every opened sink when only is empty) and
// returns what became of each record. It blocks until every record landed or failed
// permanently; an error means some records may not have landed (run them again: nothing
// lands twice in exactly-once sinks). Process is not goroutine-safe.
func (o *OneShot) Process(ctx context.Context, recs []*kgo.Record, only []string) ([]Outcome, error) {
	out := make([]Outcome, len(recs))
	if len(recs) == 0 {
		return out, nil
	}
	index := make(map[coord]int, len(recs))
	for i, r := range recs {
		index[coord{r.Topic, r.Partition, r.Offset}] = i
	}
	findRecord := func(r *event.Record) int {
		if i, ok := index[coord{r.Topic, r.Partition, r.Offset}]; ok {
			return i
		}
		return -1
	}
	fail := func(kr *kgo.Record, reason, msg string) {
		if i, ok := index[coord{kr.Topic, kr.Partition, kr.Offset}]; ok && out[i].Failed == "" {
			out[i].Failed, out[i].Error = reason, msg
		}
	}
	for _, l := range o.lanes {
		if len(only) > 0 && !slices.Contains(only, l.sink) {
			continue
		}
		st := l.newState()
		evs := make([]event.Record, len(recs))
		for i, kr := range recs {
			l.process(st, kr, &evs[i])
			if st.retry != nil {
				return out, fmt.Errorf("pipeline %q sink %q: %w", o.p.name, l.sink, st.retry)
			}
		}
		failures, err := o.write(ctx, l, st.ptrs)
		if err != nil {
			return out, fmt.Errorf("pipeline %q sink %q: %w", o.p.name, l.sink, err)
		}
		for i := range st.dead {
			dl := &st.dead[i]
			fail(dl.rec, dl.detail(), safeMessage(dl.err))
		}
		refused := map[int]bool{}
		for _, f := range failures {
			// Records given to the sink carry the coordinates of the record they came from.
			if i := findRecord(f.Record); i >= 0 {
				dl := deadLetter{rec: recs[i], reason: ReasonSink, err: f.Err}
				fail(recs[i], dl.detail(), safeMessage(f.Err))
				refused[i] = true
			}
		}
		seen := map[int]bool{}
		for _, r := range st.ptrs {
			i := findRecord(r)
			if i < 0 || refused[i] || seen[i] {
				continue
			}
			seen[i] = true
			out[i].Landed = append(out[i].Landed, l.sink)
		}
		for _, d := range st.decoders {
			d.Release()
		}
	}
	return out, nil
}

// coord is a record's source coordinates.
type coord struct {
	topic     string
	partition int32
	offset    int64
}

// write lands recs in l's sink: through its runner, or for a transactional kafka sink in a
// transaction of its own that commits no consumer offsets.
func (o *OneShot) write(ctx context.Context, l *lane, recs []*event.Record) ([]sinks.Failure, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	if l.txn == nil {
		return l.runner.Write(ctx, recs)
	}
	if err := l.txn.Begin(); err != nil {
		return nil, err
	}
	err := l.sinkW.Write(ctx, recs)
	var failures []sinks.Failure
	var be *sinks.BatchError
	switch {
	case err == nil:
	case errors.As(err, &be) && len(be.Retry) == 0 && be.Landed:
		for i, ferr := range be.Failed {
			failures = append(failures, sinks.Failure{Record: recs[i], Err: ferr})
		}
	case sinks.IsPermanent(err):
		for _, r := range recs {
			failures = append(failures, sinks.Failure{Record: r, Err: err})
		}
	default:
		_ = l.txn.Abort(ctx)
		return nil, err
	}
	if err := l.txn.Commit(ctx, kafkaconn.Member{}, nil); err != nil {
		return nil, err
	}
	return failures, nil
}

// Close flushes and closes the sinks.
func (o *OneShot) Close(ctx context.Context) error {
	var errs []error
	for _, l := range o.p.lanes {
		if l.runner != nil {
			if err := l.runner.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("pipeline %q sink %q: %w", o.p.name, l.sink, err))
			}
			l.runner = nil
		}
	}
	return errors.Join(errs...)
}

// LaneGroup is the consumer group of the pipeline's lane for sink: source.group (default
// switchyard.<pipeline>) plus "." and the sink's name.
func (cp *CompiledPipeline) LaneGroup(sink string) string {
	group := cp.Config.Source.Group
	if group == "" {
		group = "switchyard." + cp.Config.Name
	}
	return group + "." + sink
}

// Contract returns the contract a record of the pipeline is decoded with (by header, topic,
// then the default message), or nil.
func (cp *CompiledPipeline) Contract(r *kgo.Record) *contract.Contract {
	p := &pipeline{cp: cp}
	ct, err := p.contractFor(r)
	if err != nil {
		return nil
	}
	return ct
}

// ReadCommitted reports whether records for these sinks should be read read_committed, as
// their lanes read them: true when a sink writes in Kafka transactions (exactly_once).
func (o *OneShot) ReadCommitted() bool {
	for _, l := range o.lanes {
		if l.txn != nil {
			return true
		}
	}
	return false
}
