package contract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/reporter"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/internal/suggest"
)

// validateProto is the import path of the protovalidate rule definitions.
const validateProto = "buf/validate/validate.proto"

// Registry is a set of compiled contracts. It is immutable after Load except for the
// Contract cache behind Lookup, and is safe for concurrent use.
type Registry struct {
	source string // the path given to Load, for error messages
	files  *protoregistry.Files
	types  *protoregistry.Types
	// names are the message full names declared by the contracts themselves (not by
	// well-known types or validate.proto), sorted; Lookup suggests among them.
	names []string

	mu        sync.Mutex
	contracts map[protoreflect.FullName]*Contract
}

// Load compiles the contracts at path, which is either
//
//   - a directory: every *.proto file under it is compiled with protocompile, imports
//     resolving relative to the directory, or
//   - a file holding a binary google.protobuf.FileDescriptorSet, e.g. from
//     `buf build -o contracts.binpb` (with or without --exclude-imports).
//
// In both cases google/protobuf/*.proto and buf/validate/validate.proto resolve to the
// descriptors compiled into the binary; copies in the directory or set are ignored.
// Switchyard's options files (OptionsProto, and the deprecated LegacyOptionsProto) resolve to
// copies compiled into the binary when the directory or set does not hold them.
//
// Compile errors are reported all at once, one per line, each as
// "path/to/file.proto:line:col: message" with the path joined to the directory given, so
// the errors can be opened in an editor; the returned error also matches
// reporter.ErrorWithPos with errors.As.
func Load(path string) (*Registry, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load contracts: %w", err)
	}
	var files *protoregistry.Files
	if st.IsDir() {
		files, err = compileDir(path)
	} else {
		files, err = loadDescriptorSet(path)
	}
	if err != nil {
		return nil, err
	}
	return newRegistry(path, files)
}

// isBuiltin reports whether the file at importPath always resolves to the descriptor
// compiled into the binary.
func isBuiltin(importPath string) bool {
	if importPath == validateProto {
		return true
	}
	if strings.HasPrefix(importPath, "google/protobuf/") {
		_, err := protoregistry.GlobalFiles.FindFileByPath(importPath)
		return err == nil
	}
	return false
}

// builtinFile returns the compiled-in descriptor for a builtin import path.
func builtinFile(importPath string) (protoreflect.FileDescriptor, error) {
	if importPath == validateProto {
		return validate.File_buf_validate_validate_proto, nil
	}
	return protoregistry.GlobalFiles.FindFileByPath(importPath)
}

