package app

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestStartDevBigQuery_says_plainly_when_it_is_not_there(t *testing.T) {
	t.Setenv("SWITCHYARD_BQEMULATOR_VENV", t.TempDir())
	t.Setenv(devBQEndpointEnv, "")
	t.Setenv(devBQGRPCEnv, "")
	var out bytes.Buffer
	d := startDevBigQuery(context.Background(), true, &out)
	defer d.stop()
	if d.enabled() {
		t.Fatal("enabled without an emulator")
	}
	for _, want := range []string{"bqemulator is not installed", "BigQuery lands are skipped", ".ci/setup"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestDev_lands_orders_in_bqemulator runs dev with the emulator .ci/setup installs: the
// sample orders land in it, flattened, and dev prints the SQL to run and the row count.
func TestDev_lands_orders_in_bqemulator(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	t.Setenv("SWITCHYARD_ADMIN", "127.0.0.1:0")
	t.Setenv(devBQEndpointEnv, "")
	t.Setenv(devBQGRPCEnv, "")
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := Main(ctx, []string{"dev", "--duration", "8s", "--rate", "1000", "--clickhouse=false",
		"--log-file", filepath.Join(t.TempDir(), "dev.log")}, &stdout, &stderr)
	out := stdout.String()
	if code != 0 {
		t.Fatalf("dev exited %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	for _, want := range []string{"bigquery: started bqemulator on http://127.0.0.1:", "/bigquery/v2/projects/switchyard-test/queries",
		"FROM `switchyard-test.dev.orders_v1_order_paid`"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`bigquery: switchyard-test\.dev\.orders_v1_order_paid holds [1-9][0-9]* rows`).MatchString(out) {
		t.Fatalf("no row count of the orders table after the drain:\n%s\nstderr:\n%s", out, stderr.String())
	}
}
