package transforms

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"cel.dev/cel-go/cel"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/switchyard-dev/switchyard/internal/config"
)

// builder compiles one route's transforms against one input message type.
type builder struct {
	route config.Route
	opts  Options
	input protoreflect.MessageDescriptor
	files *protoregistry.Files // the input's file and everything it imports, plus well-known types
	pos   func(string) config.Position
	path  string // YAML path of the route
	label string // `pipeline "p" route "r"`
	guard bool   // apply the contract's pii options
	errs  config.Errors

	hasher       *hasher
	piiMemo      map[protoreflect.FieldDescriptor]piiMode
	containsMemo map[protoreflect.FullName]bool
	shapeMemo    map[protoreflect.FullName]*shape
	piiNameSet   map[string]bool

	cols   []*col             // the output event's fields at the current step
	hidden map[string]piiMode // top-level fields the PII guard removed

	eventEnv, elemEnv *cel.Env
	filters           []*program // event filters (before any explode)
	rowFilters        []*program // filters after the explode
	exploded          bool
	explodeGet        *getter // reads the list being exploded
	elemType          *vtype  // the element's type as the explode step saw it
	usesNow           bool
	shapeDesc         map[*shape]protoreflect.MessageDescriptor // output type of each synthesized message
}

// errorf reports a problem at the YAML path p (relative paths start at the route).
func (b *builder) errorf(p, format string, args ...any) {
	b.errs = append(b.errs, config.Error{Pos: b.posOf(p), Msg: b.label + ": " + fmt.Sprintf(format, args...)})
}

// posOf finds where p, or its nearest written ancestor, was written.
func (b *builder) posOf(p string) config.Position {
	for p != "" {
		if b.pos != nil {
			if pos := b.pos(p); pos.Line > 0 || pos.File != "" {
				return pos
			}
		}
		switch {
		case strings.HasSuffix(p, "\"]"):
			p = p[:strings.LastIndex(p, "[\"")]
		case strings.HasSuffix(p, "]"):
			p = p[:strings.LastIndexByte(p, '[')]
		case strings.Contains(p, "."):
			p = p[:strings.LastIndexByte(p, '.')]
		default:
			p = ""
		}
	}
	return config.Position{}
}

// initial sets up the columns of the input event, with the PII guard applied.
func (b *builder) initial() {
	b.hidden = map[string]piiMode{}
	fields := b.input.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		c, mode := b.fieldCol(fd)
		if c == nil {
			b.hidden[string(fd.Name())] = mode
			continue
		}
		c.get = &getter{base: baseEvent, field: fd}
		b.cols = append(b.cols, c)
	}
}

// fieldCol is the column of input field fd with the PII guard applied; nil when the field
// is marked DROP (or cannot be guarded, which is reported).
func (b *builder) fieldCol(fd protoreflect.FieldDescriptor) (*col, piiMode) {
	mode := piiNone
	if b.guard {
		mode = b.piiOf(fd)
	}
	if mode == piiDrop {
		return nil, mode
	}
	t := b.fieldType(fd)
	c := &col{name: string(fd.Name()), in: fd, keep: true, typ: t}
	if mode != piiNone {
		cv, kind, problem := b.piiConv(fd, mode)
		if problem != "" {
			b.errorf(b.path, "%s", problem)
			return nil, piiDrop
		}
		if kind != t.kind {
			c.keep = false
		}
		t.kind, t.enum, t.utf8None = kind, nil, false
		t.convs = append(t.convs, cv)
	}
	return c, mode
}

// fieldType is the output type of input field fd, before any conversion.
func (b *builder) fieldType(fd protoreflect.FieldDescriptor) *vtype {
	t := &vtype{}
	vfd := fd
	if fd.IsMap() {
		t.mapKey = fd.MapKey().Kind()
		vfd = fd.MapValue()
	} else {
		t.list = fd.IsList()
		t.presence = !t.list && fd.HasPresence()
	}
	t.kind, t.enum = vfd.Kind(), vfd.Enum()
	if t.kind == protoreflect.GroupKind {
		t.kind = protoreflect.MessageKind
	}
	if md := vfd.Message(); md != nil {
		t.msg = b.shapeOf(md)
	}
	t.utf8None = t.kind == protoreflect.StringKind && vfd.ParentFile().Syntax() == protoreflect.Proto2
	return t
}

