package pipelines

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/status"
	"github.com/switchyard-dev/switchyard/internal/telemetry"
)

// Status is a snapshot of every pipeline for the status page and /api/status, graded
// red/amber/green (status.Grade). It only reads: it is safe to call at any time, from any
// goroutine.
func (e *Engine) Status() *status.Report {
	r := &status.Report{Version: status.Version, GeneratedAt: time.Now().UTC()}
	for _, p := range e.pipelines {
		ps := status.Pipeline{
			Name:          p.name,
			Team:          p.cp.Config.Owner.Team,
			Contact:       p.cp.Config.Owner.Contact,
			DeadLetters5m: p.dlq.recent.last(5 * time.Minute),
			Breaker:       p.brk.status(),
		}
		for _, md := range p.cp.messages() {
			ps.Contracts = append(ps.Contracts, status.Contract{Name: string(md.FullName()), Hash: descriptorHash(md)})
		}
		for i, l := range p.lanes {
			ps.Sinks = append(ps.Sinks, l.status(sinkKind(&p.cp.Config.Sinks[i])))
		}
		r.Pipelines = append(r.Pipelines, ps)
	}
	status.Grade(r)
	return r
}

// status is the lane's sink as the status page shows it.
func (l *lane) status(kind string) status.Sink {
	s := status.Sink{Name: l.sink, Kind: kind, State: status.Landing}
	l.slo.mu.Lock()
	started, startErr := l.slo.started, l.slo.startErr
	lastLanded, lastErr, lastErrAt := l.slo.lastLanded, l.slo.lastErr, l.slo.lastErrAt
	l.slo.mu.Unlock()
	if !lastLanded.IsZero() {
		t := lastLanded.UTC()
		s.LastLanded = &t
	}
	now := time.Now()
	l.health.mu.Lock()
	for _, pl := range l.health.lag {
		s.Partitions = append(s.Partitions, status.Partition{Topic: pl.Topic, Partition: pl.Partition,
			LagRecords: pl.Lag, LagSeconds: lagSeconds(pl, now), Stalled: pl.Stalled, Paused: pl.Paused})
	}
	l.health.mu.Unlock()
	slices.SortFunc(s.Partitions, func(a, b status.Partition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	switch {
	case !started && startErr != "":
		s.State, s.Error = status.Failed, startErr
	case !started:
		s.State = status.Starting
	case !lastErrAt.IsZero() && lastErrAt.After(lastLanded):
		s.State, s.Error = status.Retrying, lastErr
		t := lastErrAt.UTC()
		s.ErrorAt = &t
	default:
		for _, pt := range s.Partitions {
			if pt.Paused && pt.LagRecords > 0 {
				s.State = status.Paused
			}
		}
	}
	for _, o := range []*telemetry.SLO{l.slo.fresh, l.slo.complete} {
		so := status.SLO{Name: o.Name, Objective: o.Objective, BudgetRemaining: o.BudgetRemaining(), BurnRates: map[string]float64{}}
		good, total := o.Window(6 * time.Hour)
		so.Events = total
		if total > 0 {
			v := float64(good) / float64(total)
			so.Current = &v
		}
		for _, w := range telemetry.BurnWindows {
			so.BurnRates[w.Name] = o.BurnRate(w.D)
		}
		s.SLOs = append(s.SLOs, so)
	}
	return s
}

// descriptorHash is the first 12 hex digits of the SHA-256 of the deterministic encoding of
// the file that declares md: it changes whenever the contract's file does.
func descriptorHash(md protoreflect.MessageDescriptor) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(protodesc.ToFileDescriptorProto(md.ParentFile()))
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}
