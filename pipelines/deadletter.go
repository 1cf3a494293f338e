package pipelines

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/deadletter"
	"github.com/switchyard-dev/switchyard/internal/kafkaconn"
	"github.com/switchyard-dev/switchyard/internal/telemetry"
	"github.com/switchyard-dev/switchyard/sinks"
)

// Reason is the class of a dead-lettering, the value of the switchyard.error.class header and
// the reason label of switchyard_events_dead_lettered_total.
type Reason string

const (
	ReasonDecode    Reason = deadletter.ClassDecode    // the payload is not a message of its contract
	ReasonFraming   Reason = deadletter.ClassFraming   // the Confluent frame is malformed or names another schema or message
	ReasonValidate  Reason = deadletter.ClassValidate  // the message breaks its contract's rules
	ReasonRoute     Reason = deadletter.ClassRoute     // a route condition could not be evaluated
	ReasonTransform Reason = deadletter.ClassTransform // a route's transforms could not be applied
	ReasonSink      Reason = deadletter.ClassSink      // the sink refused the event permanently
)

// Dead-letter headers added to the original record's headers; package deadletter is their
// home, shared with client/consumer and switchyard tail.
const (
	HeaderClass        = deadletter.HeaderClass
	HeaderMessage      = deadletter.HeaderMessage
	HeaderContract     = deadletter.HeaderContract
	HeaderPipeline     = deadletter.HeaderPipeline
	HeaderSink         = deadletter.HeaderSink
	HeaderRoute        = deadletter.HeaderRoute
	HeaderTopic        = deadletter.HeaderTopic
	HeaderPartition    = deadletter.HeaderPartition
	HeaderOffset       = deadletter.HeaderOffset
	HeaderAttempts     = deadletter.HeaderAttempts
	HeaderReason       = deadletter.HeaderReason
	HeaderValueDropped = deadletter.HeaderValueDropped
	HeaderValueSize    = deadletter.HeaderValueSize
	HeaderValueSHA256  = deadletter.HeaderValueSHA256
)

// CauseTooLarge is the reason of events refused for their size: larger than the pipeline's
// max_event_bytes (class decode) or than a sink accepts (class sink).
const CauseTooLarge = "too_large"

// deadLetter is one event bound for the dead-letter topic.
type deadLetter struct {
	rec      *kgo.Record
	reason   Reason
	err      error
	contract string
	sink     string
	route    string
	attempts int
	cause    string // finer reason than the class, if any (see HeaderReason)
}

// detail is the dead letter's reason: its cause, too_large for size refusals, else its class.
func (dl *deadLetter) detail() string {
	switch {
	case dl.cause != "":
		return dl.cause
	case errors.Is(dl.err, sinks.ErrTooLarge):
		return CauseTooLarge
	}
	return string(dl.reason)
}

// deadLetterer writes dead letters synchronously: a batch's dead letters are acknowledged by
// Kafka before the batch is acknowledged to the source, so its offsets never commit past an
// event that is neither landed nor dead-lettered.
type deadLetterer struct {
	prod     *kafkaconn.Producer
	pipeline string
	topic    string
	maxBytes int // the producer's max_record_bytes
	log      *slog.Logger
	metrics  *telemetry.Metrics
	limit    *telemetry.Limiter // dead-letter log lines, per reason
	count    atomic.Int64
	recent   recentDeadLetters // for the status page
}

// write produces dls and returns once Kafka acknowledged all of them. On error nothing may
// be assumed written; the caller nacks the batch so it is redelivered.
//
// A dead letter larger than the producer accepts (or than the topic accepts, as the broker
// says) is written without its value, with its size and SHA-256 and the source coordinates,
// so that no event can hold its partition: it can still be found and replayed from the
// source topic.
func (d *deadLetterer) write(ctx context.Context, dls []deadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	if d.prod == nil {
		return errors.New("no dead-letter producer")
	}
	if err := d.produce(ctx, d.prod, dls); err != nil {
		return err
	}
	d.written(dls)
	return nil
}

