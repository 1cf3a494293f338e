package contract

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// updateValidateProto regenerates contracts/buf/validate/validate.proto:
//
//	go test ./contract -run TestValidateProto -update-validate-proto
var updateValidateProto = flag.Bool("update-validate-proto", false, "rewrite contracts/buf/validate/validate.proto from the Go-registered descriptor")

// validateProtoPath is the checked-in copy of buf/validate/validate.proto that editors and
// the buf CLI use when they compile contracts/.
var validateProtoPath = filepath.Join("..", "contracts", "buf", "validate", "validate.proto")

// TestValidateProto_matches_go_descriptor fails when the checked-in validate.proto drifts
// from the descriptor compiled into the binary (for example after a protovalidate bump).
// The module cache ships no .proto source for protovalidate, so the file is printed from
// the Go-registered descriptor; the test also proves the printed source compiles back to
// the same descriptor.
func TestValidateProto_matches_go_descriptor(t *testing.T) {
	want := printFileDescriptor(validate.File_buf_validate_validate_proto)
	if *updateValidateProto {
		if err := os.MkdirAll(filepath.Dir(validateProtoPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(validateProtoPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(validateProtoPath)
	if err != nil {
		t.Fatalf("read checked-in validate.proto (regenerate with -update-validate-proto): %v", err)
	}
	if string(got) != want {
		t.Fatalf("%s is stale; regenerate with: go test ./contract -run TestValidateProto -update-validate-proto", validateProtoPath)
	}

	// Round trip: the printed source must compile to the registered descriptor.
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(map[string]string{"buf/validate/validate.proto": want}),
	})}
	files, err := c.Compile(context.Background(), "buf/validate/validate.proto")
	if err != nil {
		t.Fatalf("compile printed validate.proto: %v", err)
	}
	gotFD := normalizeFDP(t, protodesc.ToFileDescriptorProto(files[0]))
	wantFD := normalizeFDP(t, protodesc.ToFileDescriptorProto(validate.File_buf_validate_validate_proto))
	if !proto.Equal(gotFD, wantFD) {
		t.Fatalf("printed validate.proto compiles to a different descriptor")
	}
}

// normalizeFDP drops what source does not carry (json names, source info) and re-parses
// the options so that extensions compare as known fields on both sides.
func normalizeFDP(t *testing.T, fdp *descriptorpb.FileDescriptorProto) *descriptorpb.FileDescriptorProto {
	t.Helper()
	fdp.SourceCodeInfo = nil
	clearJSON := func(fs []*descriptorpb.FieldDescriptorProto) {
		for _, f := range fs {
			f.JsonName = nil
		}
	}
	var walk func([]*descriptorpb.DescriptorProto)
	walk = func(ms []*descriptorpb.DescriptorProto) {
		for _, m := range ms {
			clearJSON(m.Field)
			clearJSON(m.Extension)
			walk(m.NestedType)
		}
	}
	walk(fdp.MessageType)
	clearJSON(fdp.Extension)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(fdp)
	if err != nil {
		t.Fatal(err)
	}
	out := new(descriptorpb.FileDescriptorProto)
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// printFileDescriptor renders a proto2/proto3 file descriptor as .proto source. It covers
// what validate.proto uses (messages, oneofs, enums, reserved and extension ranges,
// extensions, file/message/field options with message literals); it is not a general
// printer (no editions, groups or nested extension blocks' comments).
func printFileDescriptor(fd protoreflect.FileDescriptor) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated from the Go-registered descriptor of %s\n", fd.Path())
	b.WriteString("// (module buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go) by\n")
	b.WriteString("// contract/validateproto_test.go. DO NOT EDIT.\n")
	b.WriteString("//\n// Regenerate: go test ./contract -run TestValidateProto -update-validate-proto\n\n")
	syntax := "proto2"
	if fd.Syntax() == protoreflect.Proto3 {
		syntax = "proto3"
	}
	fmt.Fprintf(&b, "syntax = %q;\n\npackage %s;\n\n", syntax, fd.Package())
	for i := range fd.Imports().Len() {
		fmt.Fprintf(&b, "import %q;\n", fd.Imports().Get(i).Path())
	}
	b.WriteString("\n")
	for _, opt := range formatOptions(fd.Options(), "") {
		fmt.Fprintf(&b, "option %s;\n", opt)
	}
	for i := range fd.Messages().Len() {
		b.WriteString("\n")
		printMessage(&b, fd.Messages().Get(i), "", syntax)
	}
	for i := range fd.Enums().Len() {
		b.WriteString("\n")
		printEnum(&b, fd.Enums().Get(i), "")
	}
	printExtensions(&b, fd.Extensions(), "", syntax)
	return b.String()
}

func printMessage(b *bytes.Buffer, md protoreflect.MessageDescriptor, indent, syntax string) {
	fmt.Fprintf(b, "%smessage %s {\n", indent, md.Name())
	in := indent + "  "
	for _, opt := range formatOptions(md.Options(), in) {
		fmt.Fprintf(b, "%soption %s;\n", in, opt)
	}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		od := f.ContainingOneof()
		if od == nil || od.IsSynthetic() {
			printField(b, f, in, syntax)
			continue
		}
		// A oneof block prints at its first member; members are contiguous.
		fmt.Fprintf(b, "%soneof %s {\n", in, od.Name())
		for _, opt := range formatOptions(od.Options(), in+"  ") {
			fmt.Fprintf(b, "%s  option %s;\n", in, opt)
		}
		for j := range od.Fields().Len() {
			printField(b, od.Fields().Get(j), in+"  ", syntax)
		}
		fmt.Fprintf(b, "%s}\n", in)
		i += od.Fields().Len() - 1
	}
	for i := range md.Messages().Len() {
		printMessage(b, md.Messages().Get(i), in, syntax)
	}
	for i := range md.Enums().Len() {
		printEnum(b, md.Enums().Get(i), in)
	}
	printExtensions(b, md.Extensions(), in, syntax)
	for i := range md.ExtensionRanges().Len() {
		r := md.ExtensionRanges().Get(i)
		fmt.Fprintf(b, "%sextensions %s;\n", in, rangeString(int(r[0]), int(r[1])-1))
	}
	for i := range md.ReservedRanges().Len() {
		r := md.ReservedRanges().Get(i)
		fmt.Fprintf(b, "%sreserved %s;\n", in, rangeString(int(r[0]), int(r[1])-1))
	}
	for i := range md.ReservedNames().Len() {
		fmt.Fprintf(b, "%sreserved %q;\n", in, md.ReservedNames().Get(i))
	}
	fmt.Fprintf(b, "%s}\n", indent)
}

