package pipelines

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/backoff"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/internal/kafkaconn"
	"github.com/switchyard-dev/switchyard/internal/telemetry"
	"github.com/switchyard-dev/switchyard/pipelines/source"
	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/registry"
)

// Options are the engine's collaborators.
type Options struct {
	Logger  *slog.Logger
	Metrics *telemetry.Metrics
	// NewSink builds a sink; nil uses the registered kinds (see NewSink).
	NewSink func(ctx context.Context, sc *config.Sink, deps SinkDeps) (sinks.Sink, error)
}

// SinkDeps is what a sink constructor gets from the engine.
type SinkDeps = registry.Deps

// Engine runs every pipeline of a compiled configuration.
type Engine struct {
	c       *Compiled
	log     *slog.Logger
	metrics *telemetry.Metrics
	opt     Options

	franz []kgo.Opt
	dlq   *kafkaconn.Producer

	pipelines []*pipeline
	limit     *telemetry.Limiter // repeating failure lines

	mu       sync.Mutex
	running  sync.WaitGroup // lanes' routers
	starting sync.WaitGroup // lanes retrying their start
	stopping chan struct{}  // closed when Shutdown begins
	ready    bool
	stopped  bool
}

type pipeline struct {
	e     *Engine
	cp    *CompiledPipeline
	name  string
	dlq   *deadLetterer
	brk   *breaker // nil when dead_letter.breaker is disabled
	lanes []*lane
	// verdicts shares valid verdicts between the lanes (nil with one lane).
	verdicts *verdicts
	// tap shares the lanes' fetches (nil with one lane).
	tap *source.Tap
	// shared counts validations a lane skipped because another lane had validated the record.
	shared prometheus.Counter
	// borrowed counts decodes a lane skipped by reading another lane's decoded message.
	borrowed prometheus.Counter
}

// contractFor picks the contract of a record: by header value, then by topic, then the
// pipeline's default message.
func (p *pipeline) contractFor(r *kgo.Record) (*contract.Contract, error) {
	cp := p.cp
	if cp.header != "" {
		for _, h := range r.Headers {
			if h.Key == cp.header {
				if ct := cp.byHeader[string(h.Value)]; ct != nil {
					return ct, nil
				}
				break
			}
		}
	}
	if ct := cp.byTopic[r.Topic]; ct != nil {
		return ct, nil
	}
	if cp.fallback != nil {
		return cp.fallback, nil
	}
	return nil, &contract.DecodeError{Reason: "contract", Err: fmt.Errorf("no contract for topic %q (header %q)", r.Topic, cp.header)}
}

