package config

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder walks yaml.v3 nodes and the config declarations side by side, filling the structs,
// recording positions and collecting every problem instead of stopping at the first.
type decoder struct {
	file string              // file of the nodes being decoded
	errs Errors              // problems found so far
	cfg  *Config             // being decoded, for LoadPartial
	pos  map[string]Position // Config.Positions being filled
	vpos map[string]Position // Config.ValuePositions being filled
	bad  map[string]bool     // paths of values that failed to decode, so checks skip them

	// failed holds scalars whose interpolation failed; they are not decoded, only counted
	// in skipped.
	failed  map[*yaml.Node]bool
	skipped int
	// broken is set when a source could not be parsed, so missing sections are not reported.
	broken bool
}

// pair is one key and value of a mapping.
type pair struct{ key, val *yaml.Node }

func (d *decoder) at(n *yaml.Node) Position {
	return Position{File: d.file, Line: n.Line, Col: n.Column}
}

// textStart is where the text of a scalar begins: after the opening quote of a quoted
// scalar, on the line after the indicator of a block scalar.
func (d *decoder) textStart(n *yaml.Node) Position {
	p := d.at(n)
	switch n.Style {
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		p.Col++
	case yaml.LiteralStyle, yaml.FoldedStyle:
		p.Line++
		p.Col = 0 // unknown indentation: callers add the column within the text
	}
	return p
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, Error{Pos: d.at(n), Msg: fmt.Sprintf(format, args...)})
}

// join appends a key to a YAML path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// resolve follows aliases to the anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// emptyMapping stands in for a null value where a mapping is expected, at the same position.
func emptyMapping(n *yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
}

// describe names what a node holds, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// pairs returns the entries of mapping n, with "<<" merge keys expanded (explicit keys win,
// then earlier merged mappings). Duplicate and non-string keys are reported and dropped.
func (d *decoder) pairs(n *yaml.Node) []pair {
	var out, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "invalid key: expected a string, got %s", describe(k))
			continue
		}
		if k.Value == "<<" && (k.Tag == "" || k.ShortTag() == "!!merge") {
			merged = append(merged, d.mergePairs(v)...)
			continue
		}
		if first, ok := seen[k.Value]; ok {
			d.errorf(k, "duplicate key %q (first set at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{k, v})
	}
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; !ok {
			seen[p.key.Value] = p.key
			out = append(out, p)
		}
	}
	return out
}

// mergePairs returns the entries a "<<" merge key brings in: a mapping or a list of mappings.
func (d *decoder) mergePairs(v *yaml.Node) []pair {
	v = resolve(v)
	switch v.Kind {
	case yaml.MappingNode:
		return d.pairs(v)
	case yaml.SequenceNode:
		var out []pair
		for _, el := range v.Content {
			if el = resolve(el); el.Kind != yaml.MappingNode {
				d.errorf(el, "invalid merge: expected a mapping, got %s", describe(el))
				continue
			}
			out = append(out, d.pairs(el)...)
		}
		return out
	}
	d.errorf(v, "invalid merge: expected a mapping or a list of mappings, got %s", describe(v))
	return nil
}

// decodeStruct decodes mapping n into the struct v declared by s. Keys the declaration lacks
// are reported with a suggestion; declared keys that are absent get their defaults, or are
// reported at n's position when required.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, s *structSpec, path, label string) {
	n = resolve(n)
	if isNull(n) {
		n = emptyMapping(n)
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "invalid %s: expected a mapping, got %s", label, describe(n))
		d.fillAbsent(v, s, d.at(n), path, "", false)
		return
	}
	set := make(map[*field]bool, len(s.Fields))
	for _, p := range d.pairs(n) {
		f := s.byName[p.key.Value]
		if f == nil {
			d.errorf(p.key, "unknown field %q%s", p.key.Value, didYouMean(p.key.Value, s.names))
			continue
		}
		set[f] = true
		fp := join(path, f.Name)
		d.pos[fp] = d.at(p.key)
		if p.val.Kind == yaml.ScalarNode && d.vpos != nil {
			d.vpos[fp] = d.textStart(p.val)
		}
		if f.sink != nil { // a sink kind section: decoded into Sink.Options
			opts := reflect.New(f.Type).Elem()
			d.decodeField(p.val, opts, f, fp, f.Name)
			v.Addr().Interface().(*Sink).addSection(f.sink, opts.Interface())
			continue
		}
		d.decodeField(p.val, v.Field(f.Index), f, fp, f.Name)
	}
	for _, f := range s.Fields {
		if !set[f] && f.sink == nil {
			d.absent(v.Field(f.Index), f, d.at(n), path, f.Name, true)
		}
	}
	// A value may be given inline or read from a file (password, password_file), not both.
	for _, f := range s.Fields {
		inline := s.byName[strings.TrimSuffix(f.Name, "_file")]
		if !strings.HasSuffix(f.Name, "_file") || inline == nil || f.sink != nil || inline.sink != nil || !set[f] || !set[inline] ||
			f.Kind != kindString || inline.Kind != kindString {
			continue
		}
		if v.Field(f.Index).String() != "" && v.Field(inline.Index).String() != "" {
			d.errs = append(d.errs, Error{Pos: d.pos[join(path, f.Name)],
				Msg: fmt.Sprintf("set %s or %s, not both", inline.Name, f.Name)})
		}
	}
}