// shapeOf is the output type of message values of type md: reused unless the PII guard
// changes something in it.
func (b *builder) shapeOf(md protoreflect.MessageDescriptor) *shape {
	if !b.guard || !b.containsPII(md) {
		return b.reusedShape(md)
	}
	if s, ok := b.shapeMemo[md.FullName()]; ok {
		return s
	}
	s := &shape{in: md, hidden: map[string]piiMode{}}
	b.shapeMemo[md.FullName()] = s // before the fields: recursive messages refer to s
	fields := md.Fields()
	for i := range fields.Len() {
		c, mode := b.fieldCol(fields.Get(i))
		if c == nil {
			s.hidden[string(fields.Get(i).Name())] = mode
			continue
		}
		s.cols = append(s.cols, c)
	}
	return s
}

func (b *builder) reusedShape(md protoreflect.MessageDescriptor) *shape {
	return &shape{in: md, reused: true}
}

// materialize returns a private copy of s with its fields listed, so a step can change them.
func (b *builder) materialize(s *shape) *shape {
	n := &shape{in: s.in, hidden: s.hidden}
	if !s.reused {
		n.cols = slices.Clone(s.cols)
		return n
	}
	fields := s.in.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		c := &col{name: string(fd.Name()), in: fd, keep: true, typ: b.fieldType(fd)}
		n.cols = append(n.cols, c)
	}
	return n
}

// found is a column located by a field path.
type found struct {
	holder *[]*col // the list holding it
	index  int
	col    *col
}

// find locates the column at a dotted path. With modify, the columns along the way are
// replaced by private copies, so the caller may change what it finds. The problem says why
// nothing was found.
func (b *builder) find(path string, modify bool) (found, string) {
	parts := strings.Split(path, ".")
	holder, hidden, where := &b.cols, b.hidden, "the event"
	for i, part := range parts {
		idx := indexOf(*holder, part)
		if idx < 0 {
			if mode, ok := hidden[part]; ok {
				return found{}, fmt.Sprintf("%s has no field %q: the contract marks it pii = %s, so no route outputs it", where, part, mode)
			}
			if part == "" {
				return found{}, fmt.Sprintf("field path %q has an empty part", path)
			}
			return found{}, fmt.Sprintf("%s has no field %q at this step%s", where, part, didYouMean(part, names(*holder)))
		}
		c := (*holder)[idx]
		if i == len(parts)-1 {
			if modify {
				c = c.clone()
				(*holder)[idx] = c
			}
			return found{holder: holder, index: idx, col: c}, ""
		}
		switch {
		case c.typ.wkt() != "":
			return found{}, fmt.Sprintf("%s is a %s, whose fields steps do not reach into (cast it instead)", strings.Join(parts[:i+1], "."), c.typ)
		case !c.typ.isMessage() || c.typ.mapKey != 0:
			return found{}, fmt.Sprintf("%s is %s; only message fields have fields", strings.Join(parts[:i+1], "."), article(c.typ.String()))
		}
		if modify {
			c = c.clone()
			c.typ.msg = b.materialize(c.typ.msg)
			(*holder)[idx] = c
		}
		if c.typ.msg.reused {
			// Read-only lookups do not need a private copy; list the fields for the search.
			holder = &b.materialize(c.typ.msg).cols
		} else {
			holder = &c.typ.msg.cols
		}
		hidden = c.typ.msg.hidden
		where = strings.Join(parts[:i+1], ".")
	}
	return found{}, "empty field path"
}

// entries returns a map step's keys in the order they were written (by position), so steps
// apply as the file reads.
func (b *builder) entries(m map[string]string, p string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y string) int {
		px, py := b.posOf(p+entry(x)), b.posOf(p+entry(y))
		return cmp.Or(cmp.Compare(px.Line, py.Line), cmp.Compare(px.Col, py.Col), strings.Compare(x, y))
	})
	return keys
}

// entry is the YAML path suffix of a map entry, as config.Config.Positions spells it.
func entry(key string) string { return "[" + strconv.Quote(key) + "]" }

