package transforms

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/suggest"
)

// This file holds the load-time model of a chain: the output event as a list of columns
// (top-level fields), each with a type and a way to compute its value from the input event.
// Steps rewrite the list; at the end schema.go turns it into a descriptor and plan.go into
// the per-event copy plan.

// vtype is the output type of a column's values plus the conversions that turn the values
// read from the input (or computed) into them.
type vtype struct {
	kind     protoreflect.Kind // of the values (of a list's elements, of a map's values)
	list     bool
	mapKey   protoreflect.Kind // non-zero: a map with keys of this kind
	enum     protoreflect.EnumDescriptor
	msg      *shape // message kinds
	presence bool   // singular values: explicit presence (absent is not the zero value)
	utf8None bool   // strings copied from proto2 fields, which do not validate UTF-8
	convs    []conv // applied in order to each value (list element, map value)
}

func (t *vtype) clone() *vtype {
	c := *t
	c.convs = slices.Clone(t.convs)
	return &c
}

// isMessage reports whether the values are messages.
func (t *vtype) isMessage() bool {
	return t.kind == protoreflect.MessageKind || t.kind == protoreflect.GroupKind
}

// wkt returns the full name of a google.protobuf message type the values have, or "".
func (t *vtype) wkt() protoreflect.FullName {
	if t.isMessage() && t.msg != nil && t.msg.reused && t.msg.in.ParentFile().Package() == "google.protobuf" {
		return t.msg.in.FullName()
	}
	return ""
}

// String describes the type for messages: "string", "repeated int64", "map<string, string>",
// "message common.v1.Money", "google.protobuf.Timestamp".
func (t *vtype) String() string {
	elem := kindName(t.kind)
	switch {
	case t.isMessage() && t.msg != nil:
		if w := t.wkt(); w != "" {
			elem = string(w)
		} else {
			elem = "message " + string(t.msg.in.FullName())
		}
	case t.kind == protoreflect.EnumKind && t.enum != nil:
		elem = "enum " + string(t.enum.FullName())
	}
	switch {
	case t.mapKey != 0:
		return fmt.Sprintf("map<%s, %s>", kindName(t.mapKey), elem)
	case t.list:
		return "repeated " + elem
	}
	return elem
}

func kindName(k protoreflect.Kind) string {
	if k == protoreflect.GroupKind {
		return "message"
	}
	return k.String()
}

// conv turns one input value into one output value.
type conv struct {
	step string // the step it comes from, for run-time errors: `transforms[3] cast "qty"`
	hash bool   // a pii HASH: the chain needs a key
	fn   func(protoreflect.Value) (protoreflect.Value, error)
}

// shape is the output type of message values: the input message type unchanged (reused), or
// a message synthesized from it with some fields removed, renamed, hashed or cast.
type shape struct {
	in     protoreflect.MessageDescriptor
	reused bool
	cols   []*col             // !reused: the fields, in output order
	hidden map[string]piiMode // fields the PII guard removed (pii = DROP), by name
}

// col is one field of the output event or of a synthesized message.
type col struct {
	name string
	// in is the input field the values are read from; nil for computed columns. Fields of
	// synthesized messages always have one.
	in protoreflect.FieldDescriptor
	// keep: the output field keeps in's number (the value is in's, unconverted in kind).
	keep bool
	typ  *vtype
	// get computes top-level columns' values; nil in synthesized messages.
	get *getter
}

func (c *col) clone() *col {
	n := *c
	n.typ = c.typ.clone()
	return &n
}

// baseKind is where a getter starts.
type baseKind int

const (
	baseEvent   baseKind = iota // the input event
	baseElement                 // the current element of the exploded list
	baseCEL                     // the value of a CEL expression
	baseMeta                    // Kafka record metadata
)

// getter reads a top-level column's value: from its base, down steps (singular message
// fields), then field (nil: the value reached is the column's value).
type getter struct {
	base   baseKind
	prg    *program // baseCEL
	meta   metaKind // baseMeta
	header string   // baseMeta, metaHeader
	steps  []protoreflect.FieldDescriptor
	field  protoreflect.FieldDescriptor
	test   bool // set by the plan: reading field asks Has first (see hasTest)
}

// extend returns a getter for field fd of the message g reads.
func (g *getter) extend(fd protoreflect.FieldDescriptor) *getter {
	n := *g
	n.steps = slices.Clip(slices.Clone(g.steps))
	if g.field != nil {
		n.steps = append(n.steps, g.field)
	}
	n.field = fd
	return &n
}

// dependsOnElement reports whether the getter reads the exploded element.
func (g *getter) dependsOnElement() bool {
	return g.base == baseElement || (g.base == baseCEL && g.prg.usesElement)
}

// article prefixes a type description with "a" or "an".
func article(s string) string {
	if s != "" && strings.ContainsRune("aeio", rune(s[0])) { // not u: "a uint64"
		return "an " + s
	}
	return "a " + s
}

// names returns the names of cols, for suggestions.
func names(cols []*col) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out
}

func indexOf(cols []*col, name string) int {
	for i, c := range cols {
		if c.name == name {
			return i
		}
	}
	return -1
}

// validName reports whether s can name a protobuf field.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// didYouMean returns ` (did you mean "x"?)` for the closest candidate, or "".
func didYouMean(word string, candidates []string) string {
	return suggest.DidYouMean(word, candidates)
}
