package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// lookupFunc finds an environment variable; os.LookupEnv in production.
type lookupFunc func(name string) (string, bool)

// interpolate replaces ${VAR} and ${VAR:-default} in every scalar value under n (keys are left
// alone) before anything is decoded, so that any field can come from the environment. "$${"
// writes a literal "${". A value that becomes empty counts as not written, so the field's
// default applies. A variable that is not set and has no default is reported at its value.
func (d *decoder) interpolate(n *yaml.Node, env lookupFunc) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			d.interpolate(c, env)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			d.interpolate(n.Content[i], env)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		out, problems := expand(n.Value, env)
		for _, p := range problems {
			d.errorf(n, "%s", p)
		}
		if len(problems) > 0 {
			d.failed[n] = true
			return
		}
		n.Value = out
		if out == "" {
			n.Tag = "!!null"
		}
	}
}

// expand performs the substitution on one string, returning every problem found in it.
func expand(s string, env lookupFunc) (string, []string) {
	var b strings.Builder
	var problems []string
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			return b.String(), problems
		}
		b.WriteString(s[:i])
		s = s[i:]
		switch {
		case strings.HasPrefix(s, "$${"):
			b.WriteString("${")
			s = s[3:]
		case strings.HasPrefix(s, "${"):
			end := strings.IndexByte(s, '}')
			if end < 0 {
				problems = append(problems, fmt.Sprintf("unterminated %q: write \"$${\" for a literal \"${\"", s))
				return b.String(), problems
			}
			ref := s[2:end]
			s = s[end+1:]
			name, def, hasDef := strings.Cut(ref, ":-")
			if !validVarName(name) {
				problems = append(problems, fmt.Sprintf("invalid environment variable reference \"${%s}\"", ref))
				continue
			}
			val, ok := env(name)
			switch {
			case ok && (val != "" || !hasDef):
				b.WriteString(val)
			case hasDef:
				b.WriteString(def)
			default:
				problems = append(problems, fmt.Sprintf("environment variable %q is not set (write ${%s:-default} to give a default)", name, name))
			}
		default:
			b.WriteByte('$')
			s = s[1:]
		}
	}
}

// validVarName reports whether name is a shell-style variable name.
func validVarName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
