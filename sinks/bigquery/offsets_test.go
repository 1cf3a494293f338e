package bigquery

import (
	"math/rand/v2"
	"testing"
)

// TestOffsetSet compares the run-length set with a map under random adds, range adds and
// trims, checking that runs stay sorted, disjoint and not adjacent.
func TestOffsetSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var s offsetSet
		model := map[int64]bool{}
		floor := int64(0)
		for range 300 {
			switch op := rng.IntN(10); {
			case op < 6:
				off := int64(rng.IntN(400))
				s.add(off)
				model[off] = true
			case op < 8:
				lo := int64(rng.IntN(400))
				hi := lo + int64(rng.IntN(20))
				s.addRange(lo, hi)
				for o := lo; o <= hi; o++ {
					model[o] = true
				}
			case op < 9:
				floor = max(floor, int64(rng.IntN(200)))
				s.trimBelow(floor)
				for o := range model {
					if o < floor {
						delete(model, o)
					}
				}
			default:
				// An unbounded range, dropped again (it is not modelled).
				saved := append([]run(nil), s.runs...)
				s.addRange(int64(rng.IntN(400))+900, maxOffset)
				if last := s.runs[len(s.runs)-1]; last.hi != maxOffset {
					t.Fatalf("unbounded range missing: %v", s.runs)
				}
				s.runs = saved
			}
			for i, r := range s.runs {
				if r.lo > r.hi || (i > 0 && s.runs[i-1].hi+1 >= r.lo) {
					t.Fatalf("round %d: runs not sorted, disjoint and separated: %v", round, s.runs)
				}
			}
			for o := int64(-2); o < 900; o++ {
				if s.contains(o) != model[o] {
					t.Fatalf("round %d: contains(%d) = %v, want %v (runs %v)", round, o, s.contains(o), model[o], s.runs)
				}
			}
		}
	}
}

func TestOffsetSet_unbounded_range(t *testing.T) {
	var s offsetSet
	s.add(3)
	s.addRange(10, maxOffset)
	s.addRange(4, 9)
	if len(s.runs) != 1 || s.runs[0] != (run{3, maxOffset}) || !s.contains(1<<62) || s.contains(2) {
		t.Fatalf("runs %v", s.runs)
	}
	s.trimBelow(100)
	if s.contains(99) || !s.contains(100) {
		t.Fatalf("after trim: runs %v", s.runs)
	}
}
