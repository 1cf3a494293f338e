package transforms

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard-dev/switchyard/internal/expr"
)

// program is one compiled CEL expression of a set or filter step.
type program struct {
	prg         cel.Program
	usesElement bool
	step        string // for run-time errors: `transforms[2] set "amount_cents"`
	// out converts the result to the output value; nil for filters.
	out func(ref.Val) (protoreflect.Value, bool, error)
}

// eval evaluates the expression against ctx. Errors are value-free (see SafeCELError): the
// CEL error is deliberately not wrapped, since its text can quote event data and anything
// that unwraps or formats the chain would show it.
func (p *program) eval(ctx *evalCtx) (ref.Val, error) {
	v, _, err := p.prg.Eval(&ctx.Activation)
	if err != nil {
		return nil, errors.New("evaluate expression: " + SafeCELError(err))
	}
	return v, nil
}

// value evaluates a set expression into its output value; false when it yields null.
func (p *program) value(ctx *evalCtx) (protoreflect.Value, bool, error) {
	v, err := p.eval(ctx)
	if err != nil {
		return protoreflect.Value{}, false, err
	}
	return p.out(v)
}

// env returns the CEL environment for the steps at hand: the route environment (event and
// kafka.*) plus element once the chain has exploded a list.
func (b *builder) env() (*cel.Env, error) {
	if b.exploded {
		if b.elemEnv == nil {
			t, err := b.celType(b.elemType)
			if err != nil {
				return nil, err
			}
			env, err := expr.NewEnv(b.input, expr.Element(t))
			if err != nil {
				return nil, err
			}
			b.elemEnv = env
		}
		return b.elemEnv, nil
	}
	if b.eventEnv == nil {
		env, err := expr.NewEnv(b.input)
		if err != nil {
			return nil, err
		}
		b.eventEnv = env
	}
	return b.eventEnv, nil
}

// celType is the CEL type of the exploded element as expressions see it: message elements
// as their contract type (whose PII fields expressions may not read), other elements as
// their output values.
func (b *builder) celType(t *vtype) (*cel.Type, error) {
	if t.isMessage() {
		switch t.msg.in.FullName() {
		case "google.protobuf.Timestamp":
			return cel.TimestampType, nil
		case "google.protobuf.Duration":
			return cel.DurationType, nil
		case "google.protobuf.StringValue":
			return cel.NullableType(cel.StringType), nil
		case "google.protobuf.BytesValue":
			return cel.NullableType(cel.BytesType), nil
		case "google.protobuf.BoolValue":
			return cel.NullableType(cel.BoolType), nil
		case "google.protobuf.DoubleValue", "google.protobuf.FloatValue":
			return cel.NullableType(cel.DoubleType), nil
		case "google.protobuf.Int32Value", "google.protobuf.Int64Value":
			return cel.NullableType(cel.IntType), nil
		case "google.protobuf.UInt32Value", "google.protobuf.UInt64Value":
			return cel.NullableType(cel.UintType), nil
		case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.Any":
			return cel.DynType, nil
		}
		return cel.ObjectType(string(t.msg.in.FullName())), nil
	}
	switch t.kind {
	case protoreflect.BoolKind:
		return cel.BoolType, nil
	case protoreflect.StringKind:
		return cel.StringType, nil
	case protoreflect.BytesKind:
		return cel.BytesType, nil
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return cel.DoubleType, nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return cel.UintType, nil
	default: // signed integers and enums
		return cel.IntType, nil
	}
}

// celValue turns an output element value into what CEL expects for celType(t).
func celValue(t *vtype, v protoreflect.Value) any {
	if t.isMessage() {
		return v.Message().Interface()
	}
	switch t.kind {
	case protoreflect.BoolKind:
		return v.Bool()
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BytesKind:
		return v.Bytes()
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return v.Float()
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v.Uint()
	case protoreflect.EnumKind:
		return int64(v.Enum())
	default:
		return v.Int()
	}
}

