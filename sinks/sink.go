// Package sinks defines the contract between the engine and the places events land.
//
// A sink only knows how to write a batch. Batching, retries with backoff, in-flight limits,
// acking, metrics and dead-lettering live once, in the engine (see Runner), which wraps every
// sink. Optional abilities are small interfaces found by type assertion.
package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/event"
)

// Sink writes batches of records to one destination.
//
// Write blocks until every record has landed or an error is returned. The engine calls Write
// from up to MaxInFlight goroutines at once, so implementations must be goroutine-safe when
// that limit is above one. Write must not keep references to records after it returns.
//
// Errors returned by Write:
//   - nil: every record landed.
//   - a *BatchError: some records failed permanently (Failed: they are dead-lettered), some
//     failed transiently (Retry: only they are retried); Landed says whether the records in
//     neither map landed or must be retried too.
//   - an error wrapped with Permanent: no record can ever land (e.g. a schema mismatch);
//     every record is dead-lettered.
//   - any other error is transient: the engine retries the whole batch with backoff.
type Sink interface {
	Write(ctx context.Context, records []*event.Record) error
	// Close flushes and releases resources. It is called once, after the last Write returned.
	Close(ctx context.Context) error
}

// Opener is implemented by sinks that connect, check health or migrate schemas at start-up.
// An error from Open stops the sink (and is reported); the rest of the daemon keeps running.
type Opener interface {
	Open(ctx context.Context) error
}

// Planner is implemented by sinks that can describe what Open would change (DDL, table
// patches) without doing it. It returns the statements, or an error if the sink would refuse
// to start.
type Planner interface {
	Plan(ctx context.Context) ([]string, error)
}

// OfflinePlanner is implemented by sinks that can tell, from the contract alone and without
// connecting, the schema changes they would make (for `switchyard contracts check`). previous
// is the schema the sink's records had before the contract change, or nil when unknown: then
// the statements describe the table as the sink would create it. assumption names what the
// plan takes for granted about the destination (e.g. the server version), for the reader. An
// error means the sink would refuse to start with a table made for previous.
type OfflinePlanner interface {
	PlanOffline(previous protoreflect.MessageDescriptor) (assumption string, stmts []string, err error)
}

// PayloadWriter is implemented by sinks that, for records no transform changed, write from
// event.Record.Value alone (as it is, or transcoded) and never read event.Record.Message. The
// engine then frees each decoded message as soon as it is routed, instead of holding it until
// the batch is written, and a lane beside others routes records another lane found valid
// without decoding them.
type PayloadWriter interface {
	WritesPayload() bool
}

// AssignmentListener is implemented by sinks that keep per-partition state (e.g. the highest
// offset already landed, for de-duplication). Assigned is called after the source gains
// partitions and before any record of them is written; Revoked after the last Write of them.
type AssignmentListener interface {
	Assigned(ctx context.Context, partitions []event.TopicPartition) error
	Revoked(ctx context.Context, partitions []event.TopicPartition)
}

// Deps is what the engine gives a sink constructor.
type Deps struct {
	Pipeline string
	Sink     string
	// Schema describes event.Record.Message for every record this sink receives: the contract
	// message, or the output of the route's transforms.
	Schema protoreflect.MessageDescriptor
	Logger *slog.Logger
}

// BatchError reports per-record failures of one Write.
type BatchError struct {
	// Failed maps an index into the records passed to Write to the reason that record can
	// never land. Those records are dead-lettered.
	Failed map[int]error
	// Retry maps an index to a transient error: that record did not land and is retried
	// with backoff, without the records that did land.
	Retry map[int]error
	// Landed reports whether every record in neither map has landed. If false, the engine
	// retries them too.
	Landed bool
}

func (e *BatchError) Error() string {
	for i, err := range e.Failed {
		return fmt.Sprintf("%d of the batch's records failed permanently, %d transiently (record %d: %v)", len(e.Failed), len(e.Retry), i, err)
	}
	for i, err := range e.Retry {
		return fmt.Sprintf("%d of the batch's records failed transiently (record %d: %v)", len(e.Retry), i, err)
	}
	return "batch failed"
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying cannot fix.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// ErrTooLarge is wrapped by the errors of records a sink refuses for their size (larger than
// the producer's max_record_bytes, the topic's limit, or a sink's request limit). Such records
// are dead-lettered with reason too_large, never retried.
var ErrTooLarge = errors.New("event too large for the sink")
