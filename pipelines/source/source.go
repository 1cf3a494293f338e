// Package source consumes Kafka topics as a consumer group and hands the records to the engine
// as watermill messages.
//
// Each message carries a Batch: contiguous records of one partition, taken from one fetch. The
// payload of the message is empty; BatchOf returns the batch, without copying. Acking a message
// says that every record of its batch is done; nacking it asks for the same batch again, after a
// backoff. Offsets are committed only as the contiguous acked prefix of each partition, so a
// record is never committed before it and every record before it were acked.
//
// One goroutine polls the client and queues fetched records per partition; one emits batches to
// the output channel; one per partition waits for the acks of its batches in order; one commits
// periodically. Per record the source does no allocation and no channel operation: all of that
// is per batch.
package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/internal/event"
)

const (
	// RecordOverhead is what MaxInFlightBytes counts for a record besides its key and value
	// (and Config.DecodedFactor): the kgo.Record (176 bytes) and its pointer, the handler's
	// event.Record and their share of the fetch and batch bookkeeping.
	RecordOverhead = 512
	// MinPartitionBytes is the smallest in-flight byte share of a partition.
	MinPartitionBytes = 256 << 10
)

// Defaults for the zero values of Config.
const (
	DefaultMaxInFlight    = 3500
	DefaultMaxBatch       = 1000
	DefaultDrainTimeout   = 30 * time.Second
	DefaultCommitInterval = time.Second
	DefaultLagInterval    = 5 * time.Second
	DefaultStallAfter     = 2 * time.Minute
)

// Where a group without committed offsets starts.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

const (
	// commitTimeout bounds one offset commit.
	commitTimeout = 10 * time.Second
	// fetchMaxWait is how long a broker holds a fetch that has no data. It is below franz-go's
	// 5s default because a resumed partition joins only the next fetch to its broker: with
	// the default, a paused busy partition could wait 5s behind an idle one.
	fetchMaxWait = 500 * time.Millisecond
)