// stepNames lists the keys a transform sets.
func stepNames(t config.Transform) []string {
	var set []string
	add := func(ok bool, name string) {
		if ok {
			set = append(set, name)
		}
	}
	add(len(t.Select) > 0, "select")
	add(len(t.Drop) > 0, "drop")
	add(len(t.Rename) > 0, "rename")
	add(t.Flatten, "flatten")
	add(len(t.Set) > 0, "set")
	add(strings.TrimSpace(t.Filter) != "", "filter")
	add(len(t.Cast) > 0, "cast")
	add(len(t.Enrich) > 0, "enrich")
	add(t.Explode != "", "explode")
	return set
}

var allSteps = []string{"select", "drop", "rename", "flatten", "set", "filter", "cast", "enrich", "explode"}

// step applies transform i.
func (b *builder) step(i int, t config.Transform) {
	p := fmt.Sprintf("%s.transforms[%d]", b.path, i)
	at := fmt.Sprintf("transforms[%d]", i)
	set := stepNames(t)
	switch len(set) {
	case 0:
		b.errorf(p, "%s sets no step; set one of %s", at, strings.Join(allSteps, ", "))
		return
	case 1:
	default:
		b.errorf(p, "%s sets %s; give each step its own list item", at, strings.Join(set, " and "))
		return
	}
	at += " " + set[0]
	switch set[0] {
	case "select":
		b.selectStep(p+".select", at, t.Select)
	case "drop":
		b.dropStep(p+".drop", at, t.Drop)
	case "rename":
		b.renameStep(p+".rename", at, t.Rename)
	case "flatten":
		b.flattenStep(p+".flatten", at)
	case "set":
		b.setStep(p+".set", at, t.Set)
	case "filter":
		b.filterStep(p+".filter", at, t.Filter)
	case "cast":
		b.castStep(p+".cast", at, t.Cast)
	case "enrich":
		b.enrichStep(p+".enrich", at, t.Enrich)
	case "explode":
		b.explodeStep(p+".explode", at, t.Explode)
	}
}

// selection is the tree of selected paths: a nil child map selects the whole field.
type selection struct {
	order []string
	sub   map[string]*selection
	whole map[string]bool
}

func (s *selection) add(parts []string) {
	name := parts[0]
	if _, ok := s.sub[name]; !ok && !s.whole[name] {
		s.order = append(s.order, name)
	}
	if len(parts) == 1 || s.whole[name] {
		s.whole[name] = true
		return
	}
	child := s.sub[name]
	if child == nil {
		child = &selection{sub: map[string]*selection{}, whole: map[string]bool{}}
		s.sub[name] = child
	}
	child.add(parts[1:])
}

// selectStep keeps only the listed fields, in their order. Selecting a.b keeps a with only
// b (and whatever else of a is selected).
func (b *builder) selectStep(p, at string, paths []string) {
	sel := &selection{sub: map[string]*selection{}, whole: map[string]bool{}}
	ok := true
	seen := map[string]bool{}
	for j, path := range paths {
		ep := fmt.Sprintf("%s[%d]", p, j)
		if seen[path] {
			b.errorf(ep, "%s: field %q is listed twice", at, path)
			ok = false
			continue
		}
		seen[path] = true
		if _, problem := b.find(path, false); problem != "" {
			b.errorf(ep, "%s: %s", at, problem)
			ok = false
			continue
		}
		sel.add(strings.Split(path, "."))
	}
	if ok {
		b.cols = b.restrict(b.cols, sel)
	}
}

// restrict returns the columns sel selects, in its order.
func (b *builder) restrict(cols []*col, sel *selection) []*col {
	out := make([]*col, 0, len(sel.order))
	for _, name := range sel.order {
		c := cols[indexOf(cols, name)]
		if !sel.whole[name] {
			c = c.clone()
			c.typ.msg = b.materialize(c.typ.msg)
			c.typ.msg.cols = b.restrict(c.typ.msg.cols, sel.sub[name])
		}
		out = append(out, c)
	}
	return out
}

