// Package compat compares two versions of a contract set and reports the changes that break
// the Protobuf wire format or protojson for readers and writers of the old version: field
// numbers, types and cardinalities, removed fields and enum values without `reserved`,
// renamed JSON names, messages moved so that their Confluent message index changes, and
// fields a buf.validate rule newly requires. Each change carries the position of the new
// .proto declaration (or, for a removal, of its parent), from the compiled source info.
package compat

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Kind names one sort of change.
type Kind string

const (
	MessageRemoved      Kind = "MESSAGE_REMOVED"
	MessageIndexChanged Kind = "MESSAGE_INDEX_CHANGED"
	FieldRemoved        Kind = "FIELD_REMOVED"
	FieldNumberChanged  Kind = "FIELD_NUMBER_CHANGED"
	FieldTypeChanged    Kind = "FIELD_TYPE_CHANGED"
	FieldCardinality    Kind = "FIELD_CARDINALITY_CHANGED"
	FieldJSONName       Kind = "FIELD_JSON_NAME_CHANGED"
	FieldNewlyRequired  Kind = "FIELD_NEWLY_REQUIRED"
	EnumValueRemoved    Kind = "ENUM_VALUE_REMOVED"
	EnumValueNumber     Kind = "ENUM_VALUE_NUMBER_CHANGED"
	FieldAdded          Kind = "FIELD_ADDED"
)

// Change is one difference between the old and the new version of a message.
type Change struct {
	// Message is the full name of the top-level message (as pipelines name it) the change
	// is found in; Element is the changed element's full name.
	Message string
	Element string
	Kind    Kind
	// Wire and JSON say which encodings the change breaks; neither for a compatible change.
	Wire, JSON bool
	// File is the .proto path within the contract set; Line and Col are 1-based (0 when the
	// set has no source info, e.g. a descriptor set built without it).
	File      string
	Line, Col int
	Detail    string
}

// Breaking reports whether the change breaks the wire format or protojson.
func (c Change) Breaking() bool { return c.Wire || c.JSON }

// Position is "file:line:col".
func (c Change) Position() string { return fmt.Sprintf("%s:%d:%d", c.File, c.Line, c.Col) }

// Compare reports the changes of each message named in messages (top-level contract names,
// e.g. "auctions.v1.BidPlaced"), and of every message, enum and field reachable from it,
// between old and new. A name old lacks is new and has no changes; a name new lacks is a
// MessageRemoved change without a position. Changes are sorted by file, line, column.
func Compare(old, new *protoregistry.Files, messages []string) []Change {
	var out []Change
	for _, name := range messages {
		od, err := old.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			continue
		}
		omd, ok := od.(protoreflect.MessageDescriptor)
		if !ok {
			continue
		}
		nd, err := new.FindDescriptorByName(protoreflect.FullName(name))
		nmd, ok := nd.(protoreflect.MessageDescriptor)
		if err != nil || !ok {
			out = append(out, Change{Message: name, Element: name, Kind: MessageRemoved, Wire: true, JSON: true,
				File: omd.ParentFile().Path(), Detail: fmt.Sprintf("message %s was removed", name)})
			continue
		}
		c := &comparer{top: name, seen: map[protoreflect.FullName]bool{}}
		if oi, ni := messageIndex(omd), messageIndex(nmd); !slices.Equal(oi, ni) || omd.ParentFile().Path() != nmd.ParentFile().Path() {
			if !slices.Equal(oi, ni) {
				c.add(nmd, Change{Kind: MessageIndexChanged, Wire: true,
					Detail: fmt.Sprintf("message %s moved: its Confluent message index changed from %v to %v, so frames written with the old index no longer name it", name, oi, ni)})
			}
		}
		c.message(omd, nmd)
		out = append(out, c.out...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return dedup(out)
}

func dedup(cs []Change) []Change {
	var out []Change
	seen := map[string]bool{}
	for _, c := range cs {
		k := c.Position() + "|" + string(c.Kind) + "|" + c.Element
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, c)
	}
	return out
}

// messageIndex is the Confluent message-index path of md within its file.
func messageIndex(md protoreflect.MessageDescriptor) []int {
	var idx []int
	var d protoreflect.Descriptor = md
	for {
		idx = append(idx, d.Index())
		p := d.Parent()
		if _, ok := p.(protoreflect.MessageDescriptor); !ok {
			break
		}
		d = p
	}
	slices.Reverse(idx)
	return idx
}

type comparer struct {
	top  string
	seen map[protoreflect.FullName]bool
	out  []Change
}

// add records c at the position of d (a descriptor of the new version).
func (c *comparer) add(d protoreflect.Descriptor, ch Change) {
	ch.Message = c.top
	if ch.Element == "" {
		ch.Element = string(d.FullName())
	}
	ch.File = d.ParentFile().Path()
	if loc := d.ParentFile().SourceLocations().ByDescriptor(d); loc.Path != nil || loc.StartLine != 0 || loc.StartColumn != 0 {
		ch.Line, ch.Col = loc.StartLine+1, loc.StartColumn+1
	}
	c.out = append(c.out, ch)
}