// Config configures a Source. Zero values take the defaults above.
type Config struct {
	// Kafka holds the client options for the cluster (see kafkaconn.FranzOpts). The source adds
	// its group options after them; options here may tune fetching and logging.
	Kafka []kgo.Opt
	// Group is the consumer group id.
	Group string
	// Topics are the topics consumed.
	Topics []string
	// Start is where a partition without a committed offset starts: StartEarliest (the
	// default) or StartLatest.
	Start string
	// MaxInFlight is the most records of one partition handed out and not yet acked; it is
	// never exceeded. Fetching the partition pauses when its fetched-and-unacked records reach
	// the limit and resumes below it, so at most one fetch more is buffered.
	MaxInFlight int
	// MaxBatch is the most records in one message.
	MaxBatch int
	// MaxInFlightBytes, when positive, is the most bytes of fetched-and-unacked records
	// (key, value and RecordOverhead each) held over all of the source's partitions: each
	// partition pauses fetching at its share (MaxInFlightBytes over the assigned partitions,
	// at least MinPartitionBytes) and resumes below half of it. It also caps what one fetch
	// may return at a 32nd of it (FetchMaxBytes, and the per-partition fetch size at an
	// eighth of that), so that what still arrives after a pause (a fetch in flight and one buffered in
	// the client, each some five times its compressed size once decompressed into records)
	// stays a fraction of the budget.
	MaxInFlightBytes int64
	// DecodedFactor, when positive, makes MaxInFlightBytes also count DecodedFactor bytes per
	// byte of the value of each record handed out: the decoded message the handler keeps
	// until its sink has written it (hyperpb's arena of a BidPlaced is about 4.7 times its
	// payload). A partition hands out no batch while its handed-out records hold its share
	// (fetched records can be more: the broker returns a record batch whole). Zero for a
	// handler that lets go of the decoded message at once (a sink writing the record's bytes).
	DecodedFactor int
	// FetchMaxBytes is the most bytes one fetch returns; franz-go's default when zero.
	FetchMaxBytes int32
	// DrainTimeout bounds how long a revoke or Close waits for the acks of in-flight batches
	// before it commits what was acked. A revoke holds up the group's rebalance meanwhile, so
	// keep it below the group's rebalance timeout (franz-go's default: 60s).
	DrainTimeout time.Duration
	// CommitInterval is how often acked offsets are committed.
	CommitInterval time.Duration

	// OnAssigned, if set, is called with newly assigned partitions before any of their records
	// is emitted. It runs on its own goroutine; an error is logged and the call retried with
	// backoff (100ms doubling to 5s) until it succeeds or the partitions are revoked. Its
	// context is canceled when one of the partitions is revoked or the source closes; a revoke
	// waits for the call to return, so it must honor the context.
	OnAssigned func(ctx context.Context, partitions []event.TopicPartition) error
	// OnRevoked, if set, is called once partitions for which OnAssigned succeeded (all
	// partitions, without OnAssigned) are gone: after a revoke has drained and committed them,
	// after they were lost (without a commit), or at Close. No message of those partitions is
	// emitted afterwards; messages still unacked after a drain timeout or a loss may still be
	// in a handler, with their contexts canceled.
	OnRevoked func(ctx context.Context, partitions []event.TopicPartition)
	// LagInterval is how often OnLag reports every owned partition. Each report asks the
	// brokers for the partitions' high watermarks (one ListOffsets request per broker), so the
	// lag stays fresh while fetching is paused at MaxInFlight or by a failing OnAssigned.
	LagInterval time.Duration
	// StallAfter is how long a partition's committed offset may stay put while records wait
	// behind it (PartitionLag.Lag > 0) before the partition is reported Stalled. It is checked
	// every LagInterval, so a stall is seen up to one LagInterval late; an idle partition (lag
	// 0) never stalls.
	StallAfter time.Duration
	// OnLag, if set, is called every LagInterval for every owned partition, from one goroutine,
	// and once more with Released set when the partition is dropped (revoked, lost or closed);
	// nothing more is reported for that assignment afterwards. It must be fast and must not
	// call the Source.
	OnLag func(PartitionLag)
	// OnCommitFailed, if set, is called with every failed offset commit (periodic or final)
	// instead of logging it; the offsets are committed again at the next interval.
	OnCommitFailed func(error)
	// ExternalCommit is set when the caller commits each batch's offsets itself, before acking
	// it, in the transaction that wrote its results (see Fence): the source then never sends
	// offset commits, and only records the acked prefix as committed. Each partition then has
	// one batch in flight at a time, so a batch always starts at the committed offset.
	// Combine it with kgo.RequireStableFetchOffsets.
	ExternalCommit bool

	// Tap, if set, shares fetches with the other Sources on the same Tap (see Tap): the
	// Sources of one pipeline's lanes. It is ignored with ExternalCommit (each batch must
	// start at the committed offset, and transactional inputs are read committed).
	Tap *Tap
	// TapRank orders the Tap's Sources: on each partition the lowest rank among its owners
	// fetches for the others.
	TapRank int
	// TapFollowOnly keeps the Source from leading: it takes other Sources' fetches but
	// never fetches for them.
	TapFollowOnly bool
	// OnTapped, if set, is called with the number of records taken from another Source's
	// fetch, from that Source's poll loop. It must be fast.
	OnTapped func(records int)
}

