// Package deploy holds the Kubernetes manifest of docs/scaling.md and its test.
package deploy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/switchyard-dev/switchyard/internal/app"
)

const manifest = "kubernetes/switchyard.yaml"

// kubernetesVersions are the releases the manifest must validate against: the oldest one
// still commonly run and the newest the validator knows.
var kubernetesVersions = []string{"1.29.0", "1.37.0"}

// kubernetesValidate is the kubernetes-validate that .ci/setup installs (PyPI; it bundles the
// Kubernetes JSON schemas of every release, so it needs no network).
func kubernetesValidate(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SWITCHYARD_CACHE")
	if dir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(d, "switchyard")
	}
	bin := filepath.Join(dir, "kubernetes-validate", "bin", "kubernetes-validate")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("kubernetes-validate is not installed at %s: run bash .ci/setup (%v)", bin, err)
	}
	return bin
}

func validate(t *testing.T, bin, version, path string) (string, error) {
	t.Helper()
	out, err := exec.Command(bin, "--strict", "--quiet", "--kubernetes-version", version, path).CombinedOutput()
	return string(out), err
}

// TestManifest_validates_against_the_kubernetes_schemas checks every resource of the manifest
// strictly (unknown fields are errors) against the schemas of each Kubernetes version, and
// that the validator does catch a misspelt field.
func TestManifest_validates_against_the_kubernetes_schemas(t *testing.T) {
	bin := kubernetesValidate(t)
	for _, v := range kubernetesVersions {
		if out, err := validate(t, bin, v, manifest); err != nil {
			t.Errorf("kubernetes %s: %s does not validate: %v\n%s", v, manifest, err, out)
		}
	}
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, bytes.Replace(b, []byte("  replicas: 3"), []byte("  replica: 3"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := validate(t, bin, kubernetesVersions[len(kubernetesVersions)-1], bad)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(out, "'replica' was unexpected") {
		t.Fatalf("the validator accepted a StatefulSet with a misspelt field: %v\n%s", err, out)
	}
}

// resources decodes the manifest's documents by kind.
func resources(t *testing.T) map[string]map[string]any {
	t.Helper()
	f, err := os.Open(manifest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]any{}
	dec := yaml.NewDecoder(f)
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", manifest, err)
		}
		out[doc["kind"].(string)] = doc
	}
}

// get walks a decoded YAML document by map keys and list indexes.
func get(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, k := range path {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%s: no map at %v", manifest, path)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%s: no list element at %v", manifest, path)
			}
			v = l[k]
		}
	}
	return v
}

// TestManifest_config_passes_switchyard_validate runs `switchyard validate` on the
// configuration the ConfigMap holds, at the path the container's args name, with exactly the
// environment the container gets (values from the manifest; the pod name, the secret and the
// resource limits filled in as Kubernetes would), so a ${VAR} the pod does not set fails it.
// Only the contracts directory is pointed at the repository's, as the image holds them.
func TestManifest_config_passes_switchyard_validate(t *testing.T) {
	res := resources(t)
	for _, kind := range []string{"ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"} {
		if res[kind] == nil {
			t.Fatalf("%s has no %s", manifest, kind)
		}
	}
	sts := res["StatefulSet"]
	pod := get(t, sts, "spec", "template", "spec")
	ctr := get(t, pod, "containers", 0)
	args := get(t, ctr, "args").([]any)
	if len(args) != 3 || args[0] != "run" || args[1] != "--config" {
		t.Fatalf("container args %v, want run --config <file>", args)
	}
	mount := get(t, ctr, "volumeMounts", 0, "mountPath").(string)
	if vol := get(t, pod, "volumes", 0, "configMap", "name"); vol != get(t, res["ConfigMap"], "metadata", "name") {
		t.Fatalf("the config volume mounts ConfigMap %v, not the manifest's", vol)
	}
	key := strings.TrimPrefix(args[2].(string), mount+"/")
	cfg, ok := get(t, res["ConfigMap"], "data", key).(string)
	if !ok {
		t.Fatalf("the container reads %s, but the ConfigMap mounted at %s has no key %q", args[2], mount, key)
	}
	if get(t, sts, "spec", "serviceName") != get(t, res["Service"], "metadata", "name") {
		t.Fatal("the StatefulSet's serviceName is not the manifest's headless Service")
	}

	// Only what the container sets: every variable the configuration names starts unset.
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(cfg, -1) {
		t.Setenv(m[1], "")
		os.Unsetenv(m[1])
	}
	for _, e := range get(t, ctr, "env").([]any) {
		e := e.(map[string]any)
		name := e["name"].(string)
		from, _ := e["valueFrom"].(map[string]any)
		switch {
		case e["value"] != nil:
			t.Setenv(name, e["value"].(string))
		case from["fieldRef"] != nil && get(t, from, "fieldRef", "fieldPath") == "metadata.name":
			t.Setenv(name, get(t, sts, "metadata", "name").(string)+"-0")
		case from["secretKeyRef"] != nil:
			t.Setenv(name, "a-test-key-from-the-secret")
		case from["resourceFieldRef"] != nil:
			t.Setenv(name, "1")
		default:
			t.Fatalf("env %s: unhandled source %v", name, e)
		}
	}
	contracts, err := filepath.Abs("../contracts")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SWITCHYARD_CONTRACTS", contracts)
	path := filepath.Join(t.TempDir(), key)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := app.Main(context.Background(), []string{"validate", "--config", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("switchyard validate on the ConfigMap's %s exited %d:\n%s%s", key, code, stdout.String(), stderr.String())
	}
	// Static membership comes from the pod name.
	if !strings.Contains(cfg, "instance_id: ${POD_NAME}") {
		t.Fatalf("the configuration does not take source.instance_id from ${POD_NAME}:\n%s", cfg)
	}
	t.Logf("switchyard validate: %s", strings.TrimSpace(stdout.String()))
}