// compileExpr compiles expr for a set (want nil) or filter (want bool) step. It returns the
// program, its checked AST and one message per problem.
func (b *builder) compileExpr(src string, want *cel.Type, step string) (*program, *cel.Ast, []string) {
	env, err := b.env()
	if err != nil {
		return nil, nil, []string{fmt.Sprintf("build expression environment: %v", err)}
	}
	ast, prg, err := expr.Compile(env, src, want)
	if ce := (*expr.CompileError)(nil); errors.As(err, &ce) {
		// Positions are relative to the expression: the step's path locates it in the file.
		var out []string
		for _, is := range ce.List() {
			msg := is.Message
			if is.Line > 0 {
				if strings.Contains(src, "\n") {
					msg += fmt.Sprintf(" (expression line %d, column %d)", is.Line, is.Column)
				} else {
					msg += fmt.Sprintf(" (expression column %d)", is.Column)
				}
			}
			out = append(out, msg)
		}
		return nil, nil, out
	}
	if err != nil {
		return nil, nil, []string{err.Error()}
	}
	p := &program{prg: prg, step: step}
	if b.exploded {
		for _, e := range celast.MatchDescendants(celast.NavigateAST(ast.NativeRep()), celast.KindMatcher(celast.IdentKind)) {
			if e.AsIdent() == expr.VarElement {
				p.usesElement = true
			}
		}
	}
	return p, ast, nil
}

// piiReads returns what a set expression does with personal data: reading a field the
// contract marks pii (has() is allowed), reading a field of a dyn value that has the name of
// such a field, or yielding a value that holds such fields. Expressions of routes with
// pii: raw are not checked.
func (b *builder) piiReads(ast *cel.Ast) []string {
	if !b.guard {
		return nil
	}
	native := ast.NativeRep()
	var out []string
	add := func(s string) {
		for _, o := range out {
			if o == s {
				return
			}
		}
		out = append(out, s)
	}
	for _, e := range celast.MatchDescendants(celast.NavigateAST(native), celast.KindMatcher(celast.SelectKind)) {
		sel := e.AsSelect()
		if sel.IsTestOnly() {
			continue
		}
		opType := native.GetType(sel.Operand().ID())
		switch opType.Kind() {
		case types.StructKind:
			md := b.messageNamed(opType.TypeName())
			if md == nil {
				continue
			}
			if fd := md.Fields().ByName(protoreflect.Name(sel.FieldName())); fd != nil {
				if mode := b.piiOf(fd); mode != piiNone {
					add(fmt.Sprintf("expression reads %s, which the contract marks pii = %s; read it with pii: raw and a pii_reason, or select the field itself to get its %s value", fd.FullName(), mode, mode))
				}
			}
		case types.DynKind, types.AnyKind:
			if b.piiNames()[sel.FieldName()] {
				add(fmt.Sprintf("expression reads field %q of a dyn value, and the contract marks a field of that name as personal data", sel.FieldName()))
			}
		}
	}
	if t := ast.OutputType(); b.typeHoldsPII(t) {
		add(fmt.Sprintf("expression yields %s, which holds fields the contract marks as personal data; yield the fields you need instead", t))
	}
	return out
}

func (b *builder) messageNamed(name string) protoreflect.MessageDescriptor {
	d, err := b.files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil
	}
	md, _ := d.(protoreflect.MessageDescriptor)
	return md
}

func (b *builder) typeHoldsPII(t *cel.Type) bool {
	switch t.Kind() {
	case types.StructKind:
		md := b.messageNamed(t.TypeName())
		return md != nil && b.containsPII(md)
	case types.ListKind, types.MapKind:
		for _, p := range t.Parameters() {
			if b.typeHoldsPII(p) {
				return true
			}
		}
	}
	return false
}

