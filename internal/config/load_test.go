package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/suggest"

	. "github.com/switchyard-dev/switchyard/internal/config"
	_ "github.com/switchyard-dev/switchyard/sinks/all"
	"github.com/switchyard-dev/switchyard/sinks/clickhouse"
	"github.com/switchyard-dev/switchyard/sinks/kafka"
)

// parseWith loads one in-memory file named test.yaml with env as the environment.
func parseWith(yamlText string, env map[string]string) (*Config, error) {
	return ParseWithEnv("test.yaml", []byte(yamlText), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
}

func mustParse(t *testing.T, yamlText string, env map[string]string) *Config {
	t.Helper()
	cfg, err := parseWith(yamlText, env)
	if err != nil {
		t.Fatalf("load failed:\n%v", err)
	}
	return cfg
}

func TestLoad_defaults(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		got  func(*Config) any
		want any
	}{
		{
			name: "global sections that are not written take their defaults",
			yaml: `kafka: {brokers: [localhost:9092]}`,
			got: func(c *Config) any {
				return []any{c.Kafka.ClientID, c.Contracts.Path, c.Admin.Address, c.Logging.Level, c.Logging.Format, c.Kafka.TLS.Enabled}
			},
			want: []any{"switchyard", "contracts", "127.0.0.1:9464", "info", "auto", false},
		},
		{
			name: "a written key beats its default, the others in the section keep theirs",
			yaml: `
kafka: {brokers: [localhost:9092]}
logging: {level: debug}
admin: {address: ""}`,
			got:  func(c *Config) any { return []any{c.Logging.Level, c.Logging.Format, c.Admin.Address} },
			want: []any{"debug", "auto", ""},
		},
		{
			name: "a null value takes the default",
			yaml: `
kafka: {brokers: [localhost:9092], client_id: ~}
logging:
  level:`,
			got:  func(c *Config) any { return []any{c.Kafka.ClientID, c.Logging.Level} },
			want: []any{"switchyard", "info"},
		},
		{
			name: "defaults inside list elements and present pointer sections",
			yaml: `
kafka: {brokers: [localhost:9092]}
pipelines:
  - name: orders
    owner: {team: commerce, contact: "#commerce"}
    source: {topics: [orders]}
    contract: {message: orders.v1.Order}
    sinks:
      - name: out
        batch: {max_rows: 10}
        kafka: {topic: orders.out}
      - name: olap
        clickhouse: {addresses: ["localhost:9000"]}
    routes:
      - sink: out
    dead_letter: {topic: orders.dlq}`,
			got: func(c *Config) any {
				p := c.Pipelines[0]
				return []any{
					p.Source.Start, p.Source.MaxInFlight, p.Source.MaxBatch, p.Source.DrainTimeout, p.Source.FetchMaxBytes,
					p.Contract.Encoding,
					p.Sinks[0].Batch, p.Sinks[0].Retry, p.Sinks[0].MaxInFlight,
					p.Sinks[0].Kind, *p.Sinks[0].Options.(*kafka.Config),
					p.Sinks[1].Kind, p.Sinks[1].Options.(*clickhouse.Config).Database, p.Sinks[1].Options.(*clickhouse.Config).Username, p.Sinks[1].Batch.MaxRows,
				}
			},
			want: []any{
				"earliest", 3500, 1000, 30 * time.Second, Bytes(50 << 20),
				"confluent",
				Batch{MaxRows: 10, MaxBytes: 4 << 20, Interval: 200 * time.Millisecond},
				Retry{MaxAttempts: 0, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 30 * time.Second}, 4,
				"kafka", kafka.Config{Topic: "orders.out", Key: "source", Encoding: "protobuf", Headers: true, Compression: "snappy", TransactionTimeout: 10 * time.Second},
				"clickhouse", "default", "default", 5000,
			},
		},
		{
			name: "the group id defaults to switchyard.<pipeline name>",
			yaml: `
kafka: {brokers: [localhost:9092]}
pipelines:
  - name: orders
    owner: {team: commerce, contact: "#commerce"}
    source: {topics: [orders]}
    contract: {message: orders.v1.Order}
    sinks: [{name: out, kafka: {topic: orders.out}}]
    routes: [{sink: out}]
    dead_letter: {topic: orders.dlq}
  - name: payments
    owner: {team: payments, contact: "#payments"}
    source: {topics: [payments], group: payments-v2}
    contract: {message: payments.v1.Payment}
    sinks: [{name: out, kafka: {topic: payments.out}}]
    routes: [{sink: out}]
    dead_letter: {topic: payments.dlq}`,
			got:  func(c *Config) any { return []string{c.Pipelines[0].Source.Group, c.Pipelines[1].Source.Group} },
			want: []string{"switchyard.orders", "payments-v2"},
		},
		{
			name: "sizes and durations in every accepted form",
			yaml: `
kafka: {brokers: [localhost:9092]}
pipelines:
  - name: orders
    owner: {team: commerce, contact: "#commerce"}
    source: {topics: [orders], fetch_max_bytes: 1048576, drain_timeout: 1m30s}
    contract: {message: orders.v1.Order}
    sinks:
      - {name: a, batch: {max_bytes: 512KB, interval: 0}, kafka: {topic: a}}
      - {name: b, batch: {max_bytes: "4 MiB", interval: 1.5s}, kafka: {topic: b}}
      - {name: c, batch: {max_bytes: 2GB}, kafka: {topic: c}}
    routes: [{sink: a}]
    dead_letter: {topic: orders.dlq}`,
			got: func(c *Config) any {
				p := c.Pipelines[0]
				return []any{p.Source.FetchMaxBytes, p.Source.DrainTimeout,
					p.Sinks[0].Batch.MaxBytes, p.Sinks[0].Batch.Interval,
					p.Sinks[1].Batch.MaxBytes, p.Sinks[1].Batch.Interval, p.Sinks[2].Batch.MaxBytes}
			},
			want: []any{Bytes(1 << 20), 90 * time.Second, Bytes(512000), time.Duration(0), Bytes(4 << 20), 1500 * time.Millisecond, Bytes(2e9)},
		},
		{
			name: "a merge key shares settings between sinks; explicit keys win",
			yaml: `
kafka: {brokers: [localhost:9092]}
pipelines:
  - name: orders
    owner: {team: commerce, contact: "#commerce"}
    source: {topics: [orders]}
    contract: {message: orders.v1.Order}
    sinks:
      - &fast {name: a, max_in_flight: 8, batch: {max_rows: 100}, kafka: {topic: a}}
      - {<<: *fast, name: b, kafka: {topic: b}}
    routes: [{sink: a}, {sink: b}]
    dead_letter: {topic: orders.dlq}`,
			got: func(c *Config) any {
				s := c.Pipelines[0].Sinks[1]
				return []any{s.Name, s.MaxInFlight, s.Batch.MaxRows, s.Options.(*kafka.Config).Topic}
			},
			want: []any{"b", 8, 100, "b"},
		},
		{
			name: "top-level x- keys hold anchors and are otherwise ignored",
			yaml: `
x-sink-defaults: &defaults
  max_in_flight: 2
  retry: {max_attempts: 3}
kafka: {brokers: [localhost:9092]}
pipelines:
  - name: orders
    owner: {team: commerce, contact: "#commerce"}
    source: {topics: [orders]}
    contract: {message: orders.v1.Order}
    sinks:
      - {<<: *defaults, name: a, kafka: {topic: a}}
    routes: [{sink: a}]
    dead_letter: {topic: orders.dlq}`,
			got: func(c *Config) any {
				s := c.Pipelines[0].Sinks[0]
				return []any{s.MaxInFlight, s.Retry.MaxAttempts, s.Retry.MaxBackoff}
			},
			want: []any{2, 3, 30 * time.Second},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, tc.yaml, nil)
			if got := tc.got(cfg); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestLoad_positions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.TrimLeft(text, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", `
kafka: {brokers: [localhost:9092]}
pipelines:
  - name: orders
    owner: {team: commerce, contact: "#commerce"}
    source: {topics: [orders]}
    contract:
      topics:
        orders: orders.v1.Order
    sinks:
      - name: out
        kafka: {topic: orders.out}
      - name: olap
        clickhouse: {addresses: ["localhost:9000"]}
    routes:
      - sink: out
      - sink: olap
        when: event.total > 10
    dead_letter: {topic: orders.dlq}
`)
	write("b.yml", `
logging: {level: debug}
pipelines:
  - name: payments
    owner: {team: payments, contact: "#payments"}
    source: {topics: [payments]}
    contract: {message: payments.v1.Payment}
    sinks:
      - name: out
        kafka: {topic: payments.out}
    routes:
      - sink: out
    dead_letter: {topic: payments.dlq}
`)
	write("notes.txt", "ignored")
	cfg, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yml")
	for path, want := range map[string]Position{
		"kafka":            {a, 1, 1},
		"kafka.brokers":    {a, 1, 9},
		"kafka.brokers[0]": {a, 1, 19},
		"logging.level":    {b, 1, 11},
		"pipelines":        {a, 2, 1},
		"pipelines[0]":     {a, 3, 5},
		"pipelines[0].contract.topics[\"orders\"]": {a, 8, 9},
		"pipelines[0].sinks[1]":                    {a, 12, 9},
		"pipelines[0].routes[1].when":              {a, 17, 9},
		"pipelines[1]":                             {b, 3, 5},
		"pipelines[1].dead_letter.topic":           {b, 12, 19},
	} {
		if got := cfg.Positions[path]; got != want {
			t.Errorf("Positions[%q] = %v, want %v", path, got, want)
		}
	}
	if got := cfg.Pos("pipelines[0].sinks[1].batch.max_rows"); got != (Position{a, 12, 9}) {
		t.Errorf("Pos of a defaulted key = %v, want its sink's position", got)
	}
	if got := cfg.Pos("pipelines[0].contract.topics[\"orders\"]"); got != (Position{a, 8, 9}) {
		t.Errorf("Pos of a map entry = %v", got)
	}
	if got := cfg.Pos("nothing.here"); got != (Position{}) {
		t.Errorf("Pos of an unknown path = %v, want zero", got)
	}
	var got []string
	for _, p := range cfg.Pipelines {
		got = append(got, p.Name+" "+p.File+" "+p.Path)
		for _, s := range p.Sinks {
			got = append(got, s.Name+" "+s.Path)
		}
	}
	want := []string{
		"orders " + a + " pipelines[0]", "out pipelines[0].sinks[0]", "olap pipelines[0].sinks[1]",
		"payments " + b + " pipelines[1]", "out pipelines[1].sinks[0]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pipelines and sinks:\ngot  %q\nwant %q", got, want)
	}
}

func TestLoad_io_errors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want an error wrapping os.ErrNotExist", err)
	}
	_, err = Load(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no *.yaml or *.yml files") {
		t.Errorf("empty directory: got %v", err)
	}
}

// TestExample loads the example shown in docs/config.md: it must have no problems.
func TestExample(t *testing.T) {
	t.Setenv("CLICKHOUSE_PASSWORD", "s3cret")
	cfg, err := Parse("example.yaml", Example())
	if err != nil {
		t.Fatalf("example has problems:\n%v", err)
	}
	if len(cfg.Pipelines) != 2 || cfg.Pipelines[0].Sinks[0].Options.(*clickhouse.Config).Password != "s3cret" {
		t.Errorf("example decoded unexpectedly: %+v", cfg.Pipelines)
	}
}

func TestErrors_format(t *testing.T) {
	errs := Errors{
		{Position{"b.yaml", 1, 1}, "third"},
		{Position{"a.yaml", 10, 2}, "second"},
		{Position{"a.yaml", 2, 7}, "first"},
		{Position{"a.yaml", 0, 0}, "file-level"},
		{Position{"a.yaml", 3, 0}, "no column"},
		{Position{}, "nowhere"},
	}
	want := "nowhere\na.yaml: file-level\na.yaml:2:7: first\na.yaml:3: no column\na.yaml:10:2: second\nb.yaml:1:1: third"
	if got := errs.Error(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if errs[0].Msg != "third" {
		t.Error("Error() reordered the receiver")
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"max_rows", "max_bytes", "interval", "name", "sinks", "topic"}
	for word, want := range map[string]string{
		"max_row":    "max_rows",
		"max_bytse":  "max_bytes", // transposition
		"Interval":   "interval",
		"naem":       "name",
		"sink":       "sinks",
		"topics":     "topic",
		"batch_sise": "",
		"x":          "",
		"wholly_new": "",
	} {
		if got := suggest.Closest(word, keys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", word, got, want)
		}
	}
}

// TestSpec checks the declarations themselves: every key is documented, and every default
// is an allowed value.
func TestSpec(t *testing.T) {
	seen := map[*StructSpec]bool{}
	var walk func(s *StructSpec)
	walk = func(s *StructSpec) {
		if seen[s] {
			return
		}
		seen[s] = true
		for _, f := range s.Fields {
			if f.Doc == "" {
				t.Errorf("%s.%s has no doc tag", s.Type.Name(), f.GoName)
			}
			if f.Enum != nil && f.Default != "" && !slices.Contains(f.Enum, f.Default) {
				t.Errorf("%s.%s: default %q is not in enum %q", s.Type.Name(), f.GoName, f.Default, f.Enum)
			}
			if f.Required && f.Default != "" {
				t.Errorf("%s.%s is required and has a default", s.Type.Name(), f.GoName)
			}
			if f.Struct != nil {
				walk(f.Struct)
			}
		}
	}
	walk(RootSpec())
}
