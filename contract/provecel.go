package contract

import (
	"sync"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// CEL proofs: a rule's expression, parsed by cel-go, is turned into Go closures when it is
// written only in a small subset of CEL that cannot fail at run time: `this`, field
// selection on singular fields (not well-known types), has(), bool, int, uint and string
// literals, !, && and ||, and comparisons between two operands of the same type (int, uint,
// string; == and != also for bool). Over that subset the closures compute exactly what CEL
// computes; anything else (arithmetic, which can overflow, functions and macros, lists and
// maps, mixed int and uint comparisons, enum names, now, rules) leaves the rule to
// protovalidate. A proof only ever answers "true", so a rule it cannot compile costs only
// the evaluation it fails to skip.

type celKind int

const (
	celBool celKind = iota
	celInt
	celUint
	celString
	celMessage
)

// celNode is a compiled (sub)expression: one of the closures, by kind. Each takes the
// value bound to `this`.
type celNode struct {
	kind celKind
	md   protoreflect.MessageDescriptor // celMessage
	b    func(protoreflect.Value) bool
	i    func(protoreflect.Value) int64
	u    func(protoreflect.Value) uint64
	s    func(protoreflect.Value) string
	m    func(protoreflect.Value) protoreflect.Message
}

var celParser = sync.OnceValues(func() (*cel.Env, error) { return cel.NewEnv() })

// compileCELProof compiles expr with `this` of the type of root (a message, or a scalar
// field's value); ok is false when expr is outside the subset or not boolean.
func compileCELProof(expr string, root celNode) (func(protoreflect.Value) bool, bool) {
	env, err := celParser()
	if err != nil {
		return nil, false
	}
	parsed, iss := env.Parse(expr)
	if iss.Err() != nil {
		return nil, false
	}
	n, ok := compileCEL(parsed.NativeRep().Expr(), root)
	if !ok || n.kind != celBool {
		return nil, false
	}
	return n.b, true
}

// celRoot is the node for `this` bound to a value of field fd (message when msg is set).
func celRoot(fd protoreflect.FieldDescriptor) (celNode, bool) {
	if fd == nil {
		return celNode{}, false
	}
	id := func(v protoreflect.Value) protoreflect.Value { return v }
	return fieldNode(fd, id)
}

// messageRoot is the node for `this` bound to a message of type md.
func messageRoot(md protoreflect.MessageDescriptor) celNode {
	return celNode{kind: celMessage, md: md, m: func(v protoreflect.Value) protoreflect.Message { return v.Message() }}
}

// fieldNode is the node for the value of fd, read by get.
func fieldNode(fd protoreflect.FieldDescriptor, get func(protoreflect.Value) protoreflect.Value) (celNode, bool) {
	if fd.IsList() || fd.IsMap() {
		return celNode{}, false
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return celNode{kind: celBool, b: func(v protoreflect.Value) bool { return get(v).Bool() }}, true
	case protoreflect.StringKind:
		return celNode{kind: celString, s: func(v protoreflect.Value) string { return get(v).String() }}, true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return celNode{kind: celInt, i: func(v protoreflect.Value) int64 { return get(v).Int() }}, true
	case protoreflect.EnumKind: // CEL reads enums as int
		return celNode{kind: celInt, i: func(v protoreflect.Value) int64 { return int64(get(v).Enum()) }}, true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return celNode{kind: celUint, u: func(v protoreflect.Value) uint64 { return get(v).Uint() }}, true
	case protoreflect.MessageKind:
		if fd.Message().ParentFile().Package() == "google.protobuf" {
			return celNode{}, false // CEL converts well-known types to its own
		}
		return celNode{kind: celMessage, md: fd.Message(), m: func(v protoreflect.Value) protoreflect.Message { return get(v).Message() }}, true
	}
	return celNode{}, false
}

func compileCEL(e celast.Expr, root celNode) (celNode, bool) {
	switch e.Kind() {
	case celast.IdentKind:
		if e.AsIdent() == "this" {
			return root, true
		}
	case celast.LiteralKind:
		switch v := e.AsLiteral().(type) {
		case types.Bool:
			b := bool(v)
			return celNode{kind: celBool, b: func(protoreflect.Value) bool { return b }}, true
		case types.Int:
			i := int64(v)
			return celNode{kind: celInt, i: func(protoreflect.Value) int64 { return i }}, true
		case types.Uint:
			u := uint64(v)
			return celNode{kind: celUint, u: func(protoreflect.Value) uint64 { return u }}, true
		case types.String:
			s := string(v)
			return celNode{kind: celString, s: func(protoreflect.Value) string { return s }}, true
		}
	case celast.SelectKind:
		sel := e.AsSelect()
		op, ok := compileCEL(sel.Operand(), root)
		if !ok || op.kind != celMessage {
			return celNode{}, false
		}
		fd := op.md.Fields().ByName(protoreflect.Name(sel.FieldName()))
		if fd == nil || fd.IsList() || fd.IsMap() {
			return celNode{}, false
		}
		m := op.m
		if sel.IsTestOnly() {
			return celNode{kind: celBool, b: func(v protoreflect.Value) bool { return m(v).Has(fd) }}, true
		}
		return fieldNode(fd, func(v protoreflect.Value) protoreflect.Value { return m(v).Get(fd) })
	case celast.CallKind:
		return compileCall(e.AsCall(), root)
	}
	return celNode{}, false
}

func compileCall(c celast.CallExpr, root celNode) (celNode, bool) {
	if c.IsMemberFunction() {
		return celNode{}, false
	}
	args := make([]celNode, len(c.Args()))
	for i, a := range c.Args() {
		n, ok := compileCEL(a, root)
		if !ok {
			return celNode{}, false
		}
		args[i] = n
	}
	fn := c.FunctionName()
	switch fn {
	case operators.LogicalNot:
		if len(args) != 1 || args[0].kind != celBool {
			return celNode{}, false
		}
		x := args[0].b
		return celNode{kind: celBool, b: func(v protoreflect.Value) bool { return !x(v) }}, true
	case operators.LogicalAnd, operators.LogicalOr:
		if len(args) != 2 || args[0].kind != celBool || args[1].kind != celBool {
			return celNode{}, false
		}
		x, y := args[0].b, args[1].b
		if fn == operators.LogicalAnd {
			return celNode{kind: celBool, b: func(v protoreflect.Value) bool { return x(v) && y(v) }}, true
		}
		return celNode{kind: celBool, b: func(v protoreflect.Value) bool { return x(v) || y(v) }}, true
	case operators.Equals, operators.NotEquals, operators.Less, operators.LessEquals,
		operators.Greater, operators.GreaterEquals:
		if len(args) != 2 || args[0].kind != args[1].kind {
			return celNode{}, false
		}
		return compare(fn, args[0], args[1])
	}
	return celNode{}, false
}

func compare(fn string, x, y celNode) (celNode, bool) {
	var b func(protoreflect.Value) bool
	switch x.kind {
	case celInt:
		b = ordered(fn, x.i, y.i)
	case celUint:
		b = ordered(fn, x.u, y.u)
	case celString:
		// Go compares strings bytewise; for UTF-8 that is CEL's code point order.
		b = ordered(fn, x.s, y.s)
	case celBool:
		xb, yb := x.b, y.b
		switch fn {
		case operators.Equals:
			b = func(v protoreflect.Value) bool { return xb(v) == yb(v) }
		case operators.NotEquals:
			b = func(v protoreflect.Value) bool { return xb(v) != yb(v) }
		}
	}
	if b == nil {
		return celNode{}, false
	}
	return celNode{kind: celBool, b: b}, true
}

func ordered[T int64 | uint64 | string](fn string, x, y func(protoreflect.Value) T) func(protoreflect.Value) bool {
	switch fn {
	case operators.Equals:
		return func(v protoreflect.Value) bool { return x(v) == y(v) }
	case operators.NotEquals:
		return func(v protoreflect.Value) bool { return x(v) != y(v) }
	case operators.Less:
		return func(v protoreflect.Value) bool { return x(v) < y(v) }
	case operators.LessEquals:
		return func(v protoreflect.Value) bool { return x(v) <= y(v) }
	case operators.Greater:
		return func(v protoreflect.Value) bool { return x(v) > y(v) }
	case operators.GreaterEquals:
		return func(v protoreflect.Value) bool { return x(v) >= y(v) }
	}
	return nil
}