func (b *builder) dropStep(p, at string, paths []string) {
	for j, path := range paths {
		ep := fmt.Sprintf("%s[%d]", p, j)
		if b.hiddenPath(path) {
			continue // the PII guard already removed it
		}
		f, problem := b.find(path, true)
		if problem != "" {
			b.errorf(ep, "%s: %s", at, problem)
			continue
		}
		*f.holder = slices.Delete(*f.holder, f.index, f.index+1)
	}
}

// hiddenPath reports whether path names a field the PII guard removed.
func (b *builder) hiddenPath(path string) bool {
	parent, name := "", path
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		parent, name = path[:i], path[i+1:]
	}
	if parent == "" {
		_, ok := b.hidden[name]
		return ok
	}
	f, problem := b.find(parent, false)
	if problem != "" || !f.col.typ.isMessage() || f.col.typ.msg.hidden == nil {
		return false
	}
	_, ok := f.col.typ.msg.hidden[name]
	return ok
}

func (b *builder) renameStep(p, at string, m map[string]string) {
	for _, from := range b.entries(m, p) {
		ep := p + entry(from)
		to := m[from]
		if !validName(to) {
			b.errorf(ep, "%s: %q is not a valid field name (letters, digits and _, not starting with a digit)", at, to)
			continue
		}
		f, problem := b.find(from, true)
		if problem != "" {
			b.errorf(ep, "%s: %s", at, problem)
			continue
		}
		if j := indexOf(*f.holder, to); j >= 0 && j != f.index {
			b.errorf(ep, "%s: cannot rename %s to %q: a field of that name exists; drop it first", at, from, to)
			continue
		}
		f.col.name = to
	}
}

// flattenable reports whether flatten replaces c by its fields: singular messages except
// google.protobuf types and messages that contain themselves (seen).
func flattenable(c *col, seen []protoreflect.FullName) bool {
	t := c.typ
	return t.isMessage() && !t.list && t.mapKey == 0 && t.wkt() == "" && !slices.Contains(seen, t.msg.in.FullName())
}

func (b *builder) flattenStep(p, at string) {
	var out []*col
	origin := map[string]string{}
	var add func(c *col, prefix string, seen []protoreflect.FullName)
	add = func(c *col, from string, seen []protoreflect.FullName) {
		if !flattenable(c, seen) {
			if prev, ok := origin[c.name]; ok {
				b.errorf(p, "%s: %s and %s would both be named %q; rename one first", at, prev, from, c.name)
				return
			}
			origin[c.name] = from
			out = append(out, c)
			return
		}
		seen = append(seen, c.typ.msg.in.FullName())
		for _, sub := range b.materialize(c.typ.msg).cols {
			n := sub.clone()
			n.name = c.name + "_" + sub.name
			n.keep = false
			n.get = c.get.extend(sub.in)
			add(n, from+"."+sub.name, seen)
		}
	}
	for _, c := range b.cols {
		add(c, c.name, nil)
	}
	b.cols = out
}

func (b *builder) setStep(p, at string, m map[string]string) {
	for _, name := range b.entries(m, p) {
		ep := p + entry(name)
		label := fmt.Sprintf("%s %q", at, name)
		if !validName(name) {
			b.errorf(ep, "%s: %q is not a valid field name (letters, digits and _, not starting with a digit)", at, name)
			continue
		}
		prg, ast, problems := b.compileExpr(m[name], nil, label)
		if len(problems) == 0 {
			problems = b.piiReads(ast)
		}
		var t *vtype
		if len(problems) == 0 {
			var err error
			t, prg.out, err = b.outType(ast.OutputType())
			if err != nil {
				problems = []string{err.Error()}
			}
		}
		for _, msg := range problems {
			b.errorf(ep, "%s: %s", label, msg)
		}
		if len(problems) > 0 {
			continue
		}
		b.put(&col{name: name, typ: t, get: &getter{base: baseCEL, prg: prg}})
	}
}

// put adds a top-level column, replacing one of the same name in place.
func (b *builder) put(c *col) {
	if i := indexOf(b.cols, c.name); i >= 0 {
		b.cols[i] = c
		return
	}
	b.cols = append(b.cols, c)
}

func (b *builder) filterStep(p, at, expr string) {
	prg, _, problems := b.compileExpr(expr, cel.BoolType, at)
	for _, msg := range problems {
		b.errorf(p, "%s: %s", at, msg)
	}
	if prg == nil {
		return
	}
	if b.exploded {
		b.rowFilters = append(b.rowFilters, prg)
	} else {
		b.filters = append(b.filters, prg)
	}
}

