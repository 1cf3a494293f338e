package bigquery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"cloud.google.com/go/bigquery/storage/managedwriter"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard-dev/switchyard/sinks"
)

// evolutionGrace is how long after this sink added columns a request rejected as a whole
// (INVALID_ARGUMENT) counts as transient: the Write API may still validate against the old
// schema for a while.
const evolutionGrace = 10 * time.Minute

// timeoutError is a call the sink stopped waiting for because its timeout (the setting
// named key) expired. It is transient: the engine retries the write.
type timeoutError struct {
	key string
	d   time.Duration
	err error
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("no answer within %s %s: %v", e.key, e.d, e.err)
}

func (e *timeoutError) Unwrap() error { return e.err }

// isTimeout reports whether err is, or wraps, a *timeoutError.
func isTimeout(err error) bool {
	var te *timeoutError
	return errors.As(err, &te)
}

// expired wraps err, the error of a call made with cctx, in a *timeoutError when cctx's
// deadline (d, the setting key) expired while ctx, the caller's, is still live.
func expired(ctx, cctx context.Context, key string, d time.Duration, err error) error {
	// Whatever the library made of the expiry (a context error, a DEADLINE_EXCEEDED status,
	// a wrapped transport error), the call failed because the deadline passed.
	if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return &timeoutError{key: key, d: d, err: err}
	}
	return err
}

// bounded runs call, one call of the write path other than an append, under the
// request_timeout deadline.
func bounded[T any](ctx context.Context, s *Sink, call func(context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, s.set.requestTimeout)
	defer cancel()
	v, err := call(cctx)
	return v, expired(ctx, cctx, "request_timeout", s.set.requestTimeout, err)
}

// appendCtx is the context of one append request: it carries the append_timeout deadline,
// from sending the request to its answer. The client library keeps it for retrying the
// request, so it is cancelled only after the answer was read.
func (s *Sink) appendCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.set.appendTimeout)
}

// appendExpired is expired for an append made with actx.
func (s *Sink) appendExpired(ctx, actx context.Context, err error) error {
	return expired(ctx, actx, "append_timeout", s.set.appendTimeout, err)
}

// rowErrors returns the row errors of a rejected append, by row index in the request. An
// append without an answer (its wait timed out) has none.
func rowErrors(res *managedwriter.AppendResult) map[int64]string {
	select {
	case <-res.Ready():
	default:
		return nil
	}
	resp, _ := res.FullResponse(context.Background())
	if resp == nil || len(resp.GetRowErrors()) == 0 {
		return nil
	}
	out := make(map[int64]string, len(resp.GetRowErrors()))
	for _, re := range resp.GetRowErrors() {
		out[re.GetIndex()] = fmt.Sprintf("%s: %s", re.GetCode(), re.GetMessage())
	}
	return out
}

// grpcCode is the status code of err, or codes.OK when err carries none.
func grpcCode(err error) codes.Code {
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return codes.Unknown
}

// storageErrorCode is the StorageError detail code of err, if any.
func storageErrorCode(err error) storagepb.StorageError_StorageErrorCode {
	s, ok := status.FromError(err)
	if !ok {
		return storagepb.StorageError_STORAGE_ERROR_CODE_UNSPECIFIED
	}
	for _, d := range s.Details() {
		if se, ok := d.(*storagepb.StorageError); ok {
			return se.GetCode()
		}
	}
	return storagepb.StorageError_STORAGE_ERROR_CODE_UNSPECIFIED
}

// appendError classifies a failed append that carried no row errors. A request rejected as
// a whole (INVALID_ARGUMENT: the rows do not fit the table) is permanent, unless this sink
// added columns recently; everything else is transient.
func (s *Sink) appendError(err error) error {
	if isTimeout(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("append to %s: %w", s.ref(), err)
	}
	if grpcCode(err) == codes.InvalidArgument && !isStreamState(err) {
		if t := s.evolved.Load(); t != 0 && s.now().Sub(time.Unix(0, t)) < evolutionGrace {
			return fmt.Errorf("append to %s (columns were added recently, the service may still be catching up): %w", s.ref(), err)
		}
		return sinks.Permanent(fmt.Errorf("append to %s: the service rejected the request: %w", s.ref(), err))
	}
	return s.writeAPIError("append to", err)
}

// isStreamState reports whether err is about the write stream rather than the rows (a
// finalized, missing or expired stream, an offset mismatch).
func isStreamState(err error) bool {
	switch storageErrorCode(err) {
	case storagepb.StorageError_STREAM_FINALIZED, storagepb.StorageError_STREAM_NOT_FOUND,
		storagepb.StorageError_INVALID_STREAM_STATE, storagepb.StorageError_INVALID_STREAM_TYPE,
		storagepb.StorageError_OFFSET_ALREADY_EXISTS, storagepb.StorageError_OFFSET_OUT_OF_RANGE:
		return true
	}
	return false
}

// writeAPIError describes a failed Storage Write API call, naming the dataset, table and the
// permission when access was denied.
func (s *Sink) writeAPIError(what string, err error) error {
	where := fmt.Sprintf("table %s in dataset %s:%s", s.set.table, s.set.cfg.Project, s.set.cfg.Dataset)
	switch grpcCode(err) {
	case codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("%s %s: permission denied; the sink's credentials need bigquery.tables.updateData on dataset %s:%s: %w",
			what, where, s.set.cfg.Project, s.set.cfg.Dataset, err)
	case codes.NotFound:
		return fmt.Errorf("%s %s: not found: %w", what, where, err)
	}
	return fmt.Errorf("%s %s: %w", what, where, err)
}
