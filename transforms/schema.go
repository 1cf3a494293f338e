package transforms

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// The output schema is one generated file, edition 2023, in package
// switchyard.out.<pipeline>_<route>: message Event plus a message per synthesized nested type
// (named after its input type). Fields copied from the input unchanged in kind keep their
// numbers, so a chain that only drops or hashes fields writes events the original contract
// still decodes; other fields are numbered after the input message's highest number.

// inputFiles returns a registry of the input's file and everything it imports.
func inputFiles(md protoreflect.MessageDescriptor) (*protoregistry.Files, error) {
	files := new(protoregistry.Files)
	var add func(fd protoreflect.FileDescriptor) error
	add = func(fd protoreflect.FileDescriptor) error {
		if _, err := files.FindFileByPath(fd.Path()); err == nil {
			return nil
		}
		imports := fd.Imports()
		for i := range imports.Len() {
			if imp := imports.Get(i); !imp.IsPlaceholder() {
				if err := add(imp.FileDescriptor); err != nil {
					return err
				}
			}
		}
		return files.RegisterFile(fd)
	}
	return files, add(md.ParentFile())
}

// wktType returns the type of values of a google.protobuf message, adding its file to the
// registry when the input does not import it.
func (b *builder) wktType(name protoreflect.FullName) (*vtype, error) {
	md := b.messageNamed(string(name))
	if md == nil {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			return nil, fmt.Errorf("find %s: %w", name, err)
		}
		fd := d.ParentFile()
		if err := b.files.RegisterFile(fd); err != nil {
			return nil, fmt.Errorf("register %s: %w", fd.Path(), err)
		}
		md = d.(protoreflect.MessageDescriptor)
	}
	return &vtype{kind: protoreflect.MessageKind, msg: b.reusedShape(md), presence: true}, nil
}

// ident turns a pipeline or route name into a protobuf identifier.
func ident(s string) string {
	var sb strings.Builder
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9' && i > 0:
			sb.WriteRune(r)
		case r >= '0' && r <= '9':
			sb.WriteString("_")
			sb.WriteRune(r)
		default:
			sb.WriteByte('_')
		}
	}
	if sb.Len() == 0 {
		return "_"
	}
	return sb.String()
}

// schemaBuilder writes the output file.
type schemaBuilder struct {
	b     *builder
	fdp   *descriptorpb.FileDescriptorProto
	pkg   string
	deps  map[string]bool
	names map[*shape]string // synthesized message names
	used  map[string]bool
	queue []*shape
}

// build returns the output Event descriptor for the columns.
func (b *builder) buildSchema() (protoreflect.MessageDescriptor, error) {
	pipe, route := ident(b.opts.Pipeline), ident(b.routeName())
	pkg := "switchyard.out." + pipe + "_" + route
	sb := &schemaBuilder{
		b: b,
		fdp: &descriptorpb.FileDescriptorProto{
			Name:    proto.String("switchyard/out/" + pipe + "_" + route + ".proto"),
			Package: proto.String(pkg),
			Syntax:  proto.String("editions"),
			Edition: descriptorpb.Edition_EDITION_2023.Enum(),
		},
		pkg:   pkg,
		deps:  map[string]bool{},
		names: map[*shape]string{},
		used:  map[string]bool{"Event": true},
	}
	sb.fdp.MessageType = append(sb.fdp.MessageType, sb.message("Event", b.cols, b.input))
	for len(sb.queue) > 0 {
		s := sb.queue[0]
		sb.queue = sb.queue[1:]
		sb.fdp.MessageType = append(sb.fdp.MessageType, sb.message(sb.names[s], s.cols, s.in))
	}
	fd, err := protodesc.NewFile(sb.fdp, b.files)
	if err != nil {
		return nil, fmt.Errorf("build output schema: %w", err)
	}
	return fd.Messages().ByName("Event"), nil
}

// message writes one message of the output file.
func (sb *schemaBuilder) message(name string, cols []*col, in protoreflect.MessageDescriptor) *descriptorpb.DescriptorProto {
	dp := &descriptorpb.DescriptorProto{Name: proto.String(name)}
	next := protoreflect.FieldNumber(1)
	fields := in.Fields()
	for i := range fields.Len() {
		next = max(next, fields.Get(i).Number()+1)
	}
	for _, c := range cols {
		num := next
		if c.keep && c.in != nil && c.in.ContainingMessage() == in {
			num = c.in.Number()
		} else {
			if next >= protowire19000 && next <= protowire19999 {
				next = protowire19999 + 1
				num = next
			}
			next++
		}
		dp.Field = append(dp.Field, sb.field(dp, name, c, num))
	}
	return dp
}

// Field numbers protobuf reserves for its own implementation.
const (
	protowire19000 = 19000
	protowire19999 = 19999
)

func (sb *schemaBuilder) field(parent *descriptorpb.DescriptorProto, parentName string, c *col, num protoreflect.FieldNumber) *descriptorpb.FieldDescriptorProto {
	t := c.typ
	f := &descriptorpb.FieldDescriptorProto{
		Name:   proto.String(c.name),
		Number: proto.Int32(int32(num)),
		Label:  descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
	}
	if t.mapKey != 0 {
		entryName := mapEntryName(c.name)
		entry := &descriptorpb.DescriptorProto{
			Name:    proto.String(entryName),
			Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
		}
		key := &descriptorpb.FieldDescriptorProto{
			Name: proto.String("key"), Number: proto.Int32(1),
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			Type:  descriptorpb.FieldDescriptorProto_Type(t.mapKey).Enum(),
		}
		val := &descriptorpb.FieldDescriptorProto{
			Name: proto.String("value"), Number: proto.Int32(2),
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
		}
		sb.setType(val, t)
		entry.Field = []*descriptorpb.FieldDescriptorProto{key, val}
		parent.NestedType = append(parent.NestedType, entry)
		f.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
		f.Type = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
		f.TypeName = proto.String("." + sb.pkg + "." + parentName + "." + entryName)
		return f
	}
	sb.setType(f, t)
	switch {
	case t.list:
		f.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	case !t.isMessage() && !t.presence:
		f.Options = features(f.Options)
		f.Options.Features.FieldPresence = descriptorpb.FeatureSet_IMPLICIT.Enum()
	}
	if t.kind == protoreflect.StringKind && t.utf8None {
		f.Options = features(f.Options)
		f.Options.Features.Utf8Validation = descriptorpb.FeatureSet_NONE.Enum()
	}
	return f
}

