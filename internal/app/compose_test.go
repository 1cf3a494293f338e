package app

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml the tests check.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context string            `yaml:"context"`
		Args    map[string]string `yaml:"args"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Secrets     []string          `yaml:"secrets"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(mustAbs(t, "../.."), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// TestCompose_file: there is no Docker engine to run docker-compose.yml here, so its promises
// are checked on the parsed file: every published port on loopback only, a healthcheck for
// every server, a generator producing into the pipelines, and images stamped with the version.
func TestCompose_file(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"kafka", "clickhouse", "bigquery", "switchyard", "generator"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("docker-compose.yml has no service %q", name)
		}
	}
	for name, s := range c.Services {
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %q on every interface: want 127.0.0.1:HOST:CONTAINER", name, p)
			}
		}
		if name != "generator" && (s.Healthcheck == nil || len(s.Healthcheck.Test) == 0) {
			t.Errorf("service %s has no healthcheck", name)
		}
		for dep, d := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on unknown service %s", name, dep)
			}
			if d.Condition == "service_healthy" && c.Services[dep].Healthcheck == nil {
				t.Errorf("service %s waits for %s to be healthy, which has no healthcheck", name, dep)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := c.Secrets[sec]; !ok {
				t.Errorf("service %s uses undeclared secret %s", name, sec)
			}
		}
	}
	sy, gen := c.Services["switchyard"], c.Services["generator"]
	for name, s := range map[string]composeService{"switchyard": sy, "generator": gen} {
		if s.Build == nil || s.Build.Args["VERSION"] == "" || s.Build.Args["COMMIT"] == "" {
			t.Errorf("service %s does not build with the VERSION and COMMIT build args", name)
		}
	}
	// The Dockerfile turns the build args into the ldflags `make build` uses.
	df, err := os.ReadFile(filepath.Join(mustAbs(t, "../.."), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ARG VERSION", "ARG COMMIT", "internal/app.Version=${VERSION}", "internal/app.Commit=${COMMIT}"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if len(gen.Command) < 2 || gen.Command[0] != "produce" || gen.Command[1] != "--sample" {
		t.Errorf("generator runs %v, want switchyard produce --sample", gen.Command)
	}
	if i := slices.Index(gen.Command, "--config"); i < 0 || i+1 >= len(gen.Command) ||
		!slices.Contains(sy.Command, gen.Command[i+1]) {
		t.Errorf("generator %v does not produce for the configuration switchyard runs (%v)", gen.Command, sy.Command)
	}
	for k, v := range sy.Environment {
		if k != "SWITCHYARD_ADMIN" && gen.Environment[k] != v {
			t.Errorf("generator's %s = %q, switchyard's %q: it must load the same configuration", k, gen.Environment[k], v)
		}
	}
	if !strings.Contains(strings.Join(sy.Healthcheck.Test, " "), "switchyard status") {
		t.Errorf("switchyard's healthcheck %v does not ask the daemon", sy.Healthcheck.Test)
	}
}