// outType maps the result type of a set expression to the output field's type and returns
// the converter of results to output values.
func (b *builder) outType(t *cel.Type) (*vtype, func(ref.Val) (protoreflect.Value, bool, error), error) {
	switch t.Kind() {
	case types.ListKind:
		et := t.Parameters()[0]
		if isNullable(et) {
			return nil, nil, fmt.Errorf("expression yields %s; lists of nullable values are not supported", t)
		}
		vt, conv, err := b.scalarOutType(et, t)
		if err != nil {
			return nil, nil, err
		}
		vt.list, vt.presence = true, false
		return vt, func(v ref.Val) (protoreflect.Value, bool, error) {
			l, ok := v.(traits.Lister)
			if !ok {
				return protoreflect.Value{}, false, fmt.Errorf("expression yielded %s, want a list", v.Type().TypeName())
			}
			it := l.Iterator()
			var vals []protoreflect.Value
			for it.HasNext() == types.True {
				e, present, err := conv(it.Next())
				if err != nil {
					return protoreflect.Value{}, false, err
				}
				if !present {
					return protoreflect.Value{}, false, errors.New("expression yielded a list holding null")
				}
				vals = append(vals, e)
			}
			return protoreflect.ValueOfList(&sliceList{vals: vals}), true, nil
		}, nil
	case types.MapKind:
		kt, et := t.Parameters()[0], t.Parameters()[1]
		var key protoreflect.Kind
		switch kt.Kind() {
		case types.StringKind:
			key = protoreflect.StringKind
		case types.IntKind:
			key = protoreflect.Int64Kind
		case types.UintKind:
			key = protoreflect.Uint64Kind
		case types.BoolKind:
			key = protoreflect.BoolKind
		default:
			return nil, nil, fmt.Errorf("expression yields %s; map keys must be string, int, uint or bool", t)
		}
		if isNullable(et) {
			return nil, nil, fmt.Errorf("expression yields %s; maps of nullable values are not supported", t)
		}
		vt, conv, err := b.scalarOutType(et, t)
		if err != nil {
			return nil, nil, err
		}
		vt.mapKey, vt.presence = key, false
		return vt, func(v ref.Val) (protoreflect.Value, bool, error) {
			m, ok := v.(traits.Mapper)
			if !ok {
				return protoreflect.Value{}, false, fmt.Errorf("expression yielded %s, want a map", v.Type().TypeName())
			}
			out := &sliceMap{}
			it := m.Iterator()
			for it.HasNext() == types.True {
				k := it.Next()
				mk, err := mapKey(k, key)
				if err != nil {
					return protoreflect.Value{}, false, err
				}
				e, present, err := conv(m.Get(k))
				if err != nil {
					return protoreflect.Value{}, false, err
				}
				if !present {
					return protoreflect.Value{}, false, errors.New("expression yielded a map holding null")
				}
				out.keys = append(out.keys, mk)
				out.vals = append(out.vals, e)
			}
			return protoreflect.ValueOfMap(out), true, nil
		}, nil
	}
	return b.scalarOutType(t, t)
}

func isNullable(t *cel.Type) bool {
	return t.Kind() != types.NullTypeKind && t.Kind() != types.DynKind && t.Kind() != types.AnyKind &&
		t.IsAssignableType(types.NullType)
}

