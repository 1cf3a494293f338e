package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/switchyard-dev/switchyard/internal/suggest"
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

// didYouMean returns ` (did you mean "x"?)` for the candidate closest to word, or "".
func didYouMean(word string, candidates []string) string {
	return suggest.DidYouMean(word, candidates)
}