func (c *comparer) message(old, new protoreflect.MessageDescriptor) {
	if c.seen[new.FullName()] {
		return
	}
	c.seen[new.FullName()] = true
	ofs, nfs := old.Fields(), new.Fields()
	for i := range ofs.Len() {
		of := ofs.Get(i)
		nf := nfs.ByNumber(of.Number())
		if nf == nil {
			if moved := nfs.ByName(of.Name()); moved != nil {
				c.add(moved, Change{Kind: FieldNumberChanged, Wire: true,
					Detail: fmt.Sprintf("field %s changed its number from %d to %d", of.Name(), of.Number(), moved.Number())})
				continue
			}
			if !reservedNumber(new, of.Number()) {
				c.add(new, Change{Element: string(of.FullName()), Kind: FieldRemoved, Wire: true, JSON: !new.ReservedNames().Has(of.Name()),
					Detail: fmt.Sprintf("field %s (%d) was removed without `reserved %d;`: a later field may reuse the number", of.Name(), of.Number(), of.Number())})
			} else {
				c.add(new, Change{Element: string(of.FullName()), Kind: FieldRemoved, JSON: !new.ReservedNames().Has(of.Name()),
					Detail: fmt.Sprintf("field %s (%d) was removed; its number is reserved", of.Name(), of.Number())})
			}
			continue
		}
		c.field(of, nf)
	}
	for i := range nfs.Len() {
		nf := nfs.Get(i)
		if ofs.ByNumber(nf.Number()) == nil && ofs.ByName(nf.Name()) == nil {
			c.add(nf, Change{Kind: FieldAdded, Detail: fmt.Sprintf("field %s (%d) was added", nf.Name(), nf.Number())})
			if required(nf) {
				c.add(nf, Change{Kind: FieldNewlyRequired, Wire: true, JSON: true,
					Detail: fmt.Sprintf("new field %s is required by a buf.validate rule: events of the old version, which lack it, are now invalid", nf.Name())})
			}
		}
	}
	oes, nes := old.Enums(), new.Enums()
	for i := range oes.Len() {
		if ne := nes.ByName(oes.Get(i).Name()); ne != nil {
			c.enum(oes.Get(i), ne)
		}
	}
}

func (c *comparer) field(of, nf protoreflect.FieldDescriptor) {
	if of.Name() != nf.Name() && of.JSONName() == nf.JSONName() {
		c.add(nf, Change{Kind: FieldJSONName, JSON: true,
			Detail: fmt.Sprintf("field %d was renamed from %s to %s: protojson readers of the old version no longer accept it", nf.Number(), of.Name(), nf.Name())})
	}
	if of.JSONName() != nf.JSONName() {
		c.add(nf, Change{Kind: FieldJSONName, JSON: true,
			Detail: fmt.Sprintf("field %s changed its JSON name from %q to %q", nf.Name(), of.JSONName(), nf.JSONName())})
	}
	if ot, nt := typeName(of), typeName(nf); ot != nt {
		c.add(nf, Change{Kind: FieldTypeChanged, Wire: !wireCompatible(of, nf), JSON: true,
			Detail: fmt.Sprintf("field %s changed type from %s to %s", nf.Name(), ot, nt)})
	} else if oc, nc := cardinality(of), cardinality(nf); oc != nc {
		wire := !(oc == "singular" && nc == "optional" || oc == "optional" && nc == "singular")
		c.add(nf, Change{Kind: FieldCardinality, Wire: wire, JSON: wire,
			Detail: fmt.Sprintf("field %s changed from %s to %s", nf.Name(), oc, nc)})
	}
	if !required(of) && required(nf) {
		c.add(nf, Change{Kind: FieldNewlyRequired, Wire: true, JSON: true,
			Detail: fmt.Sprintf("field %s became required by a buf.validate rule: events without it, valid before, are now rejected", nf.Name())})
	}
	if of.Message() != nil && nf.Message() != nil && of.Message().FullName() == nf.Message().FullName() && !of.IsMap() {
		c.message(of.Message(), nf.Message())
	}
	if of.IsMap() && nf.IsMap() && of.MapValue().Message() != nil && nf.MapValue().Message() != nil &&
		of.MapValue().Message().FullName() == nf.MapValue().Message().FullName() {
		c.message(of.MapValue().Message(), nf.MapValue().Message())
	}
	if of.Enum() != nil && nf.Enum() != nil && of.Enum().FullName() == nf.Enum().FullName() {
		c.enum(of.Enum(), nf.Enum())
	}
}