func features(o *descriptorpb.FieldOptions) *descriptorpb.FieldOptions {
	if o == nil {
		o = &descriptorpb.FieldOptions{}
	}
	if o.Features == nil {
		o.Features = &descriptorpb.FeatureSet{}
	}
	return o
}

// setType sets the type (and type name) of f for values of t.
func (sb *schemaBuilder) setType(f *descriptorpb.FieldDescriptorProto, t *vtype) {
	f.Type = descriptorpb.FieldDescriptorProto_Type(t.kind).Enum()
	switch {
	case t.isMessage():
		f.Type = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
		if t.msg.reused {
			sb.dep(t.msg.in.ParentFile())
			f.TypeName = proto.String("." + string(t.msg.in.FullName()))
			return
		}
		f.TypeName = proto.String("." + sb.pkg + "." + sb.nameOf(t.msg))
	case t.kind == protoreflect.EnumKind:
		sb.dep(t.enum.ParentFile())
		f.TypeName = proto.String("." + string(t.enum.FullName()))
	}
}

func (sb *schemaBuilder) dep(fd protoreflect.FileDescriptor) {
	if sb.deps[fd.Path()] {
		return
	}
	sb.deps[fd.Path()] = true
	sb.fdp.Dependency = append(sb.fdp.Dependency, fd.Path())
}

// nameOf names a synthesized message after its input type, queueing it to be written.
func (sb *schemaBuilder) nameOf(s *shape) string {
	if n, ok := sb.names[s]; ok {
		return n
	}
	base := string(s.in.Name())
	n := base
	for i := 2; sb.used[n]; i++ {
		n = fmt.Sprintf("%s%d", base, i)
	}
	sb.used[n] = true
	sb.names[s] = n
	sb.queue = append(sb.queue, s)
	return n
}

// mapEntryName is the name protoc gives the entry message of map field name.
func mapEntryName(name string) string {
	var sb strings.Builder
	upper := true
	for _, r := range name {
		switch {
		case r == '_':
			upper = true
		case upper && r >= 'a' && r <= 'z':
			sb.WriteRune(r - 'a' + 'A')
			upper = false
		default:
			sb.WriteRune(r)
			upper = false
		}
	}
	return sb.String() + "Entry"
}

// sameFields compares the chain's own output a with a schema b it is to use instead: field
// by field, in order, with generated (switchyard.out) messages compared the same way and
// other types by name. It returns the first difference, or "".
func sameFields(a, b protoreflect.MessageDescriptor, seen map[[2]protoreflect.FullName]bool) string {
	if a == b || seen[[2]protoreflect.FullName{a.FullName(), b.FullName()}] {
		return ""
	}
	seen[[2]protoreflect.FullName{a.FullName(), b.FullName()}] = true
	fa, fb := a.Fields(), b.Fields()
	if fa.Len() != fb.Len() {
		return fmt.Sprintf("%s has %d fields here and %d in the shared schema", a.Name(), fa.Len(), fb.Len())
	}
	for i := range fa.Len() {
		x, y := fa.Get(i), fb.Get(i)
		if x.Name() != y.Name() || x.Number() != y.Number() {
			return fmt.Sprintf("field %d of %s is %s = %d here and %s = %d in the shared schema", i+1, a.Name(), x.Name(), x.Number(), y.Name(), y.Number())
		}
		if p := sameType(x, y, seen); p != "" {
			return fmt.Sprintf("field %s: %s", x.Name(), p)
		}
	}
	return ""
}

func sameType(x, y protoreflect.FieldDescriptor, seen map[[2]protoreflect.FullName]bool) string {
	if x.Cardinality() != y.Cardinality() || x.IsMap() != y.IsMap() || x.HasPresence() != y.HasPresence() {
		return "its cardinality or presence differs"
	}
	if x.IsMap() {
		if p := sameType(x.MapKey(), y.MapKey(), seen); p != "" {
			return p
		}
		return sameType(x.MapValue(), y.MapValue(), seen)
	}
	if x.Kind() != y.Kind() {
		return fmt.Sprintf("%s, not %s", x.Kind(), y.Kind())
	}
	switch {
	case x.Enum() != nil && x.Enum().FullName() != y.Enum().FullName():
		return fmt.Sprintf("enum %s, not %s", x.Enum().FullName(), y.Enum().FullName())
	case x.Message() != nil:
		mx, my := x.Message(), y.Message()
		if mx.FullName() == my.FullName() {
			return ""
		}
		if generated(mx) && generated(my) {
			return sameFields(mx, my, seen)
		}
		return fmt.Sprintf("message %s, not %s", mx.FullName(), my.FullName())
	}
	return ""
}

// generated reports whether md is a message of a chain's output file.
func generated(md protoreflect.MessageDescriptor) bool {
	return strings.HasPrefix(string(md.ParentFile().Package()), "switchyard.out.")
}