// New builds the engine. Nothing connects until Start.
func New(c *Compiled, opt Options) (*Engine, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Metrics == nil {
		opt.Metrics = telemetry.New()
	}
	if opt.NewSink == nil {
		opt.NewSink = NewSink
	}
	franz, err := kafkaconn.FranzOpts(c.Config.Kafka)
	if err != nil {
		return nil, err
	}
	e := &Engine{c: c, log: opt.Logger, metrics: opt.Metrics, opt: opt, franz: franz,
		limit: telemetry.NewLimiter(telemetry.LogInterval)}
	for _, cp := range c.Pipelines {
		for _, r := range cp.Routes {
			for _, ch := range r.chains {
				if reason, ok := ch.RawPIIGrant(); ok {
					e.log.Warn("route sees raw personal data", "pipeline", cp.Config.Name, "route", r.Name, "sink", r.Sink, "reason", reason)
					break
				}
			}
		}
		p := &pipeline{e: e, cp: cp, name: cp.Config.Name}
		p.dlq = &deadLetterer{pipeline: p.name, topic: cp.Config.DeadLetter.Topic, log: e.log, metrics: e.metrics,
			maxBytes: e.producerOptions("").MaxRecordBytes, limit: telemetry.NewLimiter(telemetry.LogInterval)}
		var sinkNames []string
		for i := range cp.Config.Sinks {
			sinkNames = append(sinkNames, cp.Config.Sinks[i].Name)
		}
		p.brk = newBreaker(p.name, cp.Config.DeadLetter.Breaker, sinkNames, e.log, e.metrics)
		for i := range cp.Config.Sinks {
			sc := &cp.Config.Sinks[i]
			l := &lane{p: p, sink: sc.Name, index: i, primary: i == 0,
				log: e.log.With("pipeline", p.name, "sink", sc.Name)}
			for _, r := range cp.Routes {
				if r.Sink == sc.Name {
					l.routes = append(l.routes, r)
				} else {
					l.others = append(l.others, r)
				}
			}
			m := e.metrics
			l.landed = m.Landed.WithLabelValues(p.name, sc.Name)
			l.paced = m.PaceSeconds.WithLabelValues(p.name, sc.Name)
			l.skipped = m.DecodesSkipped.WithLabelValues(p.name, sc.Name)
			l.tapped = m.FetchesShared.WithLabelValues(p.name, sc.Name)
			l.consumed = m.Consumed.WithLabelValues(p.name)
			l.unrouted = m.Unrouted.WithLabelValues(p.name)
			l.batchRec = m.BatchRecords.WithLabelValues(p.name, sc.Name)
			l.writeSec = m.WriteSeconds.WithLabelValues(p.name, sc.Name)
			l.landLat = m.LandLatency.WithLabelValues(p.name, sc.Name)
			l.sinkUp = m.SinkUp.WithLabelValues(p.name, sc.Name)
			l.slo = newLaneSLO(m, cp.Config, sc)
			p.lanes = append(p.lanes, l)
		}
		// Two source.max_in_flight per partition: lanes that move together are never further
		// apart than that; one that is further behind validates for itself.
		p.verdicts = newVerdicts(len(p.lanes), 2*cp.Config.Source.MaxInFlight, pacePatience(cp.Config))
		if len(p.lanes) > 1 {
			p.tap = source.NewTap(pacePatience(cp.Config))
		}
		p.shared = e.metrics.SharedValidations.WithLabelValues(p.name)
		p.borrowed = e.metrics.SharedDecodes.WithLabelValues(p.name)
		e.pipelines = append(e.pipelines, p)
	}
	return e, nil
}

// pacePatience is how long a lane waits for a slower lane of its pipeline (verdictRing.pace),
// and how long a lane may go without processing a batch of a partition before the others stop
// waiting for it there: a second more than the longest batch interval of the pipeline's sinks
// (a lane whose in-flight records all sit in a filling batch processes nothing until it is
// written), with a floor of two seconds.
func pacePatience(pc *config.Pipeline) time.Duration {
	longest := time.Duration(0)
	for i := range pc.Sinks {
		longest = max(longest, pc.Sinks[i].Batch.Interval)
	}
	return max(2*time.Second, longest+time.Second)
}

// laneBudget is a lane's byte budget for its in-flight records (source.Config.MaxInFlightBytes,
// and the cap on its sink batches over max_in_flight): a quarter of its even share of half of
// memory_limit; 0 without a memory_limit. The rest of the limit is headroom for what the
// records become while in flight (decoded messages, sink encodings), client buffers and the
// garbage collector.
func (e *Engine) laneBudget() int64 {
	limit := int64(e.c.Config.MemoryLimit)
	if limit <= 0 {
		return 0
	}
	lanes := 0
	for _, p := range e.pipelines {
		lanes += len(p.lanes)
	}
	return max(limit/2/int64(max(1, lanes))/4, 1<<20)
}

// Start opens the dead-letter producer and every sink, then starts every lane. A sink that
// fails to open stops only its own lane: it is logged, switchyard_sink_up reads 0, and the
// engine tries again in the background with backoff until it opens or Shutdown begins.
func (e *Engine) Start(ctx context.Context) error {
	dlq, err := kafkaconn.NewProducer(e.franz, e.producerOptions("dead-letter"))
	if err != nil {
		return fmt.Errorf("connect dead-letter producer: %w", err)
	}
	e.dlq = dlq
	e.stopping = make(chan struct{})
	for _, p := range e.pipelines {
		p.dlq.prod = dlq
		for i, l := range p.lanes {
			sc := &p.cp.Config.Sinks[i]
			err := e.startLane(ctx, p, l, sc)
			l.slo.setStarted(err)
			if err != nil {
				telemetry.SinkStopped(e.log, e.metrics, p.name, sc.Name, err)
				e.starting.Go(func() { e.retryLane(p, l, sc) })
			}
		}
	}
	e.running.Go(e.summarizeDeadLetters)
	e.mu.Lock()
	e.ready = true
	e.mu.Unlock()
	return nil
}