// scalarOutType maps a non-list, non-map result type; whole is the full type, for messages.
func (b *builder) scalarOutType(t, whole *cel.Type) (*vtype, func(ref.Val) (protoreflect.Value, bool, error), error) {
	if isNullable(t) {
		return b.wrapperOutType(t)
	}
	switch t.Kind() {
	case types.BoolKind:
		return &vtype{kind: protoreflect.BoolKind}, func(v ref.Val) (protoreflect.Value, bool, error) {
			x, ok := v.Value().(bool)
			if !ok {
				return badResult(v, "bool")
			}
			return protoreflect.ValueOfBool(x), true, nil
		}, nil
	case types.IntKind:
		return &vtype{kind: protoreflect.Int64Kind}, func(v ref.Val) (protoreflect.Value, bool, error) {
			x, ok := v.Value().(int64)
			if !ok {
				return badResult(v, "int")
			}
			return protoreflect.ValueOfInt64(x), true, nil
		}, nil
	case types.UintKind:
		return &vtype{kind: protoreflect.Uint64Kind}, func(v ref.Val) (protoreflect.Value, bool, error) {
			x, ok := v.Value().(uint64)
			if !ok {
				return badResult(v, "uint")
			}
			return protoreflect.ValueOfUint64(x), true, nil
		}, nil
	case types.DoubleKind:
		return &vtype{kind: protoreflect.DoubleKind}, func(v ref.Val) (protoreflect.Value, bool, error) {
			x, ok := v.Value().(float64)
			if !ok {
				return badResult(v, "double")
			}
			return protoreflect.ValueOfFloat64(x), true, nil
		}, nil
	case types.StringKind:
		return &vtype{kind: protoreflect.StringKind}, func(v ref.Val) (protoreflect.Value, bool, error) {
			x, ok := v.Value().(string)
			if !ok {
				return badResult(v, "string")
			}
			return protoreflect.ValueOfString(x), true, nil
		}, nil
	case types.BytesKind:
		return &vtype{kind: protoreflect.BytesKind}, func(v ref.Val) (protoreflect.Value, bool, error) {
			x, ok := v.Value().([]byte)
			if !ok {
				return badResult(v, "bytes")
			}
			return protoreflect.ValueOfBytes(x), true, nil
		}, nil
	case types.TimestampKind:
		vt, err := b.wktType("google.protobuf.Timestamp")
		if err != nil {
			return nil, nil, err
		}
		return vt, func(v ref.Val) (protoreflect.Value, bool, error) {
			x, ok := v.Value().(time.Time)
			if !ok {
				return badResult(v, "timestamp")
			}
			return protoreflect.ValueOfMessage(timestamppb.New(x).ProtoReflect()), true, nil
		}, nil
	case types.DurationKind:
		vt, err := b.wktType("google.protobuf.Duration")
		if err != nil {
			return nil, nil, err
		}
		return vt, func(v ref.Val) (protoreflect.Value, bool, error) {
			x, ok := v.Value().(time.Duration)
			if !ok {
				return badResult(v, "duration")
			}
			return protoreflect.ValueOfMessage(durationpb.New(x).ProtoReflect()), true, nil
		}, nil
	case types.StructKind:
		md := b.messageNamed(t.TypeName())
		if md == nil {
			return nil, nil, fmt.Errorf("expression yields %s, a message type the contract's files do not declare", whole)
		}
		name := md.FullName()
		return &vtype{kind: protoreflect.MessageKind, msg: b.reusedShape(md), presence: true}, func(v ref.Val) (protoreflect.Value, bool, error) {
			x, ok := v.Value().(proto.Message)
			if !ok || x.ProtoReflect().Descriptor().FullName() != name {
				return badResult(v, string(name))
			}
			return protoreflect.ValueOfMessage(x.ProtoReflect()), true, nil
		}, nil
	case types.DynKind, types.AnyKind:
		return nil, nil, fmt.Errorf("expression yields %s, which has no fixed type; convert it, e.g. with string(), int(), double() or bool()", whole)
	case types.NullTypeKind:
		return nil, nil, fmt.Errorf("expression always yields null")
	}
	return nil, nil, fmt.Errorf("expression yields %s, which cannot be a field", whole)
}

// wrapperOutType maps a nullable primitive (a google.protobuf wrapper field) to the wrapper
// message; null results leave the field unset.
func (b *builder) wrapperOutType(t *cel.Type) (*vtype, func(ref.Val) (protoreflect.Value, bool, error), error) {
	var name protoreflect.FullName
	var wrap func(any) (proto.Message, bool)
	switch t.Kind() {
	case types.BoolKind:
		name, wrap = "google.protobuf.BoolValue", func(x any) (proto.Message, bool) { v, ok := x.(bool); return wrapperspb.Bool(v), ok }
	case types.IntKind:
		name, wrap = "google.protobuf.Int64Value", func(x any) (proto.Message, bool) { v, ok := x.(int64); return wrapperspb.Int64(v), ok }
	case types.UintKind:
		name, wrap = "google.protobuf.UInt64Value", func(x any) (proto.Message, bool) { v, ok := x.(uint64); return wrapperspb.UInt64(v), ok }
	case types.DoubleKind:
		name, wrap = "google.protobuf.DoubleValue", func(x any) (proto.Message, bool) { v, ok := x.(float64); return wrapperspb.Double(v), ok }
	case types.StringKind:
		name, wrap = "google.protobuf.StringValue", func(x any) (proto.Message, bool) { v, ok := x.(string); return wrapperspb.String(v), ok }
	case types.BytesKind:
		name, wrap = "google.protobuf.BytesValue", func(x any) (proto.Message, bool) { v, ok := x.([]byte); return wrapperspb.Bytes(v), ok }
	default:
		return nil, nil, fmt.Errorf("expression yields %s, which cannot be a field", t)
	}
	vt, err := b.wktType(name)
	if err != nil {
		return nil, nil, err
	}
	return vt, func(v ref.Val) (protoreflect.Value, bool, error) {
		if v.Type() == types.NullType {
			return protoreflect.Value{}, false, nil
		}
		m, ok := wrap(v.Value())
		if !ok {
			return badResult(v, string(name))
		}
		return protoreflect.ValueOfMessage(m.ProtoReflect()), true, nil
	}, nil
}

