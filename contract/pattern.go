package contract

import (
	"regexp"
	"regexp/syntax"
)

// compilePattern returns a matcher for a string.pattern rule. For the shape most contracts
// use (anchored runs of ASCII character classes: `^[A-Z]{3}$`, `^[0-9]{4}$`, `^[a-z0-9_]+$`,
// `^SKU-[0-9]{1,8}$`) it is a byte-class scan (5.8 ns for `USD` against regexp's 45,
// BenchmarkPattern); for anything else the RE2 pattern itself, as protovalidate compiles it.
// Both give regexp's verdict exactly (FuzzPatterns). ok is false when the pattern does not
// compile.
func compilePattern(pattern string) (match func(string) bool, ok bool) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, false
	}
	if runs := parseClassRuns(pattern); runs != nil {
		return runs.match, true
	}
	return re.MatchString, true
}

// classRun is min to max bytes (max < 0: unbounded) of an ASCII class.
type classRun struct {
	set      [2]uint64 // bit b set: byte b is in the class
	min, max int
}

func (c *classRun) has(b byte) bool { return b < 128 && c.set[b>>6]&(1<<(b&63)) != 0 }

type classRuns []classRun

// parseClassRuns recognizes `^run…run$` where each run is an ASCII literal or class, optionally
// repeated, and every run of variable length is last or followed by a run of at least one
// byte of a disjoint class, so that taking the longest run is the only way to match. It
// returns nil for every other pattern.
func parseClassRuns(pattern string) classRuns {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil || re.Op != syntax.OpConcat || len(re.Sub) < 2 {
		return nil
	}
	subs := re.Sub
	if subs[0].Op != syntax.OpBeginText || subs[len(subs)-1].Op != syntax.OpEndText {
		return nil
	}
	var runs classRuns
	for _, s := range subs[1 : len(subs)-1] {
		min, max := 1, 1
		switch s.Op {
		case syntax.OpRepeat:
			min, max = s.Min, s.Max
			s = s.Sub[0]
		case syntax.OpPlus:
			min, max = 1, -1
			s = s.Sub[0]
		case syntax.OpStar:
			min, max = 0, -1
			s = s.Sub[0]
		case syntax.OpQuest:
			min, max = 0, 1
			s = s.Sub[0]
		}
		switch s.Op {
		case syntax.OpLiteral:
			if s.Flags&syntax.FoldCase != 0 || (len(s.Rune) > 1 && (min != 1 || max != 1)) {
				return nil
			}
			for _, r := range s.Rune {
				if r >= 128 {
					return nil
				}
				var c classRun
				c.set[r>>6] |= 1 << (r & 63)
				c.min, c.max = min, max
				runs = append(runs, c)
			}
		case syntax.OpCharClass:
			var c classRun
			for i := 0; i < len(s.Rune); i += 2 {
				lo, hi := s.Rune[i], s.Rune[i+1]
				if hi >= 128 {
					return nil
				}
				for r := lo; r <= hi; r++ {
					c.set[r>>6] |= 1 << (r & 63)
				}
			}
			c.min, c.max = min, max
			runs = append(runs, c)
		default:
			return nil
		}
	}
	for i := range runs {
		if runs[i].min == runs[i].max || i == len(runs)-1 {
			continue
		}
		next := runs[i+1]
		if next.min < 1 || runs[i].set[0]&next.set[0] != 0 || runs[i].set[1]&next.set[1] != 0 {
			return nil
		}
	}
	return runs
}

func (runs classRuns) match(s string) bool {
	i := 0
	for k := range runs {
		c := &runs[k]
		n := 0
		for i < len(s) && (c.max < 0 || n < c.max) && c.has(s[i]) {
			i++
			n++
		}
		if n < c.min {
			return false
		}
	}
	return i == len(s)
}
