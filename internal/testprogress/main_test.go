package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestRun_reports_packages_slow_tests_and_failures(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"start","Package":"a"}`,
		`{"Action":"run","Package":"a","Test":"TestFast"}`,
		`{"Action":"output","Package":"a","Test":"TestFast","Output":"quiet\n"}`,
		`{"Action":"pass","Package":"a","Test":"TestFast","Elapsed":0.1}`,
		`{"Action":"pass","Package":"a","Test":"TestSlow","Elapsed":12.5}`,
		`{"Action":"pass","Package":"a","Elapsed":12.7}`,
		`{"Action":"output","Package":"b","Test":"TestBroken","Output":"b_test.go:9: want 1, got 2\n"}`,
		`{"Action":"fail","Package":"b","Test":"TestBroken","Elapsed":0.2}`,
		`{"Action":"fail","Package":"b","Elapsed":0.3}`,
		`{"ImportPath":"c [c.test]","Action":"build-output","Output":"c.go:3:1: syntax error\n"}`,
		`{"ImportPath":"c [c.test]","Action":"build-fail"}`,
		`{"Action":"fail","Package":"c","Elapsed":0,"FailedBuild":"c [c.test]"}`,
	}, "\n") + "\n"
	var out bytes.Buffer
	code := run(strings.NewReader(in), &out, func() time.Time { return time.Unix(0, 0) })
	got := out.String()
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{"ok    a ", "a TestSlow 12.5s", "--- FAIL b TestBroken (0.2s)\nb_test.go:9: want 1, got 2\n",
		"FAIL  b ", "BUILD FAIL c [c.test]\nc.go:3:1: syntax error\n", "FAIL  c ", "FAIL: 3 failures in 3 packages"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "quiet") || strings.Contains(got, "TestFast") {
		t.Errorf("output shows a passing fast test:\n%s", got)
	}
}

func TestRun_passes(t *testing.T) {
	var out bytes.Buffer
	in := `{"Action":"pass","Package":"a","Elapsed":1}` + "\n"
	if code := run(strings.NewReader(in), &out, time.Now); code != 0 || !strings.Contains(out.String(), "PASS: 1 packages") {
		t.Errorf("exit %d, output %q", code, out.String())
	}
}

// TestPipeline_real_go_test_json feeds the formatter what `go test -json` prints for a module
// with a failing test: `make test` must still fail, with the test's output shown.
func TestPipeline_real_go_test_json(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := exec.Command("sh", "-c", "cat > "+dir+"/"+name+" <<'EOF'\n"+body+"\nEOF").Run(); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module x\n\ngo 1.24")
	write("x_test.go", "package x\n\nimport \"testing\"\n\nfunc TestOK(t *testing.T) {}\n\nfunc TestBad(t *testing.T) { t.Fatal(\"broken on purpose\") }")
	cmd := exec.Command("go", "test", "-json", "./...")
	cmd.Dir = dir
	raw, _ := cmd.Output()
	var out bytes.Buffer
	if code := run(bytes.NewReader(raw), &out, time.Now); code != 1 || !strings.Contains(out.String(), "broken on purpose") || !strings.Contains(out.String(), "--- FAIL x TestBad") {
		t.Errorf("exit %d, output:\n%s", code, out.String())
	}
}
