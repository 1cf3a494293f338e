package gen

import (
	"bytes"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// toolPath returns the full path of buf and a PATH that finds protoc-gen-go: the directories
// .ci/setup installs them into (the Makefile looks there too), then $PATH.
func toolPath(t *testing.T) (buf, path string) {
	t.Helper()
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, ".cache", "switchyard", "tools")
	path = filepath.Join(dir, "bin") + string(os.PathListSeparator) + filepath.Join(home, ".cache", "switchyard", "buf", "node_modules", ".bin") + string(os.PathListSeparator) + os.Getenv("PATH")
	found := map[string]string{}
	for _, tool := range []string{"buf", "protoc-gen-go"} {
		for _, d := range filepath.SplitList(path) {
			if _, err := os.Stat(filepath.Join(d, tool)); err == nil {
				found[tool] = filepath.Join(d, tool)
				break
			}
		}
		if found[tool] == "" {
			t.Fatalf("%s not found in %s or on PATH: run bash .ci/setup", tool, dir)
		}
	}
	return found["buf"], path
}

// TestGenerated_up_to_date regenerates the Go types into a temporary directory, as
// `make generate-go` does, and fails when any checked-in file differs, is missing or is extra.
func TestGenerated_up_to_date(t *testing.T) {
	buf, path := toolPath(t)
	out := t.TempDir()
	cmd := exec.Command(buf, "generate", "--output", out)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "PATH="+path)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("buf generate: %v\n%s", err, b)
	}
	fresh := pbFiles(t, filepath.Join(out, "gen", "go"))
	checked := pbFiles(t, ".")
	if len(fresh) == 0 {
		t.Fatal("buf generate wrote no .pb.go files")
	}
	for name, want := range fresh {
		got, ok := checked[name]
		switch {
		case !ok:
			t.Errorf("gen/go/%s is missing: run make generate-go", name)
		case !bytes.Equal(got, want):
			t.Errorf("gen/go/%s is stale: run make generate-go", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(checked)) {
		if _, ok := fresh[name]; !ok {
			t.Errorf("gen/go/%s is not generated from contracts/ any more: delete it (make generate-go does not)", name)
		}
	}
}

func pbFiles(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".pb.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