func compileDir(dir string) (*protoregistry.Files, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || filepath.Ext(p) != ".proto" {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !isBuiltin(rel) {
			paths = append(paths, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list contracts in %s: %w", dir, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("load contracts: no .proto files in %s", dir)
	}
	sort.Strings(paths)

	src := &protocompile.SourceResolver{
		Accessor: func(p string) (io.ReadCloser, error) {
			f, err := os.Open(filepath.Join(dir, filepath.FromSlash(p)))
			if errors.Is(err, fs.ErrNotExist) {
				if src, ok := optionsSource(p); ok {
					return io.NopCloser(bytes.NewReader(src)), nil
				}
				return nil, fmt.Errorf("%q is not a well-known import and not in %s", p, dir)
			}
			return f, err
		},
	}
	resolver := protocompile.ResolverFunc(func(p string) (protocompile.SearchResult, error) {
		if isBuiltin(p) {
			fd, err := builtinFile(p)
			if err != nil {
				return protocompile.SearchResult{}, err
			}
			return protocompile.SearchResult{Desc: fd}, nil
		}
		return src.FindFileByPath(p)
	})

	var problems []posError
	compiler := protocompile.Compiler{
		Resolver:       resolver,
		SourceInfoMode: protocompile.SourceInfoStandard,
		Reporter: reporter.NewReporter(func(err reporter.ErrorWithPos) error {
			problems = append(problems, posError{dir: dir, err: err})
			return nil // keep going: report every problem at once
		}, nil),
	}
	linked, err := compiler.Compile(context.Background(), paths...)
	if len(problems) > 0 {
		// protocompile works on files in parallel; report in file order.
		slices.SortStableFunc(problems, func(a, b posError) int {
			pa, pb := a.err.GetPosition(), b.err.GetPosition()
			if c := strings.Compare(pa.Filename, pb.Filename); c != 0 {
				return c
			}
			if pa.Line != pb.Line {
				return pa.Line - pb.Line
			}
			return pa.Col - pb.Col
		})
		errs := make([]error, len(problems))
		for i, p := range problems {
			errs[i] = p
		}
		return nil, errors.Join(errs...)
	}
	var withPos reporter.ErrorWithPos
	if errors.As(err, &withPos) {
		return nil, posError{dir: dir, err: withPos}
	}
	if err != nil {
		return nil, fmt.Errorf("compile contracts in %s: %w", dir, err)
	}
	files := new(protoregistry.Files)
	for _, f := range linked {
		if err := registerWithImports(files, f); err != nil {
			return nil, fmt.Errorf("register contracts from %s: %w", dir, err)
		}
	}
	return files, nil
}

// posError renders a protocompile error as "dir/file.proto:line:col: message".
type posError struct {
	dir string
	err reporter.ErrorWithPos
}

func (e posError) Error() string {
	pos := e.err.GetPosition()
	return fmt.Sprintf("%s:%d:%d: %v", filepath.Join(e.dir, filepath.FromSlash(pos.Filename)), pos.Line, pos.Col, e.err.Unwrap())
}

func (e posError) Unwrap() error { return e.err }

// registerWithImports registers fd and, first, everything it imports transitively.
func registerWithImports(files *protoregistry.Files, fd protoreflect.FileDescriptor) error {
	if _, err := files.FindFileByPath(fd.Path()); err == nil {
		return nil
	}
	imports := fd.Imports()
	for i := range imports.Len() {
		if err := registerWithImports(files, imports.Get(i).FileDescriptor); err != nil {
			return err
		}
	}
	return files.RegisterFile(fd)
}

func loadDescriptorSet(path string) (*protoregistry.Files, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load contracts: %w", err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("load contracts from %s: want a directory of .proto files or a binary FileDescriptorSet (buf build -o): %w", path, err)
	}
	if len(set.File) == 0 {
		return nil, fmt.Errorf("load contracts from %s: descriptor set holds no files", path)
	}
	byName := make(map[string]*descriptorpb.FileDescriptorProto, len(set.File))
	for _, f := range set.File {
		byName[f.GetName()] = f
	}
	files := new(protoregistry.Files)
	var add func(name string, from string, stack []string) error
	add = func(name, from string, stack []string) error {
		if _, err := files.FindFileByPath(name); err == nil {
			return nil
		}
		if slices.Contains(stack, name) {
			return fmt.Errorf("import cycle: %s -> %s", strings.Join(stack, " -> "), name)
		}
		if isBuiltin(name) {
			fd, err := builtinFile(name)
			if err != nil {
				return err
			}
			return registerWithImports(files, fd)
		}
		fdp, ok := byName[name]
		if !ok && isOptionsFile(name) {
			fd, err := optionsFile(name)
			if err != nil {
				return err
			}
			return registerWithImports(files, fd)
		}
		if !ok {
			return fmt.Errorf("%s imports %q, which the descriptor set does not contain (build it without --exclude-imports)", from, name)
		}
		for _, dep := range fdp.GetDependency() {
			if err := add(dep, name, append(stack, name)); err != nil {
				return err
			}
		}
		fd, err := protodesc.NewFile(fdp, files)
		if err != nil {
			return fmt.Errorf("link %s: %w", name, err)
		}
		return files.RegisterFile(fd)
	}
	for _, f := range set.File {
		if err := add(f.GetName(), path, nil); err != nil {
			return nil, fmt.Errorf("load contracts from %s: %w", path, err)
		}
	}
	return files, nil
}

func newRegistry(source string, files *protoregistry.Files) (*Registry, error) {
	r := &Registry{
		source:    source,
		files:     files,
		types:     new(protoregistry.Types),
		contracts: make(map[protoreflect.FullName]*Contract),
	}
	var err error
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		builtin := isBuiltin(fd.Path())
		err = r.registerTypes(fd, builtin)
		// Switchyard's options files declare field options, not contracts.
		if err == nil && !builtin && !isOptionsFile(fd.Path()) {
			walkMessages(fd.Messages(), func(md protoreflect.MessageDescriptor) {
				if !md.IsMapEntry() {
					r.names = append(r.names, string(md.FullName()))
				}
			})
		}
		return err == nil
	})
	if err != nil {
		return nil, fmt.Errorf("register types from %s: %w", source, err)
	}
	sort.Strings(r.names)
	return r, nil
}

// registerTypes registers every message, enum and extension type of fd: the generated Go
// types for builtin files (so CEL and protojson see e.g. *timestamppb.Timestamp) and
// dynamicpb types for contract files.
func (r *Registry) registerTypes(fd protoreflect.FileDescriptor, builtin bool) error {
	var err error
	register := func(e error) {
		if err == nil {
			err = e
		}
	}
	walkMessages(fd.Messages(), func(md protoreflect.MessageDescriptor) {
		if md.IsMapEntry() {
			return
		}
		if builtin {
			if mt, e := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); e == nil {
				register(r.types.RegisterMessage(mt))
				return
			}
		}
		register(r.types.RegisterMessage(dynamicpb.NewMessageType(md)))
	})
	walkEnums(fd, func(ed protoreflect.EnumDescriptor) {
		if builtin {
			if et, e := protoregistry.GlobalTypes.FindEnumByName(ed.FullName()); e == nil {
				register(r.types.RegisterEnum(et))
				return
			}
		}
		register(r.types.RegisterEnum(dynamicpb.NewEnumType(ed)))
	})
	walkExtensions(fd, func(xd protoreflect.ExtensionDescriptor) {
		if builtin {
			if xt, e := protoregistry.GlobalTypes.FindExtensionByName(xd.FullName()); e == nil {
				register(r.types.RegisterExtension(xt))
				return
			}
		}
		register(r.types.RegisterExtension(dynamicpb.NewExtensionType(xd)))
	})
	return err
}

