package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPlan_could_not_connect_is_exit_3 plans testdata/check/check.yaml, whose ClickHouse
// sink points at a closed port: plan exits 3 (could not connect), not 1 (would refuse).
func TestPlan_could_not_connect_is_exit_3(t *testing.T) {
	t.Setenv("CHECK_CONTRACTS", "testdata/check/base")
	start := time.Now()
	code, stdout, stderr := runMain("plan", "--config", checkConfig, "--log-level", "error")
	if code != planUnreachable {
		t.Fatalf("exit code %d, want %d (%s)\nstdout:\n%s\nstderr:\n%s", code, planUnreachable, time.Since(start), stdout, stderr)
	}
	if !strings.Contains(stderr, `pipeline "orders" sink "ch" could not be reached: connect to clickhouse 127.0.0.1:1`) {
		t.Fatalf("stderr does not say the sink could not be reached:\n%s", stderr)
	}
	if strings.Contains(stderr, "would refuse") {
		t.Fatalf("an unreachable sink is reported as refusing:\n%s", stderr)
	}
}

// TestValidate_warns_about_the_legacy_options_file: a contract that imports the deprecated
// switchyard/options.proto (which its directory lacks) still compiles, with a warning, and
// its (switchyard.field).pii = HASH mark applies: the configuration, which sets no hash key,
// is rejected for it.
func TestValidate_warns_about_the_legacy_options_file(t *testing.T) {
	dir := t.TempDir()
	src := strings.Replace(mustRead(t, "testdata/check/base/shop/v1/order.proto"),
		`import "buf/validate/validate.proto";`, `import "buf/validate/validate.proto";
import "switchyard/options.proto";`, 1)
	src = strings.Replace(src, "string customer_email = 6;", "string customer_email = 6 [(switchyard.field).pii = HASH];", 1)
	if err := os.MkdirAll(filepath.Join(dir, "shop/v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shop/v1/order.proto"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHECK_CONTRACTS", dir)
	code, _, stderr := runMain("validate", "--config", checkConfig)
	if code != 1 || !strings.Contains(stderr, "warning: shop/v1/order.proto imports the deprecated switchyard/options.proto") ||
		!strings.Contains(stderr, "shop.v1.Order.customer_email is marked pii = HASH and reaches the sink, but no hash key is configured") {
		t.Fatalf("validate: exit code %d, stderr:\n%s", code, stderr)
	}
}