func (b *builder) castStep(p, at string, m map[string]string) {
	for _, path := range b.entries(m, p) {
		ep := p + entry(path)
		label := fmt.Sprintf("%s %q", at, path)
		target := m[path]
		if !slices.Contains(castTargets, target) {
			b.errorf(ep, "%s: unknown type %q; cast to one of %s%s", label, target, strings.Join(castTargets, ", "), didYouMean(target, castTargets))
			continue
		}
		f, problem := b.find(path, true)
		if problem != "" {
			b.errorf(ep, "%s: %s", label, problem)
			continue
		}
		t, problem := b.castType(f.col.typ, target, label+" to "+target)
		if problem != "" {
			b.errorf(ep, "%s: %s", label, problem)
			continue
		}
		f.col.typ = t
		f.col.keep = false
	}
}

// metaKind is the Kafka metadata an enrich step reads.
type metaKind int

const (
	metaTopic metaKind = iota
	metaPartition
	metaOffset
	metaKey
	metaKeyBytes
	metaTimestamp
	metaIngestion
	metaHeader
)

var metaNames = map[string]metaKind{
	"topic": metaTopic, "partition": metaPartition, "offset": metaOffset, "key": metaKey,
	"key_bytes": metaKeyBytes, "timestamp": metaTimestamp, "ingestion_time": metaIngestion,
}

const headerPrefix = "header:"

func (b *builder) enrichStep(p, at string, m map[string]string) {
	for _, name := range b.entries(m, p) {
		ep := p + entry(name)
		src := m[name]
		if !validName(name) {
			b.errorf(ep, "%s: %q is not a valid field name (letters, digits and _, not starting with a digit)", at, name)
			continue
		}
		g := &getter{base: baseMeta}
		var t *vtype
		kind, ok := metaNames[src]
		switch {
		case strings.HasPrefix(src, headerPrefix) && len(src) > len(headerPrefix):
			g.meta, g.header = metaHeader, src[len(headerPrefix):]
			t = &vtype{kind: protoreflect.StringKind}
		case !ok:
			known := append(slices.Sorted(func(yield func(string) bool) {
				for k := range metaNames {
					if !yield(k) {
						return
					}
				}
			}), "header:NAME")
			b.errorf(ep, "%s %q: unknown metadata %q; use one of %s%s", at, name, src, strings.Join(known, ", "), didYouMean(src, known))
			continue
		default:
			g.meta = kind
			switch kind {
			case metaTopic, metaKey:
				t = &vtype{kind: protoreflect.StringKind}
			case metaKeyBytes:
				t = &vtype{kind: protoreflect.BytesKind}
			case metaPartition:
				t = &vtype{kind: protoreflect.Int32Kind}
			case metaOffset:
				t = &vtype{kind: protoreflect.Int64Kind}
			case metaTimestamp, metaIngestion:
				var err error
				if t, err = b.wktType("google.protobuf.Timestamp"); err != nil {
					b.errorf(ep, "%s %q: %v", at, name, err)
					continue
				}
				if kind == metaIngestion {
					b.usesNow = true
				}
			}
		}
		b.put(&col{name: name, typ: t, get: g})
	}
}

func (b *builder) explodeStep(p, at, path string) {
	if b.exploded {
		b.errorf(p, "%s: a route explodes at most one list", at)
		return
	}
	if strings.Contains(path, ".") {
		b.errorf(p, "%s: explode a top-level field (flatten or rename first)", at)
		return
	}
	f, problem := b.find(path, true)
	if problem != "" {
		b.errorf(p, "%s: %s", at, problem)
		return
	}
	c := f.col
	if !c.typ.list {
		b.errorf(p, "%s: %s is %s, not a repeated field", at, path, article(c.typ.String()))
		return
	}
	b.explodeGet = c.get
	c.typ.list = false
	c.typ.presence = c.typ.isMessage()
	c.keep = false
	c.get = &getter{base: baseElement}
	b.elemType = c.typ.clone()
	b.exploded = true
}
