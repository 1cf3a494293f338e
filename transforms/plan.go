package transforms

import (
	"errors"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard-dev/switchyard/internal/expr"
)

// This file is the per-event half: plans resolved once by Compile (output field
// descriptors, conversions, programs), executed by Apply without looking anything up by name.

// writer puts values into one field of an output message.
type writer struct {
	out   protoreflect.FieldDescriptor
	list  bool
	isMap bool
	// implicit: a singular field without presence, whose zero value is not written (it
	// reads back the same, and dynamicpb would store it).
	implicit bool
	kind     protoreflect.Kind
	convs    []conv
	copy     *msgPlan // values are messages of a synthesized type: copy them with this plan
}

func newWriter(out protoreflect.FieldDescriptor, convs []conv, copy *msgPlan) writer {
	return writer{
		out: out, list: out.IsList(), isMap: out.IsMap(), convs: convs, copy: copy,
		implicit: !out.IsList() && !out.IsMap() && !out.HasPresence(),
		kind:     out.Kind(),
	}
}

// isZero reports whether v is the zero value of a scalar of kind k.
func isZero(v protoreflect.Value, k protoreflect.Kind) bool {
	switch k {
	case protoreflect.StringKind:
		return v.String() == ""
	case protoreflect.BytesKind:
		return len(v.Bytes()) == 0
	case protoreflect.BoolKind:
		return !v.Bool()
	case protoreflect.EnumKind:
		return v.Enum() == 0
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		return f == 0 && !math.Signbit(f)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v.Uint() == 0
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return false
	}
	return v.Int() == 0
}

// fieldError is a value-free failure of one step on one value.
type fieldError struct {
	step string
	err  error
}

func (e *fieldError) Error() string { return e.step + ": " + e.err.Error() }

// elem converts one value (element, map value).
func (w *writer) elem(v protoreflect.Value) (protoreflect.Value, error) {
	for i := range w.convs {
		var err error
		if v, err = w.convs[i].fn(v); err != nil {
			return v, &fieldError{step: w.convs[i].step, err: err}
		}
	}
	if w.copy != nil {
		m, err := w.copy.copy(v.Message())
		if err != nil {
			return protoreflect.Value{}, err
		}
		return protoreflect.ValueOfMessage(m), nil
	}
	return v, nil
}

// write sets field out of dst to v (a list or map for such fields), converted.
func (w *writer) write(v protoreflect.Value, dst protoreflect.Message) error {
	switch {
	case w.isMap:
		src := v.Map()
		if src.Len() == 0 {
			return nil
		}
		m := dst.Mutable(w.out).Map()
		var err error
		src.Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
			e, err = w.elem(e)
			if err != nil {
				return false
			}
			m.Set(k, e)
			return true
		})
		return err
	case w.list:
		src := v.List()
		n := src.Len()
		if n == 0 {
			return nil
		}
		l := dst.Mutable(w.out).List()
		for i := range n {
			e, err := w.elem(src.Get(i))
			if err != nil {
				return err
			}
			l.Append(e)
		}
		return nil
	}
	e, err := w.elem(v)
	if err != nil {
		return err
	}
	if w.implicit && isZero(e, w.kind) {
		return nil
	}
	dst.Set(w.out, e)
	return nil
}

// msgPlan copies input messages into a synthesized output message type.
type msgPlan struct {
	typ    protoreflect.MessageType
	fields []fieldPlan
}

type fieldPlan struct {
	in   protoreflect.FieldDescriptor
	test bool // absent unless Has (see hasTest)
	w    writer
}

