package clickhouse

import (
	"fmt"
	"strconv"
	"strings"
)

// chType is a parsed ClickHouse data type such as Nullable(Int64),
// Array(Array(String)), DateTime64(3, 'UTC') or Enum8('a' = 1, 'b' = 2).
type chType struct {
	name   string   // Int64, Nullable, Array, Map, DateTime64, Enum8, ...
	params []string // raw parameters, trimmed, as written between the parentheses
	args   []chType // parsed params of Nullable, Array, Map and LowCardinality
}

// parseType parses a type as the server prints it (system.columns.type).
func parseType(s string) (chType, error) {
	s = strings.TrimSpace(s)
	open := strings.IndexByte(s, '(')
	if open < 0 {
		if s == "" {
			return chType{}, fmt.Errorf("empty type")
		}
		return chType{name: s}, nil
	}
	if !strings.HasSuffix(s, ")") {
		return chType{}, fmt.Errorf("type %q: unbalanced parentheses", s)
	}
	t := chType{name: strings.TrimSpace(s[:open])}
	params, err := splitParams(s[open+1 : len(s)-1])
	if err != nil {
		return chType{}, fmt.Errorf("type %q: %w", s, err)
	}
	t.params = params
	switch t.name {
	case "Nullable", "Array", "LowCardinality", "Map":
		for _, p := range params {
			a, err := parseType(p)
			if err != nil {
				return chType{}, err
			}
			t.args = append(t.args, a)
		}
		want := 1
		if t.name == "Map" {
			want = 2
		}
		if len(t.args) != want {
			return chType{}, fmt.Errorf("type %q: want %d parameters", s, want)
		}
	}
	return t, nil
}

// splitParams splits a parameter list at top-level commas, respecting parentheses and
// single-quoted strings (with backslash escapes).
func splitParams(s string) ([]string, error) {
	var out []string
	depth, start := 0, 0
	inQuote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote && c == '\\':
			i++
		case c == '\'':
			inQuote = !inQuote
		case inQuote:
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced parentheses")
			}
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if inQuote || depth != 0 {
		return nil, fmt.Errorf("unbalanced quotes or parentheses")
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" || len(out) > 0 {
		out = append(out, rest)
	}
	return out, nil
}

func (t chType) String() string {
	if t.params == nil {
		return t.name
	}
	return t.name + "(" + strings.Join(t.params, ", ") + ")"
}

// isNullable reports whether t is Nullable(...) (possibly inside LowCardinality).
func (t chType) isNullable() bool {
	switch t.name {
	case "Nullable":
		return true
	case "LowCardinality":
		return t.args[0].isNullable()
	}
	return false
}

// base strips Nullable and LowCardinality wrappers.
func (t chType) base() chType {
	for t.name == "Nullable" || t.name == "LowCardinality" {
		t = t.args[0]
	}
	return t
}

// intRange is the value range of an integer type.
type intRange struct {
	signed bool
	bits   int
}

func (r intRange) min() int64 {
	if !r.signed {
		return 0
	}
	return -1 << (r.bits - 1)
}

func (r intRange) max() uint64 {
	if r.signed {
		return 1<<(r.bits-1) - 1
	}
	if r.bits == 64 {
		return ^uint64(0)
	}
	return 1<<r.bits - 1
}

// intType reports whether t is one of the 8 to 64 bit integer types, and its range.
func intType(t chType) (intRange, bool) {
	switch t.name {
	case "Int8":
		return intRange{true, 8}, true
	case "Int16":
		return intRange{true, 16}, true
	case "Int32":
		return intRange{true, 32}, true
	case "Int64":
		return intRange{true, 64}, true
	case "UInt8":
		return intRange{false, 8}, true
	case "UInt16":
		return intRange{false, 16}, true
	case "UInt32":
		return intRange{false, 32}, true
	case "UInt64":
		return intRange{false, 64}, true
	}
	return intRange{}, false
}

// enumValues parses the names of Enum8('a' = 1, 'b' = 2).
func enumValues(t chType) (map[string]int, error) {
	out := make(map[string]int, len(t.params))
	for _, p := range t.params {
		name, num, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("enum element %q has no value", p)
		}
		name = strings.TrimSpace(name)
		uq, err := unquote(name)
		if err != nil {
			return nil, fmt.Errorf("enum element %q: %w", p, err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(num))
		if err != nil {
			return nil, fmt.Errorf("enum element %q: %w", p, err)
		}
		out[uq] = n
	}
	return out, nil
}

// dateTime64Precision returns the precision of DateTime64(p[, tz]).
func dateTime64Precision(t chType) (int, error) {
	if len(t.params) == 0 {
		return 0, fmt.Errorf("DateTime64 without precision")
	}
	p, err := strconv.Atoi(t.params[0])
	if err != nil || p < 0 || p > 9 {
		return 0, fmt.Errorf("DateTime64 precision %q", t.params[0])
	}
	return p, nil
}

func unquote(s string) (string, error) {
	if len(s) < 2 || s[0] != '\'' || s[len(s)-1] != '\'' {
		return "", fmt.Errorf("not a quoted string")
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		if s[i] == '\\' && i+1 < len(s)-1 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

// quoteString returns s as a ClickHouse string literal.
func quoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// quoteIdent returns name as a back-quoted identifier.
func quoteIdent(name string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(name) + "`"
}