// summarizeDeadLetters logs, every telemetry.LogInterval until Shutdown begins, how many
// dead-letter lines each pipeline's limiter suppressed (telemetry.DeadLetteredSummary).
func (e *Engine) summarizeDeadLetters() {
	t := time.NewTicker(telemetry.LogInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stopping:
			for _, p := range e.pipelines {
				telemetry.DeadLetteredSummary(e.log, p.dlq.limit)
			}
			return
		case <-t.C:
			for _, p := range e.pipelines {
				telemetry.DeadLetteredSummary(e.log, p.dlq.limit)
			}
		}
	}
}

// retryLane starts a lane whose sink failed to start, with backoff, until it starts or the
// engine stops.
func (e *Engine) retryLane(p *pipeline, l *lane, sc *config.Sink) {
	for attempt := 1; ; attempt++ {
		select {
		case <-e.stopping:
			return
		case <-time.After(backoff.Wait(attempt, time.Second, 2*time.Minute)):
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := e.startLane(ctx, p, l, sc)
		cancel()
		l.slo.setStarted(err)
		if err == nil {
			l.log.Info("sink started after retrying", "attempts", attempt+1)
			return
		}
		telemetry.SinkStopped(e.log, e.metrics, p.name, sc.Name, err)
	}
}

func (e *Engine) startLane(ctx context.Context, p *pipeline, l *lane, sc *config.Sink) error {
	src := p.cp.Config.Source
	group := src.Group
	if group == "" {
		group = "switchyard." + p.name
	}
	group += "." + sc.Name
	po := e.producerOptions(p.name + "." + sc.Name)
	po.TransactionalID = transactionalID(group, src.InstanceID)
	deps := SinkDeps{
		Deps:      sinks.Deps{Pipeline: p.name, Sink: sc.Name, Schema: p.cp.Schemas[sc.Name], Logger: l.log},
		Kafka:     e.c.Config.Kafka,
		KafkaOpts: e.franz,
		Producer:  po,
		Input:     p.cp.Encoding,
	}
	s, err := e.opt.NewSink(ctx, sc, deps)
	if err != nil {
		return err
	}
	if o, ok := s.(sinks.Opener); ok {
		if err := o.Open(ctx); err != nil {
			_ = s.Close(ctx)
			return fmt.Errorf("open: %w", err)
		}
	}
	if pw, ok := s.(sinks.PayloadWriter); ok {
		l.payload = pw.WritesPayload()
	}
	l.blind = l.isBlind()
	p.verdicts.started(l.index, !l.blind)
	budget := e.laneBudget()
	maxBytes := int64(sc.Batch.MaxBytes)
	if budget > 0 {
		// The runner counts payload bytes; the budget counts a record handed out as its
		// payload and, when the sink reads decoded messages, decodedFactor times it more: a
		// batch holds at most its part of the budget in the same units, so batches fill
		// before the source stops handing out records.
		maxBytes = min(maxBytes, max(budget/int64(max(1, sc.MaxInFlight))/int64(1+l.decodedFactor()), 64<<10))
	}
	l.runner = sinks.NewRunner(s, sinks.RunnerOptions{
		MaxRows:        sc.Batch.MaxRows,
		MaxBytes:       maxBytes,
		Interval:       sc.Batch.Interval,
		MaxInFlight:    sc.MaxInFlight,
		MaxAttempts:    sc.Retry.MaxAttempts,
		InitialBackoff: sc.Retry.InitialBackoff,
		MaxBackoff:     sc.Retry.MaxBackoff,
		// Write only while the lane's group membership is confirmed: a process resumed after a
		// pause past the session timeout must not land batches of partitions that other
		// instances took over meanwhile (see source.Source.Confirm).
		Guard:    func(ctx context.Context) error { return l.src.Confirm(ctx) },
		Observer: observer{l},
		Logger:   l.log,
	})
	var listener sinks.AssignmentListener
	if al, ok := s.(sinks.AssignmentListener); ok {
		listener = al
	}
	kopts := append([]kgo.Opt{}, e.franz...)
	if src.SessionTimeout > 0 {
		kopts = append(kopts, kgo.SessionTimeout(src.SessionTimeout), kgo.HeartbeatInterval(max(src.SessionTimeout/5, 100*time.Millisecond)))
	}
	if src.InstanceID != "" {
		kopts = append(kopts, kgo.InstanceID(src.InstanceID+"."+sc.Name))
	}
	kopts = append(kopts, kafkaconn.ClientMetrics(e.metrics.Registry, "source."+p.name+"."+sc.Name))
	l.txn, l.retry = nil, sc.Retry
	if t, ok := s.(transactional); ok && t.Transactions() != nil {
		// Exactly once: each batch commits its offsets in its own transaction, so a batch must
		// start at the committed offset (the source's ExternalCommit: one batch per partition
		// in flight), a new owner must wait for pending transactional offsets, and
		// transactional inputs are read committed.
		l.txn, l.sinkW = t.Transactions(), s
		kopts = append(kopts, kgo.RequireStableFetchOffsets(), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	l.src, err = source.New(source.Config{
		Kafka:         kopts,
		FetchMaxBytes: int32(min(int64(src.FetchMaxBytes), 1<<31-1)),
		Group:         group,
		Topics:        src.Topics,
		Start:         src.Start,
		MaxInFlight:   src.MaxInFlight,
		MaxBatch:      src.MaxBatch,
		// The lane's records in flight: fetched, decoded, in sink batches (docs/ARCHITECTURE.md).
		MaxInFlightBytes: budget,
		DecodedFactor:    l.decodedFactor(),
		ExternalCommit:   l.txn != nil,
		// Lanes that decode lead the shared fetch: the lanes that route from bytes trail
		// them anyway (verdicts.pace). Lanes that all route from bytes fetch for
		// themselves (docs/ARCHITECTURE.md, One fetch for the lanes).
		Tap:            p.tap,
		TapRank:        l.index,
		TapFollowOnly:  l.blind,
		OnTapped:       func(n int) { l.tapped.Add(float64(n)) },
		DrainTimeout:   src.DrainTimeout,
		LagInterval:    src.LagInterval,
		StallAfter:     src.StallAfter,
		OnLag:          l.onLag,
		OnCommitFailed: func(err error) { telemetry.OffsetCommitFailed(l.log, e.metrics, p.name, sc.Name, err) },
		OnAssigned: func(ctx context.Context, tps []event.TopicPartition) error {
			if listener != nil {
				return listener.Assigned(ctx, tps)
			}
			return nil
		},
		OnRevoked: func(ctx context.Context, tps []event.TopicPartition) {
			// The partitions' batches are canceled: the runner starts no write of them any
			// more. Hand them over only once the writes under way have ended, so that the next
			// owner (which resumes at our last commit) does not race them into the sink.
			if l.txn == nil {
				if err := l.runner.WaitIdle(ctx, tps); err != nil {
					l.log.Warn("revoked partitions handed over with a write still under way; the next owner may land some records twice", "error", err)
				}
			}
			if listener != nil {
				listener.Revoked(ctx, tps)
			}
		},
	}, l.log)
	if err != nil {
		_ = l.runner.Close(ctx)
		return err
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: src.DrainTimeout + 5*time.Second},
		watermill.NewSlogLoggerWithLevelMapping(slog.New(quietHandler{l.log.Handler()}), map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}))
	if err != nil {
		return err
	}
	router.AddConsumerHandler(p.name+"/"+sc.Name, p.name, l.src, p.brk.gate(sc.Name, e.stopping, l.handleReported))
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		_ = l.runner.Close(ctx)
		return errors.New("engine is shutting down")
	}
	l.router = router
	e.mu.Unlock()
	e.metrics.SinkUp.WithLabelValues(p.name, sc.Name).Set(1)
	e.running.Go(func() {
		if err := router.Run(context.Background()); err != nil {
			l.log.Error("lane stopped", "error", err)
		}
	})
	<-router.Running()
	return nil
}

