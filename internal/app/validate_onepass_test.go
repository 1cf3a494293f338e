package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestValidate_one_pass_matches_the_full_check fixes the structural mistakes of the golden
// structural_and_transform_cel.yaml and checks that the CEL problems the one pass reported
// are exactly the ones the full compile then reports, each once, and that the only new
// problem is in the step the one pass could not check (it follows a step that failed to
// decode).
func TestValidate_one_pass_matches_the_full_check(t *testing.T) {
	const in = "testdata/validate/structural_and_transform_cel.yaml"
	src := mustRead(t, in)
	abs, err := filepath.Abs("../../contracts")
	if err != nil {
		t.Fatal(err)
	}
	fixed := strings.NewReplacer(
		"max_batch: lots", "max_batch: 100",
		"            flaten: true\n", "",
		"path: ../../contracts", "path: "+abs,
	).Replace(src)
	if fixed == src || strings.Contains(fixed, "flaten") || strings.Contains(fixed, "lots") {
		t.Fatal("the replacements no longer match the golden input")
	}
	path := filepath.Join(t.TempDir(), "fixed.yaml")
	if err := os.WriteFile(path, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}

	onePass := validateLines(t, in)
	full := validateLines(t, path)
	cel := regexp.MustCompile(`^\d+:\d+: pipeline "bids" route `)
	var fromOnePass []string
	for _, l := range onePass {
		if cel.MatchString(l) {
			fromOnePass = append(fromOnePass, l)
		}
	}
	if len(fromOnePass) != 3 || len(onePass) != 5 {
		t.Fatalf("one pass reported %d problems, %d of them CEL; want 5 and 3:\n%s", len(onePass), len(fromOnePass), strings.Join(onePass, "\n"))
	}
	count := map[string]int{}
	for _, l := range full {
		count[l]++
	}
	for _, l := range fromOnePass {
		if count[l] != 1 {
			t.Errorf("the full check reports %q %d times, want once", l, count[l])
		}
		delete(count, l)
	}
	if len(count) != 1 {
		t.Fatalf("the full check reports %d problems the one pass did not, want 1:\n%s", len(count), strings.Join(full, "\n"))
	}
	for l := range count {
		if !strings.Contains(l, "not_checked_after_a_broken_step") {
			t.Errorf("unexpected new problem %q", l)
		}
	}
}

// validateLines runs validate on path, expects exit 1, and returns the problems with the
// file name cut off.
func validateLines(t *testing.T, path string) []string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"validate", "--config", path}, &stdout, &stderr); code != 1 {
		t.Fatalf("validate %s: exit %d, want 1\n%s", path, code, stderr.String())
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		out = append(out, strings.TrimPrefix(l, path+":"))
	}
	return out
}
