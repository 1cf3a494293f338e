package generate

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// promtool returns the path of the promtool binary, failing the test (never skipping it) when
// it is missing: the rules are only known good once the real tool has read them.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not on PATH (%v): run .ci/setup, which installs Debian's prometheus package", err)
	}
	return path
}

// runPromtool runs promtool with args in dir and returns its combined output, failing the
// test with that output when promtool exits non-zero.
func runPromtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
	t.Logf("promtool %v:\n%s", args, out)
	return string(out)
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeRules(t *testing.T, dir string, pipelines []Pipeline) string {
	t.Helper()
	path := filepath.Join(dir, "rules.yaml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WriteRules(f, pipelines); err != nil {
		t.Fatal(err)
	}
	return path
}

// The input of `promtool test rules`, as documented in Prometheus'
// docs/configuration/unit_testing_rules.md.
type (
	promTestFile struct {
		RuleFiles          []string   `yaml:"rule_files"`
		EvaluationInterval string     `yaml:"evaluation_interval"`
		Tests              []promTest `yaml:"tests"`
	}
	promTest struct {
		Name           string          `yaml:"name"`
		Interval       string          `yaml:"interval"`
		InputSeries    []promSeries    `yaml:"input_series"`
		AlertRuleTests []promAlertTest `yaml:"alert_rule_test,omitempty"`
		PromQLTests    []promExprTest  `yaml:"promql_expr_test,omitempty"`
	}
	promSeries struct {
		Series string `yaml:"series"`
		Values string `yaml:"values"`
	}
	promAlertTest struct {
		EvalTime  string         `yaml:"eval_time"`
		Alertname string         `yaml:"alertname"`
		ExpAlerts []promExpAlert `yaml:"exp_alerts"`
	}
	promExpAlert struct {
		ExpLabels      map[string]string `yaml:"exp_labels"`
		ExpAnnotations map[string]string `yaml:"exp_annotations"`
	}
	promExprTest struct {
		Expr       string          `yaml:"expr"`
		EvalTime   string          `yaml:"eval_time"`
		ExpSamples []promExpSample `yaml:"exp_samples"`
	}
	promExpSample struct {
		Labels string  `yaml:"labels"`
		Value  float64 `yaml:"value"`
	}
)