// PartitionLag is one report of how far a partition is behind.
type PartitionLag struct {
	event.TopicPartition
	// HighWatermark is the partition's end offset, as the broker reported it for this report.
	HighWatermark int64
	// Committed is where a restart would resume: the offset this source last committed, or
	// the group's committed offset at assignment; without either, the first fetched offset,
	// else the log start offset (start earliest) or the high watermark (start latest).
	Committed int64
	// Lag is HighWatermark - Committed: the records a restart would consume again, the
	// number kafka-consumer-groups shows.
	Lag int64
	// FetchLag is HighWatermark minus the next offset to fetch: the records not fetched yet.
	FetchLag int64
	// Stalled is set while Committed has not moved for StallAfter although Lag > 0; Since is
	// when it last moved (or when Lag was last 0).
	Stalled bool
	Since   time.Time
	// Oldest is the Kafka timestamp of the oldest record fetched and not acknowledged yet
	// (the first of the unacked batch at the head, else of the first pending record); zero
	// with nothing pending.
	Oldest time.Time
	// Paused is set while fetching the partition is paused (at MaxInFlight, or waiting for
	// OnAssigned).
	Paused bool
	// Released marks the last report of a dropped partition; the other fields are zero.
	Released bool
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	var errs []error
	if out.Group == "" {
		errs = append(errs, errors.New("no consumer group"))
	}
	if len(out.Topics) == 0 {
		errs = append(errs, errors.New("no topics"))
	}
	switch out.Start {
	case "":
		out.Start = StartEarliest
	case StartEarliest, StartLatest:
	default:
		errs = append(errs, fmt.Errorf("start %q is neither %s nor %s", out.Start, StartEarliest, StartLatest))
	}
	if out.MaxInFlight < 0 || out.MaxBatch < 0 || out.MaxInFlightBytes < 0 || out.FetchMaxBytes < 0 || out.DrainTimeout < 0 || out.CommitInterval < 0 ||
		out.LagInterval < 0 || out.StallAfter < 0 {
		errs = append(errs, errors.New("negative limit"))
	}
	if out.MaxInFlight == 0 {
		out.MaxInFlight = DefaultMaxInFlight
	}
	if out.MaxBatch == 0 {
		out.MaxBatch = DefaultMaxBatch
	}
	if out.DrainTimeout == 0 {
		out.DrainTimeout = DefaultDrainTimeout
	}
	if out.CommitInterval == 0 {
		out.CommitInterval = DefaultCommitInterval
	}
	if out.LagInterval == 0 {
		out.LagInterval = DefaultLagInterval
	}
	if out.StallAfter == 0 {
		out.StallAfter = DefaultStallAfter
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("source config: %w", err)
	}
	return out, nil
}

// Batch is the unit of work of one message: contiguous records of one partition, in offset
// order, as franz-go returned them. It is shared, not copied: it must not be modified, and it
// is the same Batch when the message is redelivered after a nack.
type Batch struct {
	Topic     string
	Partition int32
	Records   []*kgo.Record

	p *partition // the assignment it was fetched under
}

// BatchOf returns the batch carried by a message the Source emitted, or nil for any other
// message. It looks the batch up in the message context, so it works on the message a watermill
// Router hands its handler (the router only adds values to that context).
func BatchOf(msg *message.Message) *Batch {
	b, _ := msg.Context().Value(batchKey{}).(*Batch)
	return b
}

type batchKey struct{}

// AttemptOf returns which delivery of its batch a message the Source emitted is: 1 for the
// first, 2 for the first redelivery after a nack, and so on; 0 for any other message.
func AttemptOf(msg *message.Message) int {
	a, _ := msg.Context().Value(attemptKey{}).(int)
	return a
}

type attemptKey struct{}

// msgCtx is a message's context: the context of one delivery of the batch, carrying the batch.
type msgCtx struct {
	context.Context
	b       *Batch
	attempt int
}

func (c *msgCtx) Value(key any) any {
	switch key.(type) {
	case batchKey:
		return c.b
	case attemptKey:
		return c.attempt
	}
	return c.Context.Value(key)
}

type tpKey struct {
	topic     string
	partition int32
}

