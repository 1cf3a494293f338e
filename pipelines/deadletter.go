package pipelines

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"switchyard/internal/telemetry"
	"switchyard/sinks"
	sinkkafka "switchyard/sinks/kafka"
)

// Reason is the class of a dead-lettering, the value of the switchyard.error.class header and
// the reason label of switchyard_events_dead_lettered_total.
type Reason string

const (
	ReasonDecode    Reason = "decode"    // the payload is not a message of its contract
	ReasonFraming   Reason = "framing"   // the Confluent frame is malformed or names another schema or message
	ReasonValidate  Reason = "validate"  // the message breaks its contract's rules
	ReasonRoute     Reason = "route"     // a route condition could not be evaluated
	ReasonTransform Reason = "transform" // a route's transforms could not be applied
	ReasonSink      Reason = "sink"      // the sink refused the event permanently
)

// Dead-letter headers added to the original record's headers.
const (
	HeaderClass     = "switchyard.error.class"
	HeaderMessage   = "switchyard.error.message"
	HeaderContract  = "switchyard.contract"
	HeaderPipeline  = "switchyard.pipeline"
	HeaderSink      = "switchyard.sink"
	HeaderRoute     = "switchyard.route"
	HeaderTopic     = "switchyard.source.topic"
	HeaderPartition = "switchyard.source.partition"
	HeaderOffset    = "switchyard.source.offset"
	HeaderAttempts  = "switchyard.attempts"
)

// deadLetter is one event bound for the dead-letter topic.
type deadLetter struct {
	rec      *kgo.Record
	reason   Reason
	err      error
	contract string
	sink     string
	route    string
	attempts int
}

// deadLetterer writes dead letters synchronously: a batch's dead letters are acknowledged by
// Kafka before the batch is acknowledged to the source, so its offsets never commit past an
// event that is neither landed nor dead-lettered.
type deadLetterer struct {
	prod     *sinkkafka.Producer
	pipeline string
	topic    string
	log      *slog.Logger
	metrics  *telemetry.Metrics
	count    atomic.Int64
}

// write publishes dls and returns once Kafka acknowledged all of them. On error nothing may
// be assumed written; the caller nacks the batch so it is redelivered.
func (d *deadLetterer) write(ctx context.Context, dls []deadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	if d.prod == nil {
		return errors.New("no dead-letter producer")
	}
	out := make([]sinkkafka.Outgoing, len(dls))
	for i, dl := range dls {
		h := make([]sinks.Header, 0, len(dl.rec.Headers)+10)
		for _, rh := range dl.rec.Headers {
			h = append(h, sinks.Header{Key: rh.Key, Value: rh.Value})
		}
		h = append(h,
			sinks.Header{Key: HeaderClass, Value: []byte(dl.reason)},
			sinks.Header{Key: HeaderMessage, Value: []byte(safeMessage(dl.err))},
			sinks.Header{Key: HeaderContract, Value: []byte(dl.contract)},
			sinks.Header{Key: HeaderPipeline, Value: []byte(d.pipeline)},
			sinks.Header{Key: HeaderSink, Value: []byte(dl.sink)},
			sinks.Header{Key: HeaderRoute, Value: []byte(dl.route)},
			sinks.Header{Key: HeaderTopic, Value: []byte(dl.rec.Topic)},
			sinks.Header{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(dl.rec.Partition), 10)},
			sinks.Header{Key: HeaderOffset, Value: strconv.AppendInt(nil, dl.rec.Offset, 10)},
			sinks.Header{Key: HeaderAttempts, Value: strconv.AppendInt(nil, int64(max(dl.attempts, 1)), 10)},
		)
		out[i] = sinkkafka.Outgoing{Topic: d.topic, Key: dl.rec.Key, Value: dl.rec.Value, Headers: h}
	}
	if err := d.prod.ProduceAll(ctx, out); err != nil {
		return err
	}
	d.count.Add(int64(len(dls)))
	for _, dl := range dls {
		telemetry.DeadLettered(d.log, d.metrics, d.pipeline, string(dl.reason), dl.rec.Topic, dl.rec.Partition, dl.rec.Offset, dl.contract, dl.sink, safeMessage(dl.err))
	}
	return nil
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