func (p *msgPlan) copy(src protoreflect.Message) (protoreflect.Message, error) {
	dst := p.typ.New()
	for i := range p.fields {
		f := &p.fields[i]
		v, ok := read(src, f.in, f.test)
		if !ok {
			continue
		}
		if err := f.w.write(v, dst); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// hasTest reports whether a read of fd must ask Has: fields with presence, lists and maps
// (empty ones are skipped). Fields without presence are read as they are, so a cast turns
// their zero value into, say, "0".
func hasTest(fd protoreflect.FieldDescriptor) bool {
	return fd.HasPresence() || fd.IsList() || fd.IsMap()
}

// read returns field fd of m, or false when test says to ask Has and m lacks it. When m was
// built from another copy of the descriptors (messages made by CEL or the Go well-known
// types) the field is resolved by number against m's own descriptor.
func read(m protoreflect.Message, fd protoreflect.FieldDescriptor, test bool) (protoreflect.Value, bool) {
	if md := m.Descriptor(); fd.ContainingMessage() != md {
		if fd = md.Fields().ByNumber(fd.Number()); fd == nil {
			return protoreflect.Value{}, false
		}
		test = hasTest(fd)
	}
	if test && !m.Has(fd) {
		return protoreflect.Value{}, false
	}
	return m.Get(fd), true
}

// colPlan computes one top-level field of the output event.
type colPlan struct {
	get getter
	w   writer
}

// value reads the column's value; false when it is absent.
func (g *getter) value(ctx *evalCtx) (protoreflect.Value, bool, error) {
	var m protoreflect.Message
	switch g.base {
	case baseEvent:
		m = ctx.Event
	case baseElement:
		if len(g.steps) == 0 && g.field == nil {
			return ctx.elem, true, nil
		}
		m = ctx.elem.Message()
	case baseCEL:
		v, ok, err := g.prg.value(ctx)
		if err != nil {
			return v, false, &fieldError{step: g.prg.step, err: err}
		}
		if !ok || (len(g.steps) == 0 && g.field == nil) {
			return v, ok, nil
		}
		m = v.Message()
	case baseMeta:
		return ctx.meta(g)
	}
	for _, s := range g.steps {
		v, ok := read(m, s, true)
		if !ok {
			return protoreflect.Value{}, false, nil
		}
		m = v.Message()
	}
	v, ok := read(m, g.field, g.test)
	return v, ok, nil
}

// evalCtx is the state of one Apply call. Its Activation is what expressions see (the
// event, its record and the current element); the rest is transforms' own. Chains pool them.
type evalCtx struct {
	expr.Activation
	chain *Chain
	elem  protoreflect.Value // current element of the exploded list
	now   time.Time
}

func (ctx *evalCtx) reset() {
	ctx.Reset(nil, nil)
	ctx.elem, ctx.now = protoreflect.Value{}, time.Time{}
}

// elemValue converts an element with the conversions the explode step saw (not with casts
// added later, which CEL's type for element does not know about).
func (w *writer) elemValue(v protoreflect.Value) (protoreflect.Value, error) {
	for i := range w.convs {
		var err error
		if v, err = w.convs[i].fn(v); err != nil {
			return v, &fieldError{step: w.convs[i].step, err: err}
		}
	}
	return v, nil
}

// meta reads Kafka metadata.
func (ctx *evalCtx) meta(g *getter) (protoreflect.Value, bool, error) {
	r := ctx.Record
	switch g.meta {
	case metaIngestion:
		if ctx.now.IsZero() {
			ctx.now = ctx.chain.now()
		}
		return protoreflect.ValueOfMessage(timestamppb.New(ctx.now).ProtoReflect()), true, nil
	}
	if r == nil {
		return protoreflect.Value{}, false, nil
	}
	switch g.meta {
	case metaTopic:
		return protoreflect.ValueOfString(r.Topic), true, nil
	case metaPartition:
		return protoreflect.ValueOfInt32(r.Partition), true, nil
	case metaOffset:
		return protoreflect.ValueOfInt64(r.Offset), true, nil
	case metaKey:
		return protoreflect.ValueOfString(validString(r.Key)), true, nil
	case metaKeyBytes:
		return protoreflect.ValueOfBytes(r.Key), len(r.Key) > 0, nil
	case metaTimestamp:
		if r.Timestamp.IsZero() {
			return protoreflect.Value{}, false, nil
		}
		return protoreflect.ValueOfMessage(timestamppb.New(r.Timestamp).ProtoReflect()), true, nil
	case metaHeader:
		for i := len(r.Headers) - 1; i >= 0; i-- { // the last header of that name wins
			if r.Headers[i].Key == g.header {
				return protoreflect.ValueOfString(validString(r.Headers[i].Value)), true, nil
			}
		}
	}
	return protoreflect.Value{}, false, nil
}

// validString returns b as a string, with invalid UTF-8 replaced so the output encodes.
func validString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// row builds one output message.
func (c *Chain) row(ctx *evalCtx) (protoreflect.Message, error) {
	out := c.out.New()
	for i := range c.cols {
		cp := &c.cols[i]
		v, ok, err := cp.get.value(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if err := cp.w.write(v, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// keep evaluates filters.
func keep(ctx *evalCtx, filters []*program) (bool, error) {
	for _, f := range filters {
		v, err := f.eval(ctx)
		if err != nil {
			return false, &fieldError{step: f.step, err: err}
		}
		b, ok := v.Value().(bool)
		if !ok {
			return false, &fieldError{step: f.step, err: errors.New("expression yielded " + v.Type().TypeName() + ", want bool")}
		}
		if !b {
			return false, nil
		}
	}
	return true, nil
}

// plan resolves the columns into writers against the output descriptor.
func (b *builder) plan(c *Chain, out protoreflect.MessageDescriptor) {
	plans := map[*shape]*msgPlan{}
	var writerFor func(fd protoreflect.FieldDescriptor, t *vtype) writer
	var planFor func(s *shape) *msgPlan
	planFor = func(s *shape) *msgPlan {
		if p, ok := plans[s]; ok {
			return p
		}
		p := &msgPlan{}
		plans[s] = p // before the fields: recursive messages refer to p
		md := b.shapeDesc[s]
		p.typ = dynamicpb.NewMessageType(md)
		fields := md.Fields()
		for i, sc := range s.cols {
			p.fields = append(p.fields, fieldPlan{in: sc.in, test: hasTest(sc.in), w: writerFor(fields.Get(i), sc.typ)})
		}
		return p
	}
	writerFor = func(fd protoreflect.FieldDescriptor, t *vtype) writer {
		var copy *msgPlan
		if t.isMessage() && !t.msg.reused {
			copy = planFor(t.msg)
		}
		return newWriter(fd, t.convs, copy)
	}
	c.out = dynamicpb.NewMessageType(out)
	fields := out.Fields()
	for i, col := range b.cols {
		g := *col.get
		g.test = g.field != nil && hasTest(g.field)
		c.cols = append(c.cols, colPlan{get: g, w: writerFor(fields.Get(i), col.typ)})
	}
	for _, col := range b.cols {
		if col.get.base == baseCEL && col.get.prg.usesElement {
			c.usesElement = true
		}
	}
	for _, f := range b.rowFilters {
		c.usesElement = c.usesElement || f.usesElement
	}
	if b.exploded {
		g := *b.explodeGet
		g.test = g.field != nil && hasTest(g.field)
		c.explode = &g
		c.elemType = b.elemType
		c.elemWriter = writer{convs: b.elemType.convs}
	}
	c.filters, c.rowFilters = b.filters, b.rowFilters
}