func rangeString(start, end int) string {
	switch {
	case end == start:
		return fmt.Sprint(start)
	case end == int(protowireMaxField):
		return fmt.Sprintf("%d to max", start)
	default:
		return fmt.Sprintf("%d to %d", start, end)
	}
}

const protowireMaxField = 536870911

func printField(b *bytes.Buffer, f protoreflect.FieldDescriptor, indent, syntax string) {
	label := ""
	switch {
	case f.Cardinality() == protoreflect.Repeated:
		label = "repeated "
	case f.Cardinality() == protoreflect.Required:
		label = "required "
	case f.ContainingOneof() != nil && !f.ContainingOneof().IsSynthetic():
	case syntax == "proto2" || f.HasOptionalKeyword():
		label = "optional "
	}
	opts := formatOptions(f.Options(), indent+"  ")
	if f.HasDefault() {
		opts = append([]string{"default = " + formatScalar(f, f.Default())}, opts...)
	}
	fmt.Fprintf(b, "%s%s%s %s = %d", indent, label, fieldType(f), f.Name(), f.Number())
	if len(opts) > 0 {
		fmt.Fprintf(b, " [\n%s  %s\n%s]", indent, strings.Join(opts, ",\n"+indent+"  "), indent)
	}
	b.WriteString(";\n")
}

func fieldType(f protoreflect.FieldDescriptor) string {
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return "." + string(f.Message().FullName())
	case protoreflect.EnumKind:
		return "." + string(f.Enum().FullName())
	default:
		return f.Kind().String()
	}
}

