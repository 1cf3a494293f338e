package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one configuration problem and where it was found. Pos.Line is 0 when the problem
// concerns a whole file or directory, and Pos.Col is 0 when the YAML parser reported no column.
type Error struct {
	Pos Position
	Msg string
}

// Error formats the problem as "file:line:col: message", leaving out the parts Pos lacks.
func (e Error) Error() string {
	switch {
	case e.Pos.File == "" && e.Pos.Line == 0:
		return e.Msg
	case e.Pos.Line == 0:
		return e.Pos.File + ": " + e.Msg
	case e.Pos.Col == 0:
		return fmt.Sprintf("%s:%d: %s", e.Pos.File, e.Pos.Line, e.Msg)
	default:
		return e.Pos.String() + ": " + e.Msg
	}
}

// Errors is every problem found in a configuration. Load and Parse return it (as error) when
// there is at least one problem; use errors.As to get at the individual problems.
type Errors []Error

// Error prints one problem per line, sorted by file, line and column.
func (es Errors) Error() string {
	sorted := append(Errors(nil), es...)
	sorted.sort()
	lines := make([]string, len(sorted))
	for i, e := range sorted {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sort orders the problems by file, line and column, keeping the order of problems at the
// same position.
func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// didYouMean returns ` (did you mean "x"?)` for the candidate closest to word, or "" when no
// candidate is close enough to be a plausible typo.
func didYouMean(word string, candidates []string) string {
	if s := suggest(word, candidates); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// suggest returns the candidate with the smallest edit distance to word (the first one on a
// tie), if that distance is at most a third of word's length (and at least 1 edit is allowed).
func suggest(word string, candidates []string) string {
	limit := max(1, len([]rune(word))/3)
	best, bestDist := "", limit+1
	lw := strings.ToLower(word)
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if d := editDistance(lw, strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions, deletions, substitutions
// and transpositions of adjacent characters each cost 1.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
