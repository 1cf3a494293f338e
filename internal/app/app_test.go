package app

import (
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestValidate_golden runs `switchyard validate` on every testdata/validate/*.yaml and compares
// exit code, stdout and stderr with the .golden file next to it.
func TestValidate_golden(t *testing.T) {
	files, err := filepath.Glob("testdata/validate/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range files {
		t.Run(filepath.Base(in), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), []string{"validate", "--config", in}, &stdout, &stderr)
			got := "exit " + strconv.Itoa(code) + "\n--- stdout\n" + stdout.String() + "--- stderr\n" + stderr.String()
			golden := strings.TrimSuffix(in, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/app -run TestValidate_golden -update)", err)
			}
			if got != string(want) {
				t.Fatalf("validate output differs from %s\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestMain_usage_and_version(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{nil, 2, "Commands:"},
		{[]string{"version"}, 0, "switchyard "},
		{[]string{"help"}, 0, "Commands:"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"run", "--help"}, 0, "Usage: switchyard run"},
		{[]string{"validate", "--help"}, 0, "Usage: switchyard validate"},
		{[]string{"plan", "--help"}, 0, "Usage: switchyard plan"},
		{[]string{"dev", "--help"}, 0, "Usage: switchyard dev"},
		{[]string{"run"}, 1, "--config is required"},
		{[]string{"validate", "--config", "testdata/validate/ok.yaml", "extra"}, 2, `unexpected argument "extra"`},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.out) {
			t.Errorf("switchyard %v: exit %d, output %q; want exit %d and %q", tc.args, code, stdout.String()+stderr.String(), tc.code, tc.out)
		}
	}
}

// TestDev_runs_pipelines_and_exits_cleanly runs the embedded default for a few seconds.
func TestDev_runs_pipelines_and_exits_cleanly(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	t.Setenv("SWITCHYARD_ADMIN", "127.0.0.1:0")
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logFile := filepath.Join(t.TempDir(), "dev.log")
	code := Main(ctx, []string{"dev", "--duration", "11s", "--rate", "3000", "--log-format", "json", "--log-file", logFile}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("dev exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	// The final progress line, printed after the drain, must show every pipeline consuming,
	// landing and dead-lettering.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	for _, p := range []string{"livestream-views", "auction-bids", "orders-paid"} {
		re := regexp.MustCompile(p + ` consumed=([1-9][0-9]*) landed=([1-9][0-9]*) \[[^]]*\] dead=([0-9]+)`)
		if !re.MatchString(last) {
			t.Fatalf("last progress line lacks %s with events consumed and landed:\n%s\nfull stdout:\n%s", p, last, out)
		}
	}
	if !regexp.MustCompile(`dead=[1-9]`).MatchString(last) {
		t.Fatalf("no pipeline dead-lettered anything in %s", last)
	}
	if log := mustRead(t, logFile); !strings.Contains(log, `"msg":"dead-lettered event"`) {
		t.Fatal("no dead-letter line in the dev log")
	}
	if strings.Contains(stderr.String(), "dead-lettered event") {
		t.Fatal("dead-letter lines reach the terminal; they belong in the log file")
	}
}

func TestValidate_print_config_redacts_secrets(t *testing.T) {
	t.Setenv("KAFKA_PASSWORD", "hunter2-very-secret")
	dir := t.TempDir()
	cfg := strings.Replace(mustRead(t, "testdata/validate/ok.yaml"), "kafka:\n", "kafka:\n  sasl: {mechanism: SCRAM-SHA-512, username: sy, password: \"${KAFKA_PASSWORD}\"}\n", 1)
	cfg = strings.ReplaceAll(cfg, "../../contracts", "${CONTRACTS}")
	t.Setenv("CONTRACTS", mustAbs(t, "../../contracts"))
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"validate", "--print-config", "--config", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if strings.Contains(stdout.String(), "hunter2") || !strings.Contains(stdout.String(), "[redacted]") {
		t.Fatalf("password not redacted:\n%s", stdout.String())
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHelp_goes_to_stdout: help that was asked for (--help, -h, help <command>) is output, on
// stdout like the top-level usage, so it can be paged or grepped; a usage error stays on
// stderr.
func TestHelp_goes_to_stdout(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--help"}, {"run", "-h"}, {"help", "run"}, {"validate", "--help"}, {"help", "validate"},
		{"plan", "--help"}, {"dev", "--help"}, {"help", "dev"}, {"produce", "--help"}, {"status", "--help"},
		{"help", "status"}, {"generate", "alerts", "--help"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), args, &stdout, &stderr)
		cmd := args[0]
		if cmd == "help" {
			cmd = args[1]
		}
		if code != 0 || !strings.Contains(stdout.String(), "Usage: switchyard "+cmd) || stderr.Len() != 0 {
			t.Errorf("switchyard %v: exit %d, stdout %q, stderr %q; want exit 0 and the usage of %s on stdout only", args, code, stdout.String(), stderr.String(), cmd)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"run", "--no-such-flag"}, &stdout, &stderr); code != 2 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "Usage: switchyard run") {
		t.Errorf("bad flag: exit %d, stdout %q, stderr %q; want exit 2 and the usage on stderr", code, stdout.String(), stderr.String())
	}
}

// TestVersion_shows_commit: `version` names the commit, from -ldflags (make build) or, without
// them, from the build info Go stamps into a build from a git checkout.
func TestVersion_shows_commit(t *testing.T) {
	defer func(v, c string) { Version, Commit = v, c }(Version, Commit)
	Version, Commit = "v1.2.3", "0123456789abcdef0123456789abcdef01234567"
	var stdout, stderr bytes.Buffer
	Main(context.Background(), []string{"version"}, &stdout, &stderr)
	if got := stdout.String(); !strings.HasPrefix(got, "switchyard v1.2.3 (commit 0123456789abcdef0123456789abcdef01234567, go1.") {
		t.Errorf("version with ldflags: %q", got)
	}

	// The binary `make build` makes: stamped with the checkout's commit. (A plain `go build`
	// in a clone gets it from Go's VCS stamping through telemetry.Build; Go does not stamp
	// builds in a git worktree, where this test may run, so that path is not checked here.)
	bin := filepath.Join(t.TempDir(), "switchyard")
	root := mustAbs(t, "../..")
	build := exec.Command("make", "-s", "build", "BIN="+bin)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "(commit "+strings.TrimSpace(string(head))+",") || strings.HasPrefix(string(out), "switchyard dev ") {
		t.Errorf("switchyard version = %q, want a git describe version and the checkout's commit %s", out, head)
	}
}

// TestDev_admin_port_taken_hints_at_the_fix: with the admin port in use, dev fails saying
// which setting to change.
func TestDev_admin_port_taken_hints_at_the_fix(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Chdir(mustAbs(t, "../.."))
	t.Setenv("SWITCHYARD_ADMIN", ln.Addr().String())
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := Main(ctx, []string{"dev", "--clickhouse=false", "--duration", "30s", "--log-format", "text", "--log-file", filepath.Join(t.TempDir(), "dev.log")}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("dev with the admin port taken exited %d, want 1\nstderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"address already in use", "admin.address (configs/dev.yaml:17:3)", "SWITCHYARD_ADMIN="} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}