// fillAbsent applies absent to every field of s.
func (d *decoder) fillAbsent(v reflect.Value, s *structSpec, parent Position, parentPath, prefix string, report bool) {
	for _, f := range s.Fields {
		if f.sink != nil {
			continue
		}
		d.absent(v.Field(f.Index), f, parent, parentPath, prefix+f.Name, report)
	}
}

// absent handles a field whose key was not written: it reports the field if it is required
// (naming it by rel, relative to the mapping at parentPath, and pointing at that mapping),
// applies its default, and recurses into nested structs, whose required fields are then
// reported only if the struct itself was optional.
func (d *decoder) absent(v reflect.Value, f *field, parent Position, parentPath, rel string, report bool) {
	if report && f.Required {
		msg := fmt.Sprintf("missing required field %q", rel)
		if parentPath != "" {
			msg += " in " + parentPath
		}
		d.errs = append(d.errs, Error{Pos: parent, Msg: msg})
		report = false
	}
	if f.def.IsValid() {
		v.Set(f.def)
		return
	}
	if f.Kind == kindStruct {
		d.fillAbsent(v, f.Struct, parent, parentPath, rel+".", report)
	}
}

// decodeField decodes value n into v, declared by f. path is the YAML path of the value and
// label how messages name it (the key, or e.g. "brokers[1]").
func (d *decoder) decodeField(n *yaml.Node, v reflect.Value, f *field, path, label string) {
	n = resolve(n)
	before, skipped := len(d.errs), d.skipped
	defer func() {
		if (len(d.errs) > before || d.skipped > skipped) && d.bad != nil {
			d.bad[path] = true
		}
	}()
	if d.failed[n] {
		d.skipped++
		return
	}
	if isNull(n) {
		switch {
		case f.Kind == kindPtrStruct:
			p := reflect.New(f.Type.Elem())
			d.decodeStruct(emptyMapping(n), p.Elem(), f.Struct, path, label)
			v.Set(p)
		case f.Kind == kindStruct:
			d.decodeStruct(emptyMapping(n), v, f.Struct, path, label)
		case f.Required:
			d.errorf(n, "required field %q is empty", label)
		default:
			d.absent(v, f, d.at(n), "", label, false)
		}
		return
	}
	switch f.Kind {
	case kindStruct:
		d.decodeStruct(n, v, f.Struct, path, label)
	case kindPtrStruct:
		p := reflect.New(f.Type.Elem())
		d.decodeStruct(n, p.Elem(), f.Struct, path, label)
		v.Set(p)
	case kindStructs:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "invalid %s: expected a list, got %s", label, describe(n))
			return
		}
		if len(n.Content) == 0 {
			break // empty lists and maps stay nil, like absent ones
		}
		s := reflect.MakeSlice(f.Type, len(n.Content), len(n.Content))
		for i, el := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.pos[p] = d.at(el)
			d.decodeStruct(el, s.Index(i), f.Struct, p, fmt.Sprintf("%s[%d]", label, i))
		}
		v.Set(s)
	case kindStrings:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "invalid %s: expected a list of strings, got %s", label, describe(n))
			return
		}
		s := make([]string, 0, len(n.Content))
		for i, el := range n.Content {
			d.pos[fmt.Sprintf("%s[%d]", path, i)] = d.at(el)
			if str, ok := d.str(resolve(el), fmt.Sprintf("%s[%d]", label, i)); ok {
				s = append(s, str)
			}
		}
		if len(s) > 0 {
			v.Set(reflect.ValueOf(s).Convert(f.Type))
		}
	case kindInts:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "invalid %s: expected a list of integers, got %s", label, describe(n))
			return
		}
		if len(n.Content) == 0 {
			break
		}
		s := reflect.MakeSlice(f.Type, len(n.Content), len(n.Content))
		elem := &field{Kind: kindInt, Type: f.Type.Elem()}
		for i, el := range n.Content {
			d.pos[fmt.Sprintf("%s[%d]", path, i)] = d.at(el)
			if el = resolve(el); d.failed[el] {
				d.skipped++
				continue
			}
			d.decodeScalar(el, s.Index(i), elem, fmt.Sprintf("%s[%d]", label, i))
		}
		v.Set(s)
	case kindStringMap:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "invalid %s: expected a mapping of strings, got %s", label, describe(n))
			return
		}
		m := reflect.MakeMap(f.Type)
		for _, p := range d.pairs(n) {
			el := fmt.Sprintf("[%s]", strconv.Quote(p.key.Value))
			d.pos[path+el] = d.at(p.key)
			if p.key.Value == "" {
				d.errorf(p.key, "invalid %s: empty key", label)
				continue
			}
			if str, ok := d.str(resolve(p.val), label+el); ok {
				m.SetMapIndex(reflect.ValueOf(p.key.Value), reflect.ValueOf(str))
			}
		}
		if m.Len() > 0 {
			v.Set(m)
		}
	default:
		d.decodeScalar(n, v, f, label)
	}
	if f.Required && len(d.errs) == before && d.skipped == skipped {
		switch f.Kind {
		case kindString, kindStrings, kindInts, kindStringMap, kindStructs:
			if v.Len() == 0 {
				d.errorf(n, "required field %q is empty", label)
			}
		}
	}
}

