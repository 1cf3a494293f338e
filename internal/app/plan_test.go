package app

import (
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