// produce writes dls through prod (the dead-letter producer, or an exactly-once lane's
// transactional producer) and returns once all are acknowledged.
func (d *deadLetterer) produce(ctx context.Context, prod *kafkaconn.Producer, dls []deadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	recs := make([]kgo.Record, len(dls))
	out := make([]*kgo.Record, len(dls))
	for i := range dls {
		recs[i] = d.record(&dls[i])
		if d.maxBytes > 0 && recordSize(&recs[i]) > d.maxBytes {
			dropValue(&recs[i])
		}
		out[i] = &recs[i]
	}
	failed := prod.Produce(ctx, out)
	var again []*kgo.Record
	for i, err := range failed {
		if !errors.Is(err, kafkaconn.ErrTooLarge) || dropped(out[i]) {
			return fmt.Errorf("%d of %d dead letters not acknowledged (record %d: %w)", len(failed), len(out), i, err)
		}
		dropValue(out[i])
		again = append(again, out[i])
	}
	if err := prod.ProduceAll(ctx, again); err != nil {
		return fmt.Errorf("dead letters without their values: %w", err)
	}
	return nil
}

// written counts and logs dead letters that Kafka acknowledged (or whose transaction
// committed).
func (d *deadLetterer) written(dls []deadLetter) {
	d.count.Add(int64(len(dls)))
	for i := range dls {
		dl := &dls[i]
		telemetry.DeadLettered(d.log, d.metrics, d.limit, d.pipeline, dl.detail(), dl.route, dl.rec.Topic, dl.rec.Partition, dl.rec.Offset, dl.contract, dl.sink, safeMessage(dl.err))
		d.recent.add(dl.detail())
	}
}

// record is dl as it is written to the dead-letter topic: the original key, value and
// headers plus the switchyard.* headers.
func (d *deadLetterer) record(dl *deadLetter) kgo.Record {
	h := make([]kgo.RecordHeader, 0, len(dl.rec.Headers)+11)
	h = append(h, dl.rec.Headers...)
	h = append(h,
		kgo.RecordHeader{Key: HeaderClass, Value: []byte(dl.reason)},
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(dl.detail())},
		kgo.RecordHeader{Key: HeaderMessage, Value: []byte(safeMessage(dl.err))},
		kgo.RecordHeader{Key: HeaderContract, Value: []byte(dl.contract)},
		kgo.RecordHeader{Key: HeaderPipeline, Value: []byte(d.pipeline)},
		kgo.RecordHeader{Key: HeaderSink, Value: []byte(dl.sink)},
		kgo.RecordHeader{Key: HeaderRoute, Value: []byte(dl.route)},
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(dl.rec.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(dl.rec.Partition), 10)},
		kgo.RecordHeader{Key: HeaderOffset, Value: strconv.AppendInt(nil, dl.rec.Offset, 10)},
		kgo.RecordHeader{Key: HeaderAttempts, Value: strconv.AppendInt(nil, int64(max(dl.attempts, 1)), 10)},
	)
	return kgo.Record{Topic: d.topic, Key: dl.rec.Key, Value: dl.rec.Value, Headers: h}
}

// recordSize over-estimates the bytes r takes in a record batch (before compression),
// including the batch's own header, as the producer's max_record_bytes counts them.
func recordSize(r *kgo.Record) int {
	n := 61 + 21 + len(r.Key) + len(r.Value) // batch header; record length, attributes, deltas
	for _, h := range r.Headers {
		n += 10 + len(h.Key) + len(h.Value)
	}
	return n
}

// dropValue removes r's value and says what it was.
func dropValue(r *kgo.Record) {
	sum := sha256.Sum256(r.Value)
	r.Headers = append(r.Headers,
		kgo.RecordHeader{Key: HeaderValueDropped, Value: []byte("true")},
		kgo.RecordHeader{Key: HeaderValueSize, Value: strconv.AppendInt(nil, int64(len(r.Value)), 10)},
		kgo.RecordHeader{Key: HeaderValueSHA256, Value: []byte(hex.EncodeToString(sum[:]))},
	)
	r.Value = nil
}

func dropped(r *kgo.Record) bool {
	for _, h := range r.Headers {
		if h.Key == HeaderValueDropped {
			return true
		}
	}
	return false
}

// safeMessage renders err for a header or a log line: one line, bounded. Contract errors
// name fields and rules, never values (see contract.ValidationError).
func safeMessage(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 1024 {
		s = s[:1024] + "…"
	}
	return s
}
