package pipelines_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/pipelines"
	"github.com/switchyard-dev/switchyard/sinks"
)

// refusingSink fails its first Write transiently (the batch is nacked and redelivered), then
// refuses every record permanently.
type refusingSink struct{ writes atomic.Int32 }

func (s *refusingSink) Write(_ context.Context, recs []*event.Record) error {
	if s.writes.Add(1) == 1 {
		return errors.New("connection reset by peer")
	}
	be := &sinks.BatchError{Failed: map[int]error{}}
	for i := range recs {
		be.Failed[i] = errors.New("row rejected")
	}
	return be
}

func (s *refusingSink) Close(context.Context) error { return nil }

// TestEngine_sink_dead_letters_name_route_and_attempt: a dead letter of a record the sink
// refused carries the route that sent it there and which delivery of the batch it was.
func TestEngine_sink_dead_letters_name_route_and_attempt(t *testing.T) {
	e := newEnv(t, true, "in", "out", "dlq")
	yaml := strings.Replace(dlqConfig, "      - sink: bus\n", "      - name: all-bids\n        sink: bus\n", 1)
	yaml = strings.Replace(yaml, "max_batch: 10", "max_batch: 100", 1)
	sink := &refusingSink{}
	e.startWith(t, yaml, func(context.Context, *config.Sink, pipelines.SinkDeps) (sinks.Sink, error) { return sink, nil })
	e.produce(t, "in", 1, func(int) eventgen.Kind { return eventgen.Valid }, nil)

	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...), kgo.ConsumeTopics("dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var headers map[string]string
	for headers == nil && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			headers = map[string]string{}
			for _, h := range r.Headers {
				headers[h.Key] = string(h.Value)
			}
		})
	}
	if headers == nil {
		t.Fatal("no dead letter")
	}
	if got := headers[pipelines.HeaderClass]; got != "sink" {
		t.Errorf("class %q, want sink", got)
	}
	if got := headers[pipelines.HeaderRoute]; got != "all-bids" {
		t.Errorf("%s = %q, want all-bids", pipelines.HeaderRoute, got)
	}
	if got := headers[pipelines.HeaderAttempts]; got != "2" {
		t.Errorf("%s = %q, want 2 (the redelivery after the transient failure)", pipelines.HeaderAttempts, got)
	}
}