// transactional is implemented by sinks that write in Kafka transactions with the consumed
// offsets (the kafka sink with exactly_once); Transactions returns nil when they do not.
type transactional interface {
	Transactions() *kafkaconn.Producer
}

// transactionalID names the transactional producer of one lane instance: stable across
// restarts with static membership, so a restarted process fences its predecessor's producer
// at once; otherwise unique per start (the broker aborts a crashed process's open transaction
// after transaction_timeout).
func transactionalID(group, instanceID string) string {
	if instanceID != "" {
		return group + "." + instanceID
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s.%s.%d.%x", group, host, os.Getpid(), rand.Uint32())
}

// producerOptions are the producer settings of the configuration, with client metrics
// labelled name.
func (e *Engine) producerOptions(name string) kafkaconn.ProducerOptions {
	pc := e.c.Config.Kafka.Producer
	return kafkaconn.ProducerOptions{
		MaxRecordBytes:  int(pc.MaxRecordBytes),
		DeliveryTimeout: pc.DeliveryTimeout,
		Metrics:         e.metrics.Registry,
		Name:            name,
	}
}

// Ready reports whether Start finished and Shutdown has not begun.
func (e *Engine) Ready() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ready && !e.stopped
}

// Shutdown stops fetching, lets in-flight batches finish (bounded by each source's
// drain_timeout), flushes sinks, commits what was acknowledged, and closes everything. When a
// lane could not commit every record it had handed out, the error includes a *DrainError
// listing those partitions.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return nil
	}
	e.stopped = true
	e.mu.Unlock()
	if e.stopping != nil {
		close(e.stopping)
	}
	e.starting.Wait()
	var (
		errs      []error
		errMu     sync.Mutex
		wg        sync.WaitGroup
		undrained []Undrained
	)
	fail := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
	}
	for _, p := range e.pipelines {
		for _, l := range p.lanes {
			if l.router == nil {
				continue
			}
			wg.Go(func() {
				// Closing the router closes the source: it stops fetching, waits for in-flight
				// acks, commits and leaves the group; the router waits for running handlers.
				if err := l.router.Close(); err != nil {
					fail(fmt.Errorf("pipeline %q sink %q: %w", p.name, l.sink, err))
				}
				_ = l.src.Close() // returns once closed, if the router gave up waiting for it
				errMu.Lock()
				for _, u := range l.src.Unfinished() {
					undrained = append(undrained, Undrained{Pipeline: p.name, Sink: l.sink, Unfinished: u})
				}
				errMu.Unlock()
				if err := l.runner.Close(ctx); err != nil {
					fail(fmt.Errorf("pipeline %q sink %q: %w", p.name, l.sink, err))
				}
			})
		}
	}
	wg.Wait()
	e.running.Wait()
	if len(undrained) > 0 {
		errs = append(errs, &DrainError{Partitions: undrained})
	}
	if e.dlq != nil {
		if err := e.dlq.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close dead-letter producer: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) sinkFailing(pipeline, sink string, n, attempt int, err error) {
	telemetry.SinkFailing(e.log, e.metrics, pipeline, sink, n, attempt, err)
}

