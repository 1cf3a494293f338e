package all_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	_ "github.com/switchyard-dev/switchyard/sinks/all"
	"github.com/switchyard-dev/switchyard/sinks/registry"
)

// TestEverySinkListed fails when a package under sinks/ registers a sink kind (calls
// registry.Register) but all.go does not import it, or when all.go imports one that does
// not, so a new sink cannot be left out of the binary.
func TestEverySinkListed(t *testing.T) {
	registering := sinkPackagesThatRegister(t, "..")
	if len(registering) == 0 {
		t.Fatal("found no package under sinks/ that calls registry.Register")
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "all.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		listed = append(listed, p)
	}
	for _, p := range registering {
		if !slices.Contains(listed, p) {
			t.Errorf("%s registers a sink kind but sinks/all/all.go does not import it; add:\n\t_ %q", p, p)
		}
	}
	for _, p := range listed {
		if !slices.Contains(registering, p) {
			t.Errorf("sinks/all/all.go imports %s, which registers no sink kind", p)
		}
	}
	// One kind per sink package, and every kind comes from a listed package.
	if got := registry.Kinds(); len(got) != len(registering) {
		t.Errorf("registry has kinds %v, want one per package of %v", got, registering)
	}
}

// sinkPackagesThatRegister returns the import paths of the packages under dir (sinks/)
// whose non-test files call registry.Register.
func sinkPackagesThatRegister(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "registry") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !strings.Contains(string(src), "registry.Register(") {
			return nil
		}
		rel, err := filepath.Rel(dir, filepath.Dir(path))
		if err != nil {
			return err
		}
		p := "github.com/switchyard-dev/switchyard/sinks/" + filepath.ToSlash(rel)
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
