package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/switchyard-dev/switchyard/internal/event"
)

// De-duplication.
//
// Every row carries its source coordinates (_topic, _partition, _offset). For each assigned
// partition the sink keeps checkTo: the highest offset that may already be in the table. On
// assignment it is max(_offset) of the partition in the table; after every insert attempt
// (landed or not, since a failed insert may still have landed) it rises to the highest offset
// attempted. Records at or below checkTo are looked up in the table, by exact offset, before
// they are written, and skipped when found; records above it are new and written directly.
//
// So a batch redelivered after a crash or a rebalance, or retried after an insert whose
// response was lost, lands once, and the common case (fresh offsets) costs no query. Exact
// lookups rather than "skip everything at or below the maximum" keep a gap (an earlier batch
// of the same partition that failed while a later one landed) from being skipped.

// partState is the de-duplication state of one assigned partition.
type partState struct {
	checkTo int64 // offsets <= checkTo may be in the table; -1 when none are
}

type dedup struct {
	mu    sync.Mutex
	parts map[event.TopicPartition]*partState
}

// batchPart is what one Write holds for one partition.
type batchPart struct {
	tp        event.TopicPartition
	state     *partState
	last      int64 // last offset seen in the batch, to notice repeats
	lo, hi    int64 // offsets <= state.checkTo seen in the batch: they need a lookup
	needCheck bool
	repeats   bool  // some offset repeats (or goes back) within the batch
	written   int64 // highest offset written by this Write; -1 when none
}

// Assigned reads, for each partition, the highest offset already in the table; records at or
// below it are looked up before they are written. It is goroutine-safe and must be called
// after Open.
func (s *Sink) Assigned(ctx context.Context, partitions []event.TopicPartition) error {
	if len(partitions) == 0 {
		return nil
	}
	max, err := s.maxOffsets(ctx, partitions)
	if err != nil {
		return err
	}
	s.dedup.mu.Lock()
	defer s.dedup.mu.Unlock()
	if s.dedup.parts == nil {
		s.dedup.parts = map[event.TopicPartition]*partState{}
	}
	for _, tp := range partitions {
		s.dedup.parts[tp] = &partState{checkTo: max[tp]}
	}
	s.log.Debug("partitions assigned", "partitions", len(partitions))
	return nil
}

// Revoked forgets the state of the partitions.
func (s *Sink) Revoked(_ context.Context, partitions []event.TopicPartition) {
	s.dedup.mu.Lock()
	defer s.dedup.mu.Unlock()
	for _, tp := range partitions {
		delete(s.dedup.parts, tp)
	}
}

// maxOffsets returns max(_offset) per partition, -1 for partitions without rows.
func (s *Sink) maxOffsets(ctx context.Context, partitions []event.TopicPartition) (map[event.TopicPartition]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.InsertTimeout)
	defer cancel()
	conn, _, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[event.TopicPartition]int64, len(partitions))
	tuples := make([]string, len(partitions))
	for i, tp := range partitions {
		out[tp] = -1
		tuples[i] = "(" + quoteString(tp.Topic) + ", " + strconv.Itoa(int(tp.Partition)) + ")"
	}
	q := fmt.Sprintf("SELECT toString(_topic), toInt32(_partition), toInt64(max(_offset)) FROM %s WHERE (_topic, _partition) IN (%s) GROUP BY _topic, _partition",
		s.fqtn, strings.Join(tuples, ", "))
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read landed offsets from %s: %w", s.fqtn, err)
	}
	defer rows.Close()
	for rows.Next() {
		var tp event.TopicPartition
		var off int64
		if err := rows.Scan(&tp.Topic, &tp.Partition, &off); err != nil {
			return nil, fmt.Errorf("read landed offsets from %s: %w", s.fqtn, err)
		}
		out[tp] = off
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read landed offsets from %s: %w", s.fqtn, err)
	}
	return out, nil
}

