package telemetry

import (
	"log/slog"
)

// DeadLettered logs and counts one event written to the dead-letter topic. message must not
// contain payload values (use contract.SafeMessage).
func DeadLettered(log *slog.Logger, m *Metrics, pipeline, reason, topic string, partition int32, offset int64, contract, sink, message string) {
	if m != nil {
		m.DeadLettered.WithLabelValues(pipeline, reason).Inc()
	}
	log.Warn("dead-lettered event", "pipeline", pipeline, "topic", topic, "partition", partition,
		"offset", offset, "reason", reason, "contract", contract, "sink", sink, "error", message)
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
