package contract

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contracts"
)

// Import paths of Switchyard's own field options (the PII marks).
const (
	// OptionsProto declares (switchyard.v1.field), extension 57292 of
	// google.protobuf.FieldOptions; its source is contracts/switchyard/v1/options.proto,
	// compiled in through package contracts.
	OptionsProto = "switchyard/v1/options.proto"
	// LegacyOptionsProto declares the deprecated (switchyard.field), extension 57291, in the
	// unversioned package switchyard. Contracts written before switchyard.v1 import it.
	LegacyOptionsProto = "switchyard/options.proto"
)

// legacyOptions is the source of LegacyOptionsProto. It is kept out of contracts/ because buf
// lint rejects its unversioned package.
//
//go:embed options/switchyard/options.proto
var legacyOptions []byte

// optionsSource returns the compiled-in source of one of Switchyard's options files, or
// false for any other import path. Contract directories and descriptor sets that hold the
// file themselves use their own copy; this one fills in when they do not.
func optionsSource(importPath string) ([]byte, bool) {
	switch importPath {
	case OptionsProto:
		return contracts.OptionsProto, true
	case LegacyOptionsProto:
		return legacyOptions, true
	}
	return nil, false
}

// isOptionsFile reports whether importPath is one of Switchyard's options files, which
// declare field options and no contracts.
func isOptionsFile(importPath string) bool {
	_, ok := optionsSource(importPath)
	return ok
}

var (
	optionsMu    sync.Mutex
	optionsFiles = map[string]protoreflect.FileDescriptor{}
)

// optionsFile compiles, once, the compiled-in copy of an options file, for descriptor sets
// built without their imports.
func optionsFile(importPath string) (protoreflect.FileDescriptor, error) {
	optionsMu.Lock()
	defer optionsMu.Unlock()
	if fd, ok := optionsFiles[importPath]; ok {
		return fd, nil
	}
	src, _ := optionsSource(importPath)
	compiler := protocompile.Compiler{
		Resolver: protocompile.ResolverFunc(func(p string) (protocompile.SearchResult, error) {
			if p == importPath {
				return protocompile.SearchResult{Source: io.NopCloser(bytes.NewReader(src))}, nil
			}
			fd, err := builtinFile(p)
			if err != nil {
				return protocompile.SearchResult{}, err
			}
			return protocompile.SearchResult{Desc: fd}, nil
		}),
	}
	linked, err := compiler.Compile(context.Background(), importPath)
	if err != nil {
		return nil, fmt.Errorf("compile the built-in %s: %w", importPath, err)
	}
	optionsFiles[importPath] = linked[0]
	return linked[0], nil
}

// LegacyOptionImports returns the contract files that import the deprecated
// LegacyOptionsProto, sorted, so that callers can warn about them.
func (r *Registry) LegacyOptionImports() []string {
	var out []string
	r.files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		imports := fd.Imports()
		for i := range imports.Len() {
			if imports.Get(i).Path() == LegacyOptionsProto && !isOptionsFile(fd.Path()) {
				out = append(out, fd.Path())
				break
			}
		}
		return true
	})
	sort.Strings(out)
	return out
}
