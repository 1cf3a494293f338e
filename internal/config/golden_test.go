package config_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/switchyard-dev/switchyard/internal/config"
	_ "github.com/switchyard-dev/switchyard/sinks/all"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the current output")

// TestLoad_errors_golden loads every testdata/errors/*.yaml file and directory and compares
// the problems reported with the matching .golden file, line and column included. Run
// "go test ./internal/config -run TestLoad_errors_golden -update" to rewrite the goldens
// after an intended change, and review the diff.
func TestLoad_errors_golden(t *testing.T) {
	t.Setenv("SWITCHYARD_TEST_UNSET", "")
	t.Setenv("SWITCHYARD_TEST_UNSET_PASSWORD", "")
	t.Setenv("SWITCHYARD_TEST_UNSET_BATCH", "")
	for _, v := range []string{"SWITCHYARD_TEST_UNSET", "SWITCHYARD_TEST_UNSET_PASSWORD", "SWITCHYARD_TEST_UNSET_BATCH"} {
		os.Unsetenv(v) // t.Setenv restores the previous state afterwards
	}
	const dir = "testdata/errors"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".yaml")
		if e.IsDir() {
			name, ok = e.Name(), true
		}
		if !ok {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(filepath.Join(dir, e.Name()))
			if err == nil {
				t.Fatal("Load returned no error")
			}
			if cfg != nil {
				t.Error("Load returned a Config with its error")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load returned %T (%v), want Errors", err, err)
			}
			got := err.Error() + "\n"
			golden := filepath.Join(dir, name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("problems differ from %s (run with -update to accept):\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
	if n < 10 {
		t.Fatalf("found %d golden cases in %s, want at least 10", n, dir)
	}
}