// Source is a Kafka consumer-group source. It implements watermill's message.Subscriber with a
// single subscription. Its methods are safe for concurrent use.
type Source struct {
	cfg      Config
	log      *slog.Logger
	resumeAt int // fetching of a paused partition resumes at or below this many records

	out     chan *message.Message
	wake    chan struct{} // wakes the emitter; capacity 1
	closing chan struct{} // closed when Close begins
	done    chan struct{} // closed when Close has finished

	closeOnce sync.Once

	mu         sync.RWMutex
	subscribed bool
	closed     bool
	client     *kgo.Client
	fenceMu    sync.RWMutex    // held by Fence; onLost takes it before marking partitions lost
	base       context.Context // the subscription's values, without its cancellation
	parts      map[tpKey]*partition
	nparts     atomic.Int32 // len(parts), for the partitions' share of MaxInFlightBytes
	order      []*partition
	seq        uint64 // assignments so far

	hookCtx    context.Context // canceled when Close begins
	hookCancel context.CancelFunc
	pollCancel context.CancelFunc
	pollDone   chan struct{}
	emitDone   chan struct{}
	commitDone chan struct{}
	lagDone    chan struct{}

	lagMu      sync.Mutex // serializes OnLag reports with dropping partitions
	unfinished []Unfinished
	wg         sync.WaitGroup // trackers and OnAssigned runs

	commitMu sync.Mutex // serializes commits

	tap      *Tap         // Config.Tap, nil with ExternalCommit
	seekMu   sync.Mutex   // guards seeks and pollWake
	seeks    []*partition // partitions detached from the tap, for the poll loop to move
	pollWake context.CancelFunc

	member membership // what Confirm last learned from the group coordinator
}

var _ message.Subscriber = (*Source)(nil)

// New validates cfg and returns a Source. It does not connect: Subscribe joins the group.
// A nil log uses slog.Default.
func New(cfg Config, log *slog.Logger) (*Source, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Source{
		cfg:     c,
		log:     log.With("component", "source", "group", c.Group),
		out:     make(chan *message.Message),
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		parts:   make(map[tpKey]*partition),
	}
	if !c.ExternalCommit {
		s.tap = c.Tap
	}
	s.resumeAt = min(c.MaxInFlight-1, c.MaxInFlight-min(c.MaxBatch, c.MaxInFlight/2))
	s.hookCtx, s.hookCancel = context.WithCancel(context.Background())
	return s, nil
}

