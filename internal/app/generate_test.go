package app

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestGenerate_alerts_to_stdout_and_file_pass_promtool(t *testing.T) {
	code, stdout, stderr := runMain("generate", "alerts", "--config", "../../configs/dev.yaml")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"switchyard:slo_error_ratio:rate5m", "alert: SwitchyardErrorBudgetBurn", "team: auctions", `contact: '#auctions-oncall'`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in the rule file:\n%s", want, stdout)
		}
	}
	file := filepath.Join(t.TempDir(), "switchyard.rules.yaml")
	if code, _, stderr := runMain("generate", "alerts", "--config", "../../configs/dev.yaml", "--out", file); code != 0 {
		t.Fatalf("--out: exit %d, stderr:\n%s", code, stderr)
	}
	written, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(written) != stdout {
		t.Fatalf("--out wrote something else than stdout got")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not on PATH (%v): run .ci/setup, which installs Debian's prometheus package", err)
	}
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

func TestGenerate_dashboard_matches_the_generators_golden(t *testing.T) {
	code, stdout, stderr := runMain("generate", "dashboard", "--config", "../../configs/dev.yaml")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	want, err := os.ReadFile("../generate/testdata/dashboard.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if stdout != string(want) {
		t.Fatalf("generate dashboard differs from internal/generate/testdata/dashboard.golden.json")
	}
}

func TestGenerate_usage_and_errors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("pipelines:\n  - name: x\n    sinks: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"generate"}, 2, "", "Usage: switchyard generate <artefact>"},
		{[]string{"generate", "--help"}, 0, "alerts     a Prometheus rule file", ""},
		{[]string{"generate", "alert"}, 2, "", `unknown artefact "alert"`},
		{[]string{"generate", "alerts", "--help"}, 0, "Usage: switchyard generate alerts --config PATH [--out FILE]", ""},
		{[]string{"generate", "dashboard", "--help"}, 0, "-out file", ""},
		{[]string{"generate", "alerts"}, 1, "", "--config is required"},
		{[]string{"generate", "alerts", "--config", "../../configs/dev.yaml", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"generate", "dashboard", "--config", bad}, 1, "", bad + ":"},
		{[]string{"generate", "alerts", "--config", "../../configs/dev.yaml", "--out", filepath.Join(t.TempDir(), "no", "such", "dir")}, 1, "", "switchyard generate alerts: write:"},
	} {
		code, stdout, stderr := runMain(tc.args...)
		if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%q: exit %d, want %d; stdout %q (want %q in it); stderr %q (want %q in it)",
				tc.args, code, tc.code, stdout, tc.stdout, stderr, tc.stderr)
		}
	}
}