// landed marks in skip the records of a batch that are already in the table (or repeat an
// earlier record of the same batch), sets rp[i] to the partition of records[i], and returns
// the batch's partitions. It queries the table only for records at or below their
// partition's checkTo. Partitions the engine did not announce with Assigned are initialised
// here the same way.
func (s *Sink) landed(ctx context.Context, records []*event.Record, skip []bool, rp []*batchPart) ([]*batchPart, error) {
	var parts []*batchPart
	var cur *batchPart
	for i, r := range records {
		if cur == nil || cur.tp.Partition != r.Partition || cur.tp.Topic != r.Topic {
			cur = nil
			for _, p := range parts {
				if p.tp.Partition == r.Partition && p.tp.Topic == r.Topic {
					cur = p
					break
				}
			}
			if cur == nil {
				cur = &batchPart{tp: event.TopicPartition{Topic: r.Topic, Partition: r.Partition}, last: -1, written: -1}
				parts = append(parts, cur)
			}
		}
		if r.Offset <= cur.last {
			cur.repeats = true
		}
		cur.last = r.Offset
		rp[i] = cur
	}

	// Attach the partition states, loading unknown partitions.
	var unknown []event.TopicPartition
	s.dedup.mu.Lock()
	for _, p := range parts {
		if p.state = s.dedup.parts[p.tp]; p.state == nil {
			unknown = append(unknown, p.tp)
		}
	}
	s.dedup.mu.Unlock()
	if len(unknown) > 0 {
		max, err := s.maxOffsets(ctx, unknown)
		if err != nil {
			return nil, err
		}
		s.dedup.mu.Lock()
		if s.dedup.parts == nil {
			s.dedup.parts = map[event.TopicPartition]*partState{}
		}
		for _, p := range parts {
			if p.state == nil {
				if s.dedup.parts[p.tp] == nil {
					s.dedup.parts[p.tp] = &partState{checkTo: max[p.tp]}
				}
				p.state = s.dedup.parts[p.tp]
			}
		}
		s.dedup.mu.Unlock()
	}

	// Which offsets need a lookup.
	s.dedup.mu.Lock()
	for i, r := range records {
		p := rp[i]
		if r.Offset > p.state.checkTo {
			continue
		}
		if !p.needCheck {
			p.lo, p.hi, p.needCheck = r.Offset, r.Offset, true
		}
		p.lo, p.hi = min(p.lo, r.Offset), max(p.hi, r.Offset)
	}
	s.dedup.mu.Unlock()

	var found map[event.TopicPartition]map[int64]bool
	var conds []string
	for _, p := range parts {
		if p.needCheck {
			conds = append(conds, fmt.Sprintf("(_topic = %s AND _partition = %d AND _offset BETWEEN %d AND %d)",
				quoteString(p.tp.Topic), p.tp.Partition, p.lo, p.hi))
		}
	}
	if len(conds) > 0 {
		var err error
		if found, err = s.existingOffsets(ctx, conds); err != nil {
			return nil, err
		}
	}
	var seen map[*batchPart]map[int64]bool
	for i, r := range records {
		p := rp[i]
		if p.needCheck && found[p.tp][r.Offset] {
			skip[i] = true
			continue
		}
		if p.repeats {
			if seen == nil {
				seen = map[*batchPart]map[int64]bool{}
			}
			if seen[p] == nil {
				seen[p] = map[int64]bool{}
			}
			if seen[p][r.Offset] {
				skip[i] = true
				continue
			}
			seen[p][r.Offset] = true
		}
	}
	return parts, nil
}

// existingOffsets returns the offsets of the table's rows that match any of conds.
func (s *Sink) existingOffsets(ctx context.Context, conds []string) (map[event.TopicPartition]map[int64]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.InsertTimeout)
	defer cancel()
	conn, _, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	q := fmt.Sprintf("SELECT toString(_topic), toInt32(_partition), toInt64(_offset) FROM %s WHERE %s", s.fqtn, strings.Join(conds, " OR "))
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("look up landed offsets in %s: %w", s.fqtn, err)
	}
	defer rows.Close()
	out := map[event.TopicPartition]map[int64]bool{}
	for rows.Next() {
		var tp event.TopicPartition
		var off int64
		if err := rows.Scan(&tp.Topic, &tp.Partition, &off); err != nil {
			return nil, fmt.Errorf("look up landed offsets in %s: %w", s.fqtn, err)
		}
		if out[tp] == nil {
			out[tp] = map[int64]bool{}
		}
		out[tp][off] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up landed offsets in %s: %w", s.fqtn, err)
	}
	return out, nil
}

// attempted raises checkTo of each partition to the highest offset an insert attempt wrote,
// whether or not the attempt succeeded: a failed insert may still have landed.
func (s *Sink) attempted(parts []*batchPart) {
	s.dedup.mu.Lock()
	defer s.dedup.mu.Unlock()
	for _, p := range parts {
		if p.written > p.state.checkTo {
			p.state.checkTo = p.written
		}
	}
}