// str decodes a non-empty string element of a list or map.
func (d *decoder) str(n *yaml.Node, label string) (string, bool) {
	if d.failed[n] {
		d.skipped++
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "invalid %s: expected a string, got %s", label, describe(n))
		return "", false
	}
	if n.Value == "" || isNull(n) {
		d.errorf(n, "invalid %s: must not be empty", label)
		return "", false
	}
	return n.Value, true
}

// decodeScalar decodes a string, boolean, integer, duration or size. Values are read from the
// scalar's text whatever its YAML tag, so that quoted and interpolated values work.
func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, f *field, label string) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "invalid %s: expected %s, got %s", label, article(f.typeName()), describe(n))
		return
	}
	s := n.Value
	switch f.Kind {
	case kindString:
		if f.Enum != nil && !slices.Contains(f.Enum, s) {
			d.errorf(n, "invalid %s %q: must be one of %s%s", label, s, quoteList(f.Enum), didYouMean(s, f.Enum))
			return
		}
		v.SetString(s)
	case kindBool:
		switch strings.ToLower(s) {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.errorf(n, "invalid %s: expected true or false, got %q", label, s)
		}
	case kindInt:
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
		switch {
		case err != nil || v.OverflowInt(i):
			d.errorf(n, "invalid %s: expected an integer, got %q", label, s)
		case i < 0:
			d.errorf(n, "invalid %s: must not be negative, got %d", label, i)
		default:
			v.SetInt(i)
		}
	case kindDuration:
		dur, err := time.ParseDuration(s)
		switch {
		case err != nil:
			d.errorf(n, "invalid %s: %q is not a duration (use e.g. \"250ms\", \"5s\" or \"1m30s\")", label, s)
		case dur < 0:
			d.errorf(n, "invalid %s: must not be negative, got %q", label, s)
		default:
			v.SetInt(int64(dur))
		}
	case kindBytes:
		b, err := ParseBytes(s)
		if err != nil {
			d.errorf(n, "invalid %s: %q is not a size (use bytes, or a number with a unit: KB, MB, GB, KiB, MiB, GiB)", label, s)
			return
		}
		v.SetInt(int64(b))
	case kindText:
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.errorf(n, "invalid %s: %v", label, err)
		}
	}
}

func article(typeName string) string {
	if strings.IndexAny(typeName[:1], "aeiou") == 0 {
		return "an " + typeName
	}
	return "a " + typeName
}

// quoteList formats allowed values as `"a", "b", "c"`.
func quoteList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}
