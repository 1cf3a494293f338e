package telemetry

import (
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// DeadLettered counts one event written to the dead-letter topic and logs it at WARN, rate
// limited per pipeline and reason by lim: the first line passes, then one per interval with
// the number suppressed since the previous one (the counter counts every event). message must
// not contain payload values (what the dead letter's switchyard.error.message header holds: field paths and rules, never values).
func DeadLettered(log *slog.Logger, m *Metrics, lim *Limiter, pipeline, reason, route, topic string, partition int32, offset int64, contract, sink, message string) {
	if m != nil {
		m.DeadLettered.WithLabelValues(pipeline, reason, route, sink).Inc()
	}
	if ok, n := lim.Allow("deadletter\x00" + pipeline + "\x00" + reason); ok {
		log.Warn("dead-lettered event", "pipeline", pipeline, "topic", topic, "partition", partition,
			"offset", offset, "reason", reason, "route", route, "contract", contract, "sink", sink, "error", message,
			"suppressed", n)
	}
}

// DeadLetteredSummary logs, per pipeline and reason whose dead-letter lines lim suppressed
// and whose interval has passed, one WARN line with the number suppressed. Call it every
// LogInterval, so a burst that stopped is still accounted for in the log.
func DeadLetteredSummary(log *slog.Logger, lim *Limiter) {
	lim.Flush(func(key string, suppressed int) {
		parts := strings.Split(key, "\x00")
		if len(parts) != 3 || parts[0] != "deadletter" {
			return
		}
		log.Warn("dead-lettered events suppressed", "pipeline", parts[1], "reason", parts[2], "suppressed", suppressed)
	})
}

// OffsetCommitFailed logs and counts a lane's failed offset commit.
func OffsetCommitFailed(log *slog.Logger, m *Metrics, pipeline, sink string, err error) {
	if m != nil {
		m.CommitFailures.WithLabelValues(pipeline, sink).Inc()
	}
	log.Warn("offset commit failed", "pipeline", pipeline, "sink", sink, "error", err)
}

// SinkFailing logs a failed write attempt and marks the sink down.
func SinkFailing(log *slog.Logger, m *Metrics, pipeline, sink string, records, attempt int, err error) {
	if m != nil {
		m.WriteErrors.WithLabelValues(pipeline, sink).Inc()
		m.SinkUp.WithLabelValues(pipeline, sink).Set(0)
	}
	log.Warn("sink write failed", "pipeline", pipeline, "sink", sink, "records", records, "attempt", attempt, "error", err)
}

// SinkStopped logs that a sink could not start; its lane does not run.
func SinkStopped(log *slog.Logger, m *Metrics, pipeline, sink string, err error) {
	if m != nil {
		m.SinkUp.WithLabelValues(pipeline, sink).Set(0)
	}
	log.Error("sink stopped at start-up", "pipeline", pipeline, "sink", sink, "error", err)
}

// RedeliveryWarnAttempts is the delivery attempt from which a failed batch is logged at WARN
// (BatchRedelivered): the first two failures of a batch are usually a sink blip that its own
// "sink write failed" lines already show.
const RedeliveryWarnAttempts = 3

// Batch locates a batch for the events below: its lane and its offsets.
type Batch struct {
	Pipeline, Sink string
	Topic          string
	Partition      int32
	First, Last    int64 // offsets of the first and last record
	Attempt        int   // the delivery that failed: 1 for the first
}

func (b Batch) key() string {
	return b.Pipeline + "\x00" + b.Sink + "\x00" + b.Topic + "\x00" + strconv.Itoa(int(b.Partition))
}

func (b Batch) attrs(suppressed int) []any {
	return []any{"pipeline", b.Pipeline, "sink", b.Sink, "topic", b.Topic, "partition", b.Partition,
		"first_offset", b.First, "last_offset", b.Last, "attempt", b.Attempt, "suppressed", suppressed}
}

// DeadLetterWriteFailed logs at ERROR and counts a failed write of a batch's dead letters:
// the batch is redelivered, and its partition commits nothing past it until they are written.
// Lines are rate limited per partition by lim; suppressed says how many were left out since
// the previous line.
func DeadLetterWriteFailed(log *slog.Logger, m *Metrics, lim *Limiter, b Batch, deadLetters int, topic string, err error) {
	if m != nil {
		m.DLQFailures.WithLabelValues(b.Pipeline).Inc()
	}
	if ok, n := lim.Allow("dlq\x00" + b.key()); ok {
		log.Error("dead-letter write failed", append(b.attrs(n), "dead_letters", deadLetters, "dead_letter_topic", topic, "error", err)...)
	}
}

// BatchRedelivered counts a batch handed back to the source for redelivery and, from its
// RedeliveryWarnAttempts-th failed delivery on, logs it at WARN, rate limited per partition by
// lim.
func BatchRedelivered(log *slog.Logger, m *Metrics, lim *Limiter, b Batch, err error) {
	if m != nil {
		m.Redelivered.WithLabelValues(b.Pipeline, b.Sink).Inc()
	}
	if b.Attempt < RedeliveryWarnAttempts {
		return
	}
	if ok, n := lim.Allow("redeliver\x00" + b.key()); ok {
		log.Warn("batch redelivered again", append(b.attrs(n), "error", err)...)
	}
}

// PartitionLag sets a lane's lag gauges of one partition: in records, and in seconds (the age
// of the oldest record not landed yet, 0 with none).
func PartitionLag(m *Metrics, pipeline, sink, topic string, partition int32, lag, fetchLag int64, lagSeconds float64) {
	p := strconv.Itoa(int(partition))
	m.LagSeconds.WithLabelValues(pipeline, sink, topic, p).Set(lagSeconds)
	m.Lag.WithLabelValues(pipeline, sink, topic, p).Set(float64(lag))
	m.FetchLag.WithLabelValues(pipeline, sink, topic, p).Set(float64(fetchLag))
}

// PartitionStalled logs at WARN and marks that a lane's committed offset of a partition has
// not moved since since while lag records wait behind it.
func PartitionStalled(log *slog.Logger, m *Metrics, pipeline, sink, topic string, partition int32, committed, lag int64, since time.Time) {
	m.Stalled.WithLabelValues(pipeline, sink, topic, strconv.Itoa(int(partition))).Set(1)
	log.Warn("partition stalled: committed offset not moving", "pipeline", pipeline, "sink", sink, "topic", topic,
		"partition", partition, "committed_offset", committed, "lag", lag, "stalled_for", time.Since(since).Round(time.Second))
}

// PartitionRecovered logs at WARN (to pair with PartitionStalled) and clears the mark when a
// stalled partition commits again or has nothing left waiting.
func PartitionRecovered(log *slog.Logger, m *Metrics, pipeline, sink, topic string, partition int32, committed, lag int64, stalledFor time.Duration) {
	m.Stalled.WithLabelValues(pipeline, sink, topic, strconv.Itoa(int(partition))).Set(0)
	log.Warn("partition recovered: committed offset moving again", "pipeline", pipeline, "sink", sink, "topic", topic,
		"partition", partition, "committed_offset", committed, "lag", lag, "stalled_for", stalledFor.Round(time.Second))
}

// PartitionGone deletes a lane's per-partition series once the partition is no longer assigned.
func PartitionGone(m *Metrics, pipeline, sink, topic string, partition int32) {
	p := strconv.Itoa(int(partition))
	m.Lag.DeleteLabelValues(pipeline, sink, topic, p)
	m.LagSeconds.DeleteLabelValues(pipeline, sink, topic, p)
	m.FetchLag.DeleteLabelValues(pipeline, sink, topic, p)
	m.Stalled.DeleteLabelValues(pipeline, sink, topic, p)
}
