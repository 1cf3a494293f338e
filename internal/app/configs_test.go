package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// repoRoot is the repository root, where configs/ and contracts/ live.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// TestConfigs_validate runs `switchyard validate` on every sample configuration in configs/:
// each top-level YAML file on its own, and each subdirectory as one configuration (as
// docker-compose.yml runs configs/compose). They must stay valid as the config schema and the
// contracts change.
func TestConfigs_validate(t *testing.T) {
	root := repoRoot(t)
	t.Chdir(root) // configs name contracts relative to the repository root
	// configs/compose reads the contracts from where the image puts them.
	t.Setenv("SWITCHYARD_CONTRACTS", filepath.Join(root, "contracts"))
	// Secrets that the sample configurations read from the environment or a file.
	t.Setenv("SWITCHYARD_PII_HASH_KEY", "test-key")
	keyFile := filepath.Join(t.TempDir(), "pii_hash_key")
	if err := os.WriteFile(keyFile, []byte("test-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SWITCHYARD_PII_HASH_KEY_FILE", keyFile)
	entries, err := os.ReadDir("configs")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) == ".yaml" || filepath.Ext(e.Name()) == ".yml" {
			paths = append(paths, filepath.Join("configs", e.Name()))
		}
	}
	for _, want := range []string{"configs/dev.yaml", "configs/clickhouse.yaml", "configs/compose"} {
		if _, err := os.Stat(want); err != nil {
			t.Errorf("%s is missing: %v", want, err)
		}
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Main(context.Background(), []string{"validate", "--config", path}, &stdout, &stderr); code != 0 {
				t.Fatalf("switchyard validate --config %s exited %d:\n%s", path, code, stderr.String())
			}
			if stdout.Len() == 0 {
				t.Fatalf("switchyard validate --config %s printed no pipelines", path)
			}
		})
	}
}

// TestReadme_config_examples validates every complete configuration (a YAML block with
// top-level kafka: and pipelines:) in README.md, so the documentation cannot drift from the
// schema and the contracts.
func TestReadme_config_examples(t *testing.T) {
	root := repoRoot(t)
	t.Chdir(root)
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The variables the README says the example needs; nothing else (no secret files).
	t.Setenv("KAFKA_PASSWORD", "secret")
	t.Setenv("SWITCHYARD_PII_HASH_KEY", "k")
	blocks := 0
	for i, block := range strings.Split(string(readme), "```yaml\n")[1:] {
		body, _, _ := strings.Cut(block, "```")
		if !strings.HasPrefix(body, "kafka:") || !strings.Contains(body, "\npipelines:") {
			continue
		}
		blocks++
		path := filepath.Join(t.TempDir(), fmt.Sprintf("readme-%d.yaml", i))
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), []string{"validate", "--config", path}, &stdout, &stderr); code != 0 {
			t.Errorf("README example %d does not validate:\n%s\n%s", i, body, stderr.String())
		}
	}
	if blocks == 0 {
		t.Fatal("README.md has no complete configuration example")
	}
}