func printEnum(b *bytes.Buffer, ed protoreflect.EnumDescriptor, indent string) {
	fmt.Fprintf(b, "%senum %s {\n", indent, ed.Name())
	in := indent + "  "
	for _, opt := range formatOptions(ed.Options(), in) {
		fmt.Fprintf(b, "%soption %s;\n", in, opt)
	}
	for i := range ed.Values().Len() {
		v := ed.Values().Get(i)
		fmt.Fprintf(b, "%s%s = %d", in, v.Name(), v.Number())
		if opts := formatOptions(v.Options(), in); len(opts) > 0 {
			fmt.Fprintf(b, " [%s]", strings.Join(opts, ", "))
		}
		b.WriteString(";\n")
	}
	for i := range ed.ReservedRanges().Len() {
		r := ed.ReservedRanges().Get(i) // inclusive
		fmt.Fprintf(b, "%sreserved %s;\n", in, rangeString(int(r[0]), int(r[1])))
	}
	for i := range ed.ReservedNames().Len() {
		fmt.Fprintf(b, "%sreserved %q;\n", in, ed.ReservedNames().Get(i))
	}
	fmt.Fprintf(b, "%s}\n", indent)
}

func printExtensions(b *bytes.Buffer, xs protoreflect.ExtensionDescriptors, indent, syntax string) {
	for i := range xs.Len() {
		x := xs.Get(i)
		fmt.Fprintf(b, "\n%sextend .%s {\n", indent, x.ContainingMessage().FullName())
		printField(b, x, indent+"  ", syntax)
		fmt.Fprintf(b, "%s}\n", indent)
	}
}

// formatOptions renders every set option as `name = value`, sorted by field number so the
// output is stable.
func formatOptions(opts proto.Message, indent string) []string {
	if opts == nil {
		return nil
	}
	m := opts.ProtoReflect()
	if !m.IsValid() {
		return nil
	}
	var out []string
	for _, f := range sortedFields(m) {
		name := string(f.Name())
		if f.IsExtension() {
			name = "(" + string(f.FullName()) + ")"
		}
		v := m.Get(f)
		if f.IsList() {
			for i := range v.List().Len() {
				out = append(out, name+" = "+formatValue(f, v.List().Get(i), indent))
			}
			continue
		}
		out = append(out, name+" = "+formatValue(f, v, indent))
	}
	return out
}

func sortedFields(m protoreflect.Message) []protoreflect.FieldDescriptor {
	var fs []protoreflect.FieldDescriptor
	m.Range(func(f protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		fs = append(fs, f)
		return true
	})
	slices.SortFunc(fs, func(a, b protoreflect.FieldDescriptor) int { return int(a.Number()) - int(b.Number()) })
	return fs
}

// formatValue renders v in the protobuf text format used inside option message literals.
func formatValue(f protoreflect.FieldDescriptor, v protoreflect.Value, indent string) string {
	if f.Kind() != protoreflect.MessageKind && f.Kind() != protoreflect.GroupKind {
		return formatScalar(f, v)
	}
	m := v.Message()
	var b strings.Builder
	b.WriteString("{\n")
	in := indent + "  "
	for _, sf := range sortedFields(m) {
		name := string(sf.Name())
		if sf.IsExtension() {
			name = "[" + string(sf.FullName()) + "]"
		}
		sv := m.Get(sf)
		if sf.IsList() {
			for i := range sv.List().Len() {
				fmt.Fprintf(&b, "%s%s: %s\n", in, name, formatValue(sf, sv.List().Get(i), in))
			}
			continue
		}
		fmt.Fprintf(&b, "%s%s: %s\n", in, name, formatValue(sf, sv, in))
	}
	b.WriteString(indent + "}")
	return b.String()
}

func formatScalar(f protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch f.Kind() {
	case protoreflect.StringKind:
		return quoteProto([]byte(v.String()))
	case protoreflect.BytesKind:
		return quoteProto(v.Bytes())
	case protoreflect.EnumKind:
		if ev := f.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return fmt.Sprint(int32(v.Enum()))
	default:
		return v.String()
	}
}

// quoteProto quotes s for .proto source: printable ASCII as is, everything else octal.
func quoteProto(s []byte) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "\\%03o", c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
