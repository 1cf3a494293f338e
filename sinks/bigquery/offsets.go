package bigquery

import "sort"

// offsetSet is a set of source offsets, kept as sorted, disjoint runs of consecutive offsets.
// Adding offsets in increasing order (the common case) appends or extends the last run.
type offsetSet struct {
	runs []run
}

type run struct{ lo, hi int64 } // inclusive

// search returns the index of the first run whose hi >= off.
func (s *offsetSet) search(off int64) int {
	return sort.Search(len(s.runs), func(i int) bool { return s.runs[i].hi >= off })
}

func (s *offsetSet) contains(off int64) bool {
	i := s.search(off)
	return i < len(s.runs) && s.runs[i].lo <= off
}

func (s *offsetSet) add(off int64) {
	n := len(s.runs)
	if n == 0 || off > s.runs[n-1].hi {
		if n > 0 && off == s.runs[n-1].hi+1 {
			s.runs[n-1].hi = off
			return
		}
		s.runs = append(s.runs, run{off, off})
		return
	}
	i := s.search(off)
	if s.runs[i].lo <= off {
		return // present
	}
	// off lies before runs[i] (and after runs[i-1], if any).
	joinNext := off+1 == s.runs[i].lo
	joinPrev := i > 0 && s.runs[i-1].hi+1 == off
	switch {
	case joinPrev && joinNext:
		s.runs[i-1].hi = s.runs[i].hi
		s.runs = append(s.runs[:i], s.runs[i+1:]...)
	case joinPrev:
		s.runs[i-1].hi = off
	case joinNext:
		s.runs[i].lo = off
	default:
		s.runs = append(s.runs, run{})
		copy(s.runs[i+1:], s.runs[i:])
		s.runs[i] = run{off, off}
	}
}

// trimBelow drops every offset below floor.
func (s *offsetSet) trimBelow(floor int64) {
	i := s.search(floor)
	s.runs = s.runs[i:]
	if len(s.runs) > 0 && s.runs[0].lo < floor {
		s.runs[0].lo = floor
	}
	if cap(s.runs) > 4*len(s.runs)+64 {
		s.runs = append([]run(nil), s.runs...)
	}
}

// len is the number of runs (the memory the set takes).
func (s *offsetSet) len() int { return len(s.runs) }

// nthLo is the low end of the i-th run.
func (s *offsetSet) nthLo(i int) int64 { return s.runs[i].lo }

// addRange adds every offset in [lo, hi]. Offsets are Kafka offsets (>= -1); hi may be
// maxOffset for "and everything above".
func (s *offsetSet) addRange(lo, hi int64) {
	if lo > hi {
		return
	}
	out := make([]run, 0, len(s.runs)+1)
	i := 0
	for i < len(s.runs) && s.runs[i].hi < lo-1 { // before [lo, hi], not touching it
		out = append(out, s.runs[i])
		i++
	}
	for i < len(s.runs) && (hi == maxOffset || s.runs[i].lo <= hi+1) { // touching or overlapping
		lo, hi = min(lo, s.runs[i].lo), max(hi, s.runs[i].hi)
		i++
	}
	out = append(out, run{lo, hi})
	s.runs = append(out, s.runs[i:]...)
}

// maxOffset stands for "every offset above".
const maxOffset = 1<<63 - 1