// Subscribe joins the consumer group and returns the channel of messages, one per batch. The
// topic argument is only a label: the source consumes Config.Topics. A Source has one
// subscription; a second Subscribe, or one after Close, is an error.
//
// Every message must be acked or nacked. Ack means every record of the batch is done. Nack
// redelivers the same batch in a new message after a jittered backoff (100ms doubling to 5s
// per consecutive nack on the partition), unless the partition was revoked meanwhile.
//
// Message contexts carry ctx's values but not its cancellation: a message's context is
// canceled once its ack or nack has been processed, when its partition is revoked or lost, or
// when Close has drained. Canceling ctx closes the Source, as Close does. The channel is
// closed when Close has finished.
func (s *Source) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("source closed")
	}
	if s.subscribed {
		return nil, errors.New("source already subscribed")
	}

	start := kgo.NewOffset().AtStart()
	if s.cfg.Start == StartLatest {
		start = kgo.NewOffset().AtEnd()
	}
	opts := []kgo.Opt{kgo.WithLogger(kgoLogger{s.log}), kgo.FetchMaxWait(fetchMaxWait)}
	opts = append(opts, s.cfg.Kafka...)
	fetchMax := int64(s.cfg.FetchMaxBytes)
	if b := s.cfg.MaxInFlightBytes; b > 0 {
		// One fetch response at most a 32nd of the budget (over all partitions), one
		// partition's part of it at most 1MiB (franz-go's default): what arrives after a
		// partition paused, a fetch in flight and one buffered, stays a fraction of it. A
		// fetch is compressed: decompressed into records (values, and a 176-byte kgo.Record
		// each) it takes some five times its size, and the first fetches after an assignment
		// arrive before any partition can pause.
		if fetchMax <= 0 {
			fetchMax = 50 << 20 // franz-go's default
		}
		fetchMax = min(fetchMax, max(b/32, 64<<10))
		// One partition's part at most an eighth of that: a partition pauses only after a
		// fetch of it arrived, so a fetch must be small against its share of the budget
		// (b over the partitions), or the count limit (MaxInFlight) is all that binds. The
		// broker still returns a first record batch larger than this.
		opts = append(opts, kgo.FetchMaxPartitionBytes(int32(min(1<<20, max(fetchMax/8, 64<<10)))))
	}
	if fetchMax > 0 {
		opts = append(opts, kgo.FetchMaxBytes(int32(min(fetchMax, 1<<31-1))))
	}
	opts = append(opts,
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(s.cfg.Topics...),
		kgo.ConsumeResetOffset(start),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
	)
	s.base = context.WithoutCancel(ctx)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("create kafka client for group %s: %w", s.cfg.Group, err)
	}
	s.client = cl
	s.subscribed = true

	var pollCtx context.Context
	pollCtx, s.pollCancel = context.WithCancel(context.Background())
	s.pollDone = make(chan struct{})
	s.emitDone = make(chan struct{})
	s.commitDone = make(chan struct{})
	s.lagDone = make(chan struct{})
	go s.pollLoop(pollCtx, cl)
	go s.emitLoop()
	go s.commitLoop()
	go s.lagLoop(cl)
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-s.closing:
		}
	}()
	return s.out, nil
}

// Close stops fetching, waits up to DrainTimeout for the acks of in-flight batches, commits
// the acked prefix of every partition, calls OnRevoked, leaves the group, closes the client and
// then the output channel. Messages still unacked after the drain are canceled (their contexts)
// and their records are consumed again by whoever owns the partition next.
//
// Close is idempotent and safe to call concurrently, including from a watermill Router that is
// reading the channel; every call blocks until the Source is closed. It returns nil.
func (s *Source) Close() error {
	s.closeOnce.Do(func() { go s.shutdown() })
	<-s.done
	return nil
}

func (s *Source) shutdown() {
	defer close(s.done)
	s.mu.Lock()
	s.closed = true
	cl := s.client
	s.mu.Unlock()
	close(s.closing)
	s.hookCancel()
	if cl == nil {
		close(s.out)
		return
	}

	cl.PauseFetchTopics(s.cfg.Topics...)
	s.pollCancel()
	<-s.pollDone
	<-s.emitDone
	<-s.commitDone
	<-s.lagDone

	s.mu.RLock()
	parts := slices.Clone(s.order)
	s.mu.RUnlock()
	unfinished := s.release(parts, true)
	s.mu.Lock()
	s.unfinished = unfinished
	s.mu.Unlock()

	// Leaving the group revokes what we own; we own nothing any more, so that is a no-op.
	cl.CloseAllowingRebalance()
	s.wg.Wait()
	close(s.out)
	s.log.Info("source closed")
}

// Unfinished is a partition whose emitted records were not all committed when the Source
// closed: the drain timed out, a batch was nacked, or the final commit failed.
type Unfinished struct {
	event.TopicPartition
	// Committed is the offset the next owner resumes from; -1 if this source committed none.
	Committed int64
	// Records counts the emitted records past Committed: they will be consumed again.
	Records int64
}

// Unfinished returns, once Close has returned, the partitions that Close could not finish,
// in assignment order; nil when every emitted record was acked and committed.
func (s *Source) Unfinished() []Unfinished {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.unfinished)
}

// isClosing reports whether Close has begun.
func (s *Source) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

func (s *Source) wakeEmitter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// kgoLogger sends franz-go's logs to slog: its info logs (group membership chatter) at debug.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	}
	l.log.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}
