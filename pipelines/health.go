package pipelines

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/internal/telemetry"
	"github.com/switchyard-dev/switchyard/pipelines/source"
)

// laneHealth is what a lane knows of its partitions' progress, for /readyz and shutdown.
type laneHealth struct {
	mu      sync.Mutex
	stalled map[event.TopicPartition]source.PartitionLag
	lag     map[event.TopicPartition]source.PartitionLag // last report per partition, for the status page
}

// onLag is the source's OnLag: it sets the lag gauges and reports partitions becoming stalled
// and recovering.
func (l *lane) onLag(pl source.PartitionLag) {
	m, p := l.p.e.metrics, l.p.name
	h := &l.health
	h.mu.Lock()
	defer h.mu.Unlock()
	was, wasStalled := h.stalled[pl.TopicPartition]
	if pl.Released {
		delete(h.stalled, pl.TopicPartition)
		delete(h.lag, pl.TopicPartition)
		telemetry.PartitionGone(m, p, l.sink, pl.Topic, pl.Partition)
		return
	}
	if h.lag == nil {
		h.lag = make(map[event.TopicPartition]source.PartitionLag)
	}
	h.lag[pl.TopicPartition] = pl
	telemetry.PartitionLag(m, p, l.sink, pl.Topic, pl.Partition, pl.Lag, pl.FetchLag, lagSeconds(pl, time.Now()))
	switch {
	case pl.Stalled && !wasStalled:
		if h.stalled == nil {
			h.stalled = make(map[event.TopicPartition]source.PartitionLag)
		}
		h.stalled[pl.TopicPartition] = pl
		telemetry.PartitionStalled(l.p.e.log, m, p, l.sink, pl.Topic, pl.Partition, pl.Committed, pl.Lag, pl.Since)
	case pl.Stalled:
		h.stalled[pl.TopicPartition] = pl
	case wasStalled:
		delete(h.stalled, pl.TopicPartition)
		telemetry.PartitionRecovered(l.p.e.log, m, p, l.sink, pl.Topic, pl.Partition, pl.Committed, pl.Lag, time.Since(was.Since))
	default:
		m.Stalled.WithLabelValues(p, l.sink, pl.Topic, fmt.Sprint(pl.Partition)).Set(0)
	}
}

// handleReported is the lane's router handler: handle, plus the telemetry of a batch handed
// back for redelivery, which the router itself would log at debug only (see quietHandler).
func (l *lane) handleReported(msg *message.Message) error {
	err := l.handle(msg)
	if err == nil {
		return nil
	}
	b := source.BatchOf(msg)
	if b == nil {
		return err
	}
	tb := telemetry.Batch{Pipeline: l.p.name, Sink: l.sink, Topic: b.Topic, Partition: b.Partition,
		First: b.Records[0].Offset, Last: b.Records[len(b.Records)-1].Offset, Attempt: source.AttemptOf(msg)}
	var dle *deadLetterWriteError
	if errors.As(err, &dle) {
		telemetry.DeadLetterWriteFailed(l.p.e.log, l.p.e.metrics, l.p.e.limit, tb, dle.n, l.p.dlq.topic, dle.err)
	}
	if msg.Context().Err() == nil {
		// Not when the partition was revoked or the source is closing: nothing is redelivered.
		telemetry.BatchRedelivered(l.p.e.log, l.p.e.metrics, l.p.e.limit, tb, err)
	}
	return err
}

// deadLetterWriteError is a batch's failure to write its dead letters.
type deadLetterWriteError struct {
	pipeline, topic string
	n               int
	err             error
}

func (e *deadLetterWriteError) Error() string {
	return fmt.Sprintf("pipeline %q: write %d dead letters to %s: %v", e.pipeline, e.n, e.topic, e.err)
}

func (e *deadLetterWriteError) Unwrap() error { return e.err }

// StalledPartition is a partition whose lane has not committed for source.stall_after while
// records wait behind it.
type StalledPartition struct {
	Pipeline, Sink string
	source.PartitionLag
}

// String is the partition as /readyz lists it.
func (s StalledPartition) String() string {
	return fmt.Sprintf("pipeline %s sink %s: %s/%d stalled for %v at offset %d, %d records behind",
		s.Pipeline, s.Sink, s.Topic, s.Partition, time.Since(s.Since).Round(time.Second), s.Committed, s.Lag)
}

// Stalled lists the stalled partitions of every lane, sorted.
func (e *Engine) Stalled() []StalledPartition {
	var out []StalledPartition
	for _, p := range e.pipelines {
		for _, l := range p.lanes {
			l.health.mu.Lock()
			for _, pl := range l.health.stalled {
				out = append(out, StalledPartition{Pipeline: p.name, Sink: l.sink, PartitionLag: pl})
			}
			l.health.mu.Unlock()
		}
	}
	slices.SortFunc(out, func(a, b StalledPartition) int {
		return strings.Compare(fmt.Sprint(a.Pipeline, a.Sink, a.Topic, a.Partition), fmt.Sprint(b.Pipeline, b.Sink, b.Topic, b.Partition))
	})
	return out
}

// Undrained is a partition whose lane shut down with emitted records uncommitted: the next run
// consumes them again.
type Undrained struct {
	Pipeline, Sink string
	source.Unfinished
}

// DrainError is Shutdown's error when a lane could not finish its in-flight records within
// source.drain_timeout (or could not commit them).
type DrainError struct {
	Partitions []Undrained
}

func (e *DrainError) Error() string {
	var n int64
	for _, u := range e.Partitions {
		n += u.Records
	}
	return fmt.Sprintf("drain did not finish: %d records of %d partitions were not committed", n, len(e.Partitions))
}

// lagSeconds is the age of the partition's oldest record not landed yet, 0 with none.
func lagSeconds(pl source.PartitionLag, now time.Time) float64 {
	if pl.Oldest.IsZero() {
		return 0
	}
	return max(0, now.Sub(pl.Oldest).Seconds())
}
