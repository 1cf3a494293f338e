package app

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/internal/buftool"
)

var updateCheck = flag.Bool("update-check", false, "rewrite testdata/check/cases/*.golden")

const checkConfig = "testdata/check/check.yaml"

// runCheck runs `switchyard contracts check` on the configuration testdata/check/check.yaml
// with its contracts at contracts.
func runCheck(t *testing.T, contracts string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("CHECK_CONTRACTS", contracts)
	var out, errb bytes.Buffer
	code = Main(context.Background(), append([]string{"contracts", "check", "--config", checkConfig}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// TestContractsCheck_golden checks every case of testdata/check/cases, a new version of
// testdata/check/base/shop/v1/order.proto with one kind of change, against the base: the
// report (positions, kinds, sink plans) matches <case>.golden, and the exit code is 1 for a
// breaking change and 0 otherwise. Run with -update-check to rewrite the golden files.
func TestContractsCheck_golden(t *testing.T) {
	wantCode := map[string]int{
		"enum_value_removed":     1,
		"field_added":            0,
		"field_number_changed":   1,
		"field_removed":          1,
		"field_removed_reserved": 0,
		"field_type_changed":     1,
		"json_name_changed":      1,
		"message_moved":          1,
		"nested_type_changed":    1,
		"newly_required":         1,
	}
	dirs, err := filepath.Glob("testdata/check/cases/*")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, dir := range dirs {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		name := filepath.Base(dir)
		seen++
		t.Run(name, func(t *testing.T) {
			want, ok := wantCode[name]
			if !ok {
				t.Fatalf("case %s has no expected exit code", name)
			}
			code, stdout, stderr := runCheck(t, dir, "--against", "testdata/check/base")
			if code != want {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
			}
			golden := dir + ".golden"
			if *updateCheck {
				if err := os.WriteFile(golden, []byte(stdout), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			g, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if stdout != string(g) {
				t.Errorf("report differs from %s:\n--- got\n%s--- want\n%s", golden, stdout, g)
			}
		})
	}
	if seen != len(wantCode) {
		t.Fatalf("%d cases in testdata/check/cases, want %d", seen, len(wantCode))
	}
}

// TestContractsCheck_positions pins the position and kind of each case's breaking change,
// independently of the golden files.
func TestContractsCheck_positions(t *testing.T) {
	for name, want := range map[string]string{
		"field_type_changed":   "order.proto:10:3: FIELD_TYPE_CHANGED (breaks wire and JSON)",
		"field_number_changed": "order.proto:11:3: FIELD_NUMBER_CHANGED (breaks wire)",
		"field_removed":        "order.proto:8:1: FIELD_REMOVED (breaks wire and JSON)",
		"enum_value_removed":   "order.proto:17:3: ENUM_VALUE_REMOVED (breaks wire and JSON)",
		"message_moved":        "order.proto:13:1: MESSAGE_INDEX_CHANGED (breaks wire)",
		"json_name_changed":    "order.proto:14:3: FIELD_JSON_NAME_CHANGED (breaks JSON)",
		"newly_required":       "order.proto:13:3: FIELD_NEWLY_REQUIRED (breaks wire and JSON)",
		"nested_type_changed":  "order.proto:27:3: FIELD_TYPE_CHANGED (breaks wire and JSON)",
	} {
		t.Run(name, func(t *testing.T) {
			_, stdout, _ := runCheck(t, "testdata/check/cases/"+name, "--against", "testdata/check/base")
			if !strings.Contains(stdout, "testdata/check/cases/"+name+"/shop/v1/"+want) {
				t.Fatalf("report lacks %q:\n%s", want, stdout)
			}
		})
	}
}

// TestContractsCheck_sink_plans checks the offline sink plans: an added field becomes an
// ADD COLUMN for ClickHouse and BigQuery, a type change makes both refuse to start.
func TestContractsCheck_sink_plans(t *testing.T) {
	_, stdout, _ := runCheck(t, "testdata/check/cases/field_added", "--against", "testdata/check/base")
	for _, want := range []string{
		"ClickHouse 25.8.0 (assumed, not connected)",
		"ALTER TABLE `default`.`shop_v1_order`\n        ADD COLUMN IF NOT EXISTS `coupon` String;",
		"ALTER TABLE `p.d.shop_v1_order` ADD COLUMN `coupon` STRING;",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, stdout)
		}
	}
	_, stdout, _ = runCheck(t, "testdata/check/cases/field_type_changed", "--against", "testdata/check/base")
	if n := strings.Count(stdout, "would refuse to start: "); n != 2 {
		t.Errorf("%d sinks would refuse to start, want 2 (clickhouse, bigquery):\n%s", n, stdout)
	}
}

func TestContractsCheck_github_format(t *testing.T) {
	code, stdout, _ := runCheck(t, "testdata/check/cases/field_type_changed", "--against", "testdata/check/base", "--format", "github")
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	for _, want := range []string{
		"::group::message shop.v1.Order:",
		"::error file=testdata/check/cases/field_type_changed/shop/v1/order.proto,line=10,col=3,title=contract FIELD_TYPE_CHANGED::FIELD_TYPE_CHANGED (breaks wire and JSON): field amount_cents changed type from int64 to string\n",
		"::error file=testdata/check/cases/field_type_changed/shop/v1/order.proto,line=10,col=3,title=sink would refuse to start::pipeline \"orders\" sink \"ch\" would refuse to start: table `default`.`shop_v1_order` does not fit contract shop.v1.Order:%0A",
		"::endgroup::\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	_, stdout, _ = runCheck(t, "testdata/check/cases/field_added", "--against", "testdata/check/base", "--format", "github")
	if !strings.Contains(stdout, "::notice file=testdata/check/cases/field_added/shop/v1/order.proto,line=15,col=3,") || strings.Contains(stdout, "::error") {
		t.Errorf("a compatible change is not a notice:\n%s", stdout)
	}
}

func TestContractsCheck_usage_and_load_errors(t *testing.T) {
	for name, tc := range map[string]struct {
		contracts string
		args      []string
		stderr    string
	}{
		"no against":     {"testdata/check/base", nil, "--config and --against are required"},
		"bad format":     {"testdata/check/base", []string{"--against", "testdata/check/base", "--format", "xml"}, "--format must be text or github"},
		"unknown ref":    {"testdata/check/base", []string{"--against", "no-such-rev-or-dir"}, "not a directory, a file, nor a git revision"},
		"broken against": {"testdata/check/base", []string{"--against", "testdata/check/check.yaml"}, "load the contracts of testdata/check/check.yaml"},
		"broken config":  {"testdata/check/nowhere", []string{"--against", "testdata/check/base"}, "testdata/check/nowhere"},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCheck(t, tc.contracts, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit code %d, stderr %q; want 2 and %q", code, stderr, tc.stderr)
			}
		})
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"contracts", "nope"}, &out, &errb); code != 2 {
		t.Fatalf("unknown subcommand: exit code %d, want 2", code)
	}
}

// TestContractsCheck_git_revision commits the base contracts to a new git repository,
// changes a field's type in the work tree and checks against HEAD, then against the
// commit of the change.
func TestContractsCheck_git_revision(t *testing.T) {
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	contracts := filepath.Join(repo, "proto")
	if err := os.CopyFS(contracts, os.DirFS("testdata/check/base")); err != nil {
		t.Fatal(err)
	}
	git("init", "-q", "-b", "main")
	git("add", ".")
	git("commit", "-q", "-m", "base")
	changed, err := os.ReadFile("testdata/check/cases/field_type_changed/shop/v1/order.proto")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(contracts, "shop/v1/order.proto"), changed, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCheck(t, contracts, "--against", "main")
	if code != 1 || !strings.Contains(stdout, filepath.ToSlash(contracts)+"/shop/v1/order.proto:10:3: FIELD_TYPE_CHANGED") {
		t.Fatalf("against main: exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	git("commit", "-q", "-am", "change")
	code, stdout, stderr = runCheck(t, contracts, "--against", "HEAD")
	if code != 0 || !strings.Contains(stdout, "contracts are unchanged against HEAD") {
		t.Fatalf("against HEAD: exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	code, _, _ = runCheck(t, contracts, "--against", "HEAD~1")
	if code != 1 {
		t.Fatalf("against HEAD~1: exit code %d, want 1", code)
	}
}

// TestContractsCheck_buf_image builds the base contracts into an image with the real buf CLI
// (installed by .ci/setup) and checks a changed version against it; buf breaking agrees
// that the change breaks.
func TestContractsCheck_buf_image(t *testing.T) {
	buf, err := buftool.Path()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/check/base")); err != nil {
		t.Fatal(err)
	}
	validate, err := os.ReadFile("../../contracts/buf/validate/validate.proto")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "buf/validate"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "buf/validate/validate.proto"), validate, 0o644); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(t.TempDir(), "image.binpb")
	cmd := exec.Command(buf, "build", "-o", image)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("buf build: %v\n%s", err, out)
	}
	code, stdout, stderr := runCheck(t, "testdata/check/cases/field_type_changed", "--against", image)
	if code != 1 || !strings.Contains(stdout, "order.proto:10:3: FIELD_TYPE_CHANGED") {
		t.Fatalf("against the image: exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCheck(t, "testdata/check/base", "--against", image)
	if code != 0 {
		t.Fatalf("base against its own image: exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// The image as the new side: positions come from the image's source info.
	t.Setenv("CHECK_CONTRACTS", image)
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"contracts", "check", "--config", checkConfig, "--against", "testdata/check/cases/field_type_changed"}, &out, &errb); code != 1 ||
		!strings.Contains(out.String(), "shop/v1/order.proto:10:3: FIELD_TYPE_CHANGED") {
		t.Fatalf("image against a directory: exit code %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	// buf breaking agrees.
	cmd = exec.Command(buf, "breaking", "--against", image)
	cmd.Dir = filepath.Join(dir)
	if err := os.WriteFile(filepath.Join(dir, "shop/v1/order.proto"), []byte(mustRead(t, "testdata/check/cases/field_type_changed/shop/v1/order.proto")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "order.proto:10:3") {
		t.Fatalf("buf breaking did not report the type change at order.proto:10:3: %v\n%s", err, out)
	}
}