func walkMessages(ms protoreflect.MessageDescriptors, fn func(protoreflect.MessageDescriptor)) {
	for i := range ms.Len() {
		md := ms.Get(i)
		fn(md)
		walkMessages(md.Messages(), fn)
	}
}

func walkEnums(fd protoreflect.FileDescriptor, fn func(protoreflect.EnumDescriptor)) {
	each := func(es protoreflect.EnumDescriptors) {
		for i := range es.Len() {
			fn(es.Get(i))
		}
	}
	each(fd.Enums())
	walkMessages(fd.Messages(), func(md protoreflect.MessageDescriptor) { each(md.Enums()) })
}

func walkExtensions(fd protoreflect.FileDescriptor, fn func(protoreflect.ExtensionDescriptor)) {
	each := func(xs protoreflect.ExtensionDescriptors) {
		for i := range xs.Len() {
			fn(xs.Get(i))
		}
	}
	each(fd.Extensions())
	walkMessages(fd.Messages(), func(md protoreflect.MessageDescriptor) { each(md.Extensions()) })
}

// Files returns every file of the registry, including the well-known types and
// buf/validate/validate.proto. The caller must not register more files into it.
func (r *Registry) Files() *protoregistry.Files { return r.files }

// Types returns a type for every message, enum and extension of Files: generated Go types
// for well-known types and validate.proto, dynamicpb types for contract files. Use it as
// the resolver for CEL environments and for protojson/prototext (google.protobuf.Any).
// The caller must not register more types into it.
func (r *Registry) Types() *protoregistry.Types { return r.types }

// Names returns the full names of the messages the contracts declare (nested ones
// included; well-known types, validate.proto and map entries excluded), sorted.
func (r *Registry) Names() []string { return slices.Clone(r.names) }

// Lookup returns the contract for the message fullName, e.g. "auctions.v1.BidPlaced".
//
// The first Lookup of a name compiles the hyperpb parser and the protovalidate rules of
// the message, so call it at start-up: a rule that does not compile (bad CEL) is reported
// here, not on the first event. Later calls return the same *Contract. Lookup is safe for
// concurrent use.
//
// An unknown name yields an error suggesting the closest declared names.
func (r *Registry) Lookup(fullName string) (*Contract, error) {
	name := protoreflect.FullName(strings.TrimPrefix(fullName, "."))
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.contracts[name]; ok {
		return c, nil
	}
	d, err := r.files.FindDescriptorByName(name)
	if err != nil || !name.IsValid() {
		return nil, fmt.Errorf("contract %q not found in %s%s", fullName, r.source, r.suggest(string(name)))
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return nil, fmt.Errorf("contract %q in %s is %s, not a message%s", fullName, r.source, descriptorKind(d), r.suggest(string(name)))
	}
	if md.IsMapEntry() {
		return nil, fmt.Errorf("contract %q in %s is a map entry, not a message", fullName, r.source)
	}
	c, err := newContract(r, md)
	if err != nil {
		return nil, err
	}
	r.contracts[name] = c
	return c, nil
}

func descriptorKind(d protoreflect.Descriptor) string {
	switch d.(type) {
	case protoreflect.EnumDescriptor:
		return "an enum"
	case protoreflect.EnumValueDescriptor:
		return "an enum value"
	case protoreflect.FieldDescriptor:
		return "a field"
	case protoreflect.OneofDescriptor:
		return "a oneof"
	case protoreflect.ServiceDescriptor:
		return "a service"
	case protoreflect.MethodDescriptor:
		return "a method"
	default:
		return "a package"
	}
}

// suggest returns ` (did you mean "x"?)` for the declared names closest to name, or ""
// when nothing is close.
func (r *Registry) suggest(name string) string {
	var best []string
	bestDist := -1
	lname := strings.ToLower(name)
	for _, n := range r.names {
		ln := strings.ToLower(n)
		var d int
		switch {
		case ln == lname:
			d = 0
		case strings.HasSuffix(ln, "."+lname): // short name given, e.g. "BidPlaced"
			d = 1
		default:
			d = suggest.Distance(lname, ln)
			if d > max(2, len(ln)/4) {
				continue
			}
		}
		switch {
		case bestDist < 0 || d < bestDist:
			best, bestDist = []string{n}, d
		case d == bestDist:
			best = append(best, n)
		}
	}
	if len(best) == 0 {
		if len(r.names) > 0 && len(r.names) <= 10 {
			return fmt.Sprintf(" (declared: %s)", strings.Join(r.names, ", "))
		}
		return ""
	}
	quoted := make([]string, len(best))
	for i, b := range best {
		quoted[i] = fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf(" (did you mean %s?)", strings.Join(quoted, " or "))
}
