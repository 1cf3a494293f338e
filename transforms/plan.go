package transforms

import (
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"cel.dev/cel-go/interpreter"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"switchyard/routing"
	"switchyard/sinks"
)

// This file is the per-event half: plans resolved once by Compile (output field
// descriptors, conversions, programs), executed by Apply without looking anything up by name.

// writer puts values into one field of an output message.
type writer struct {
	out   protoreflect.FieldDescriptor
	list  bool
	isMap bool
	convs []conv
	copy  *msgPlan // values are messages of a synthesized type: copy them with this plan
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
	dst.Set(w.out, e)
	return nil
}

// msgPlan copies input messages into a synthesized output message type.
type msgPlan struct {
	typ    protoreflect.MessageType
	fields []fieldPlan
}

type fieldPlan struct {
	in protoreflect.FieldDescriptor
	w  writer
}

func (p *msgPlan) copy(src protoreflect.Message) (protoreflect.Message, error) {
	dst := p.typ.New()
	for i := range p.fields {
		f := &p.fields[i]
		fd := fieldOf(src, f.in)
		if fd == nil || (fd.HasPresence() || fd.IsList() || fd.IsMap()) && !src.Has(fd) {
			continue
		}
		if err := f.w.write(src.Get(fd), dst); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// fieldOf returns fd, or the field of m's own descriptor with its number when m was built
// from another copy of the descriptors (messages made by CEL or the well-known Go types).
func fieldOf(m protoreflect.Message, fd protoreflect.FieldDescriptor) protoreflect.FieldDescriptor {
	if md := m.Descriptor(); fd.ContainingMessage() != md {
		return md.Fields().ByNumber(fd.Number())
	}
	return fd
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
		m = ctx.in
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
		fd := fieldOf(m, s)
		if fd == nil || !m.Has(fd) {
			return protoreflect.Value{}, false, nil
		}
		m = m.Get(fd).Message()
	}
	fd := fieldOf(m, g.field)
	if fd == nil || (fd.HasPresence() || fd.IsList() || fd.IsMap()) && !m.Has(fd) {
		return protoreflect.Value{}, false, nil
	}
	return m.Get(fd), true, nil
}

// evalCtx is the state of one Apply call; it is the CEL activation too. Chains pool them.
type evalCtx struct {
	chain   *Chain
	in      protoreflect.Message
	rec     *sinks.Record
	elem    protoreflect.Value // current element of the exploded list
	hasElem bool
	elemCEL any
	elemErr error
	elemOK  bool // elemCEL computed
	now     time.Time
	headers map[string]string
}

func (ctx *evalCtx) reset() {
	*ctx = evalCtx{chain: ctx.chain}
}

// ResolveName implements interpreter.Activation with the variables of routing.NewEnv plus
// element.
func (ctx *evalCtx) ResolveName(name string) (any, bool) {
	r := ctx.rec
	if r == nil {
		r = &sinks.Record{}
	}
	switch name {
	case routing.VarEvent:
		return ctx.in.Interface(), true
	case VarElement:
		if !ctx.hasElem {
			return nil, false
		}
		if !ctx.elemOK {
			ctx.elemOK = true
			v, err := ctx.chain.elemWriter.elemValue(ctx.elem)
			ctx.elemCEL, ctx.elemErr = celValue(ctx.chain.elemType, v), err
		}
		if ctx.elemErr != nil {
			return nil, false
		}
		return ctx.elemCEL, true
	case routing.VarTopic:
		return r.Topic, true
	case routing.VarPartition:
		return int64(r.Partition), true
	case routing.VarOffset:
		return r.Offset, true
	case routing.VarKey:
		return string(r.Key), true
	case routing.VarTimestamp:
		return r.Timestamp, true
	case routing.VarHeaders:
		if ctx.headers == nil {
			ctx.headers = make(map[string]string, len(r.Headers))
			for _, h := range r.Headers {
				ctx.headers[h.Key] = string(h.Value)
			}
		}
		return ctx.headers, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (ctx *evalCtx) Parent() interpreter.Activation { return nil }

var _ interpreter.Activation = (*evalCtx)(nil)

// elemValue converts an element with the conversions the explode step saw (not with casts
// added later, which CEL's type for element does not know about).
func (w *writer) elemValue(v protoreflect.Value) (protoreflect.Value, error) {
	for i := range w.convs {
		var err error
		if v, err = w.convs[i].fn(v); err != nil {
			return v, err
		}
	}
	return v, nil
}

// meta reads Kafka metadata.
func (ctx *evalCtx) meta(g *getter) (protoreflect.Value, bool, error) {
	r := ctx.rec
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
			p.fields = append(p.fields, fieldPlan{in: sc.in, w: writerFor(fields.Get(i), sc.typ)})
		}
		return p
	}
	writerFor = func(fd protoreflect.FieldDescriptor, t *vtype) writer {
		w := writer{out: fd, list: fd.IsList(), isMap: fd.IsMap(), convs: t.convs}
		if t.isMessage() && !t.msg.reused {
			w.copy = planFor(t.msg)
		}
		return w
	}
	c.out = dynamicpb.NewMessageType(out)
	fields := out.Fields()
	for i, col := range b.cols {
		c.cols = append(c.cols, colPlan{get: *col.get, w: writerFor(fields.Get(i), col.typ)})
	}
	if b.exploded {
		c.explode = b.explodeGet
		c.elemType = b.elemType
		c.elemWriter = writer{convs: b.elemType.convs}
	}
	c.filters, c.rowFilters = b.filters, b.rowFilters
}
