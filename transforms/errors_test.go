package transforms_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/transforms"
)

var update = flag.Bool("update", false, "rewrite the .golden files of testdata/errors")

// TestCompile_errors_golden loads each configuration in testdata/errors, compiles every
// route's transforms against its contract and compares all problems, as the CLI prints them
// (file:line:col: message, sorted), with the .golden file next to it.
func TestCompile_errors_golden(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases in testdata/errors: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			cfg, err := config.Load(file)
			if err != nil {
				t.Fatalf("the configuration itself must load: %v", err)
			}
			key, err := transforms.HashKey(cfg.PII)
			if err != nil {
				t.Fatal(err)
			}
			var all config.Errors
			for _, p := range cfg.Pipelines {
				c := lookup(t, p.Contract.Message)
				for i, r := range p.Routes {
					ch, errs := transforms.Compile(r, c.Descriptor(), transforms.Options{Pipeline: p.Name, HashKey: key, Now: time.Now}, cfg.Pos, fmt.Sprintf("%s.routes[%d]", p.Path, i))
					if (ch == nil) != (len(errs) > 0) {
						t.Errorf("route %d: Compile returned chain %v with %d errors", i, ch != nil, len(errs))
					}
					for _, e := range errs {
						if e.Pos.Line == 0 {
							t.Errorf("problem without a line: %v", e)
						}
					}
					all = append(all, errs...)
				}
			}
			got := all.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./transforms -run TestCompile_errors_golden -update)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
			var es config.Errors
			if !errors.As(error(all), &es) || len(es) == 0 {
				t.Error("a golden case must report problems")
			}
		})
	}
}