// Stats is a snapshot of one pipeline's counters, for progress lines.
type Stats struct {
	Pipeline     string
	Consumed     int64
	Landed       map[string]int64 // by sink
	DeadLettered int64
}

// Stats returns a snapshot per pipeline.
func (e *Engine) Stats() []Stats {
	var out []Stats
	for _, p := range e.pipelines {
		s := Stats{Pipeline: p.name, Landed: map[string]int64{}}
		for _, l := range p.lanes {
			if l.primary {
				s.Consumed = l.nConsumed.Load()
			}
			s.Landed[l.sink] = l.nLanded.Load()
		}
		s.DeadLettered = p.dlq.count.Load()
		out = append(out, s)
	}
	return out
}

// NewSink builds a sink with the constructor its kind registered (switchyard/sinks/registry);
// the composition root imports switchyard/sinks/all to register the kinds Switchyard ships.
func NewSink(ctx context.Context, sc *config.Sink, deps SinkDeps) (sinks.Sink, error) {
	return registry.New(ctx, sc, deps)
}

// quietHandler demotes watermill's "Handler returned error" to debug: the lane logs its own
// failures, at WARN or ERROR and rate limited (sink write failed, per attempt, from the runner;
// dead-letter write failed and batch redelivered again, from lane.handleReported), while the
// router would log every handed-back batch again at error level, without its offsets.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && r.Message == "Handler returned error" {
		r.Level = slog.LevelDebug
		if !h.Handler.Enabled(ctx, r.Level) {
			return nil
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(attrs)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}