func (c *comparer) enum(old, new protoreflect.EnumDescriptor) {
	if c.seen[new.FullName()] {
		return
	}
	c.seen[new.FullName()] = true
	ovs, nvs := old.Values(), new.Values()
	for i := range ovs.Len() {
		ov := ovs.Get(i)
		nv := nvs.ByName(ov.Name())
		switch {
		case nv == nil && nvs.ByNumber(ov.Number()) == nil && !reservedEnum(new, ov.Number()):
			c.add(new, Change{Element: string(ov.FullName()), Kind: EnumValueRemoved, Wire: true, JSON: true,
				Detail: fmt.Sprintf("enum value %s (%d) was removed without `reserved %d;`", ov.Name(), ov.Number(), ov.Number())})
		case nv == nil && nvs.ByNumber(ov.Number()) != nil:
			renamed := nvs.ByNumber(ov.Number())
			c.add(renamed, Change{Kind: EnumValueRemoved, JSON: true,
				Detail: fmt.Sprintf("enum value %d was renamed from %s to %s: protojson carries the name", ov.Number(), ov.Name(), renamed.Name())})
		case nv == nil:
			c.add(new, Change{Element: string(ov.FullName()), Kind: EnumValueRemoved, JSON: true,
				Detail: fmt.Sprintf("enum value %s (%d) was removed (its number is reserved): protojson readers no longer accept the name", ov.Name(), ov.Number())})
		case nv.Number() != ov.Number():
			c.add(nv, Change{Kind: EnumValueNumber, Wire: true,
				Detail: fmt.Sprintf("enum value %s changed its number from %d to %d", nv.Name(), ov.Number(), nv.Number())})
		}
	}
}

func reservedNumber(md protoreflect.MessageDescriptor, n protoreflect.FieldNumber) bool {
	return md.ReservedRanges().Has(n)
}

func reservedEnum(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) bool {
	return ed.ReservedRanges().Has(n)
}

func typeName(fd protoreflect.FieldDescriptor) string {
	if fd.IsMap() {
		return fmt.Sprintf("map<%s, %s>", typeName(fd.MapKey()), typeName(fd.MapValue()))
	}
	switch {
	case fd.Message() != nil:
		return string(fd.Message().FullName())
	case fd.Enum() != nil:
		return string(fd.Enum().FullName())
	}
	return fd.Kind().String()
}

func cardinality(fd protoreflect.FieldDescriptor) string {
	switch {
	case fd.IsMap():
		return "map"
	case fd.IsList():
		return "repeated"
	case fd.HasPresence() && fd.Message() == nil && fd.ContainingOneof() != nil && !fd.ContainingOneof().IsSynthetic():
		return "oneof member"
	case fd.HasPresence() && fd.Message() == nil:
		return "optional"
	}
	return "singular"
}

// wireCompatible reports the type changes the binary format tolerates: among int32, uint32,
// int64, uint64 and bool (same varint, values may be truncated), between sint32 and sint64,
// fixed32 and sfixed32, fixed64 and sfixed64, string and bytes, and an enum and int32.
// protojson breaks for all of them.
func wireCompatible(of, nf protoreflect.FieldDescriptor) bool {
	group := func(fd protoreflect.FieldDescriptor) string {
		switch fd.Kind() {
		case protoreflect.Int32Kind, protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Uint64Kind, protoreflect.BoolKind, protoreflect.EnumKind:
			return "varint"
		case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
			return "zigzag"
		case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind:
			return "fixed32"
		case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
			return "fixed64"
		case protoreflect.StringKind, protoreflect.BytesKind:
			return "bytes"
		}
		return fd.Kind().String() + typeName(fd)
	}
	if of.IsMap() || nf.IsMap() {
		return false
	}
	return group(of) == group(nf)
}

// required reports whether fd carries (buf.validate.field).required = true. The options are
// read from their wire form so that the result does not depend on how the contracts were
// compiled.
func required(fd protoreflect.FieldDescriptor) bool {
	opts := fd.Options()
	if opts == nil {
		return false
	}
	raw, err := proto.MarshalOptions{AllowPartial: true, Deterministic: true}.Marshal(opts)
	if err != nil {
		return false
	}
	var fo descriptorpb.FieldOptions
	if err := (proto.UnmarshalOptions{AllowPartial: true, Resolver: protoregistry.GlobalTypes}).Unmarshal(raw, &fo); err != nil {
		return false
	}
	rules, _ := proto.GetExtension(&fo, validate.E_Field).(*validate.FieldRules)
	return rules.GetRequired()
}

// Summary is a one-line count of the breaking changes in cs.
func Summary(cs []Change) string {
	var wire, json int
	for _, c := range cs {
		if c.Wire {
			wire++
		}
		if c.JSON {
			json++
		}
	}
	var parts []string
	parts = append(parts, fmt.Sprintf("%d wire-breaking", wire), fmt.Sprintf("%d JSON-breaking", json))
	return strings.Join(parts, ", ")
}
