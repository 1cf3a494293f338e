package contract_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/switchyard-dev/switchyard/contract"
)

// contractsDir is the repository's sample contracts.
const contractsDir = "../contracts"

func load(t testing.TB) *contract.Registry {
	t.Helper()
	reg, err := contract.Load(contractsDir)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func lookup(t testing.TB, reg *contract.Registry, name string) *contract.Contract {
	t.Helper()
	c, err := reg.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeTree writes files (slash paths relative to a new temp dir) and returns the dir.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
