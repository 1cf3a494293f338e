package source

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lagTimeout bounds the offset requests of one lag report.
const lagTimeout = 10 * time.Second

// lagLoop reports the lag of every owned partition every LagInterval until Close begins.
func (s *Source) lagLoop(cl *kgo.Client) {
	defer close(s.lagDone)
	if s.cfg.OnLag == nil {
		return
	}
	adm := kadm.NewClient(cl)
	t := time.NewTicker(s.cfg.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			// hookCtx ends when Close begins: Close must not wait out a slow broker.
			ctx, cancel := context.WithTimeout(s.hookCtx, min(s.cfg.LagInterval, lagTimeout))
			s.reportLag(ctx, adm, time.Now())
			cancel()
		case <-s.closing:
			return
		}
	}
}

// reportLag asks the brokers for the high watermarks of the owned partitions and reports each
// partition's committed and fetch lag. High watermarks come from ListOffsets, not from fetch
// responses, so they are fresh while the partition's fetching is paused. A failed request
// skips this report rather than report stale numbers.
func (s *Source) reportLag(ctx context.Context, adm *kadm.Client, now time.Time) {
	s.mu.RLock()
	parts := append([]*partition(nil), s.order...)
	s.mu.RUnlock()
	if len(parts) == 0 {
		return
	}
	topics := make([]string, 0, len(s.cfg.Topics))
	needBase := false
	for _, p := range parts {
		if !slices.Contains(topics, p.tp.Topic) {
			topics = append(topics, p.tp.Topic)
		}
		if p.base == -1 {
			needBase = true
		}
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		s.log.Debug("list end offsets for lag failed", "error", err)
		return
	}
	var starts kadm.ListedOffsets
	if needBase {
		// The group's committed offsets, once per assignment: until this source commits,
		// they are where a restart resumes.
		if offs, err := adm.FetchOffsets(ctx, s.cfg.Group); err == nil {
			for _, p := range parts {
				if p.base != -1 {
					continue
				}
				switch o, ok := offs.Lookup(p.tp.Topic, p.tp.Partition); {
				case ok && o.Err != nil: // ask again next time
				case ok && o.At >= 0:
					p.base = o.At
				default:
					p.base = -2 // the group never committed this partition
				}
			}
		}
		if s.cfg.Start == StartEarliest {
			starts, _ = adm.ListStartOffsets(ctx, topics...)
		}
	}

	s.lagMu.Lock()
	defer s.lagMu.Unlock()
	for _, p := range parts {
		if p.lagGone {
			continue
		}
		end, ok := ends.Lookup(p.tp.Topic, p.tp.Partition)
		if !ok || end.Err != nil {
			continue
		}
		hw := end.Offset
		p.mu.Lock()
		committed, first, next := p.committed, p.firstFetched, p.nextFetch
		oldest, paused := p.oldestLocked(), p.paused
		p.mu.Unlock()
		switch {
		case committed >= 0:
		case p.base >= 0:
			committed = p.base
		case first >= 0:
			committed = first
		case s.cfg.Start == StartEarliest:
			if st, ok := starts.Lookup(p.tp.Topic, p.tp.Partition); ok && st.Err == nil {
				committed = st.Offset
			} else {
				continue // unknown yet
			}
		default:
			committed = hw
		}
		if next < 0 {
			next = committed
		}
		lag := max(0, hw-committed)
		if committed != p.stallMark || lag == 0 || p.stallSince.IsZero() {
			p.stallMark, p.stallSince = committed, now
		}
		p.stalled = lag > 0 && now.Sub(p.stallSince) >= s.cfg.StallAfter
		p.reported = true
		s.cfg.OnLag(PartitionLag{
			TopicPartition: p.tp,
			HighWatermark:  hw,
			Committed:      committed,
			Lag:            lag,
			FetchLag:       max(0, hw-next),
			Stalled:        p.stalled,
			Since:          p.stallSince,
			Oldest:         oldest,
			Paused:         paused,
		})
	}
}

// oldestLocked is the timestamp of the oldest record fetched and not acknowledged: the first
// record of the head in-flight batch, else of the first pending run; zero with none.
func (p *partition) oldestLocked() time.Time {
	if p.inflight.len() > 0 {
		if b := p.inflight.peek(); len(b.Records) > 0 {
			return b.Records[0].Timestamp
		}
	}
	if p.pending.len() > 0 {
		if run := p.pending.peek(); len(run) > 0 {
			return run[0].Timestamp
		}
	}
	return time.Time{}
}