func badResult(v ref.Val, want string) (protoreflect.Value, bool, error) {
	return protoreflect.Value{}, false, fmt.Errorf("expression yielded %s, want %s", v.Type().TypeName(), want)
}

func mapKey(k ref.Val, kind protoreflect.Kind) (protoreflect.MapKey, error) {
	switch x := k.Value().(type) {
	case string:
		if kind == protoreflect.StringKind {
			return protoreflect.ValueOfString(x).MapKey(), nil
		}
	case int64:
		if kind == protoreflect.Int64Kind {
			return protoreflect.ValueOfInt64(x).MapKey(), nil
		}
	case uint64:
		if kind == protoreflect.Uint64Kind {
			return protoreflect.ValueOfUint64(x).MapKey(), nil
		}
	case bool:
		if kind == protoreflect.BoolKind {
			return protoreflect.ValueOfBool(x).MapKey(), nil
		}
	}
	return protoreflect.MapKey{}, fmt.Errorf("expression yielded a map key of type %s, want %s", k.Type().TypeName(), kind)
}

// sliceList is a read-only protoreflect.List of computed values; the chain only reads it
// (Len, Get) while copying it into an output message. Mutating methods do nothing.
type sliceList struct{ vals []protoreflect.Value }

func (l *sliceList) Len() int                          { return len(l.vals) }
func (l *sliceList) Get(i int) protoreflect.Value      { return l.vals[i] }
func (l *sliceList) Set(int, protoreflect.Value)       {}
func (l *sliceList) Append(protoreflect.Value)         {}
func (l *sliceList) AppendMutable() protoreflect.Value { return protoreflect.Value{} }
func (l *sliceList) Truncate(int)                      {}
func (l *sliceList) NewElement() protoreflect.Value    { return protoreflect.Value{} }
func (l *sliceList) IsValid() bool                     { return true }
func (l *sliceList) String() string                    { return fmt.Sprintf("list(%d)", len(l.vals)) }
func (l *sliceList) Range(f func(int, protoreflect.Value) bool) {
	for i, v := range l.vals {
		if !f(i, v) {
			return
		}
	}
}

// sliceMap is a read-only protoreflect.Map of computed entries, like sliceList.
type sliceMap struct {
	keys []protoreflect.MapKey
	vals []protoreflect.Value
}

func (m *sliceMap) Len() int { return len(m.keys) }
func (m *sliceMap) Range(f func(protoreflect.MapKey, protoreflect.Value) bool) {
	for i, k := range m.keys {
		if !f(k, m.vals[i]) {
			return
		}
	}
}
func (m *sliceMap) Has(k protoreflect.MapKey) bool { _, ok := m.find(k); return ok }
func (m *sliceMap) Clear(protoreflect.MapKey)      {}
func (m *sliceMap) Get(k protoreflect.MapKey) protoreflect.Value {
	v, _ := m.find(k)
	return v
}
func (m *sliceMap) Set(protoreflect.MapKey, protoreflect.Value)    {}
func (m *sliceMap) Mutable(protoreflect.MapKey) protoreflect.Value { return protoreflect.Value{} }
func (m *sliceMap) NewValue() protoreflect.Value                   { return protoreflect.Value{} }
func (m *sliceMap) IsValid() bool                                  { return true }
func (m *sliceMap) find(k protoreflect.MapKey) (protoreflect.Value, bool) {
	for i, mk := range m.keys {
		if mk.Interface() == k.Interface() {
			return m.vals[i], true
		}
	}
	return protoreflect.Value{}, false
}
