package config_test

import (
	"reflect"
	"strings"
	"testing"

	. "github.com/switchyard-dev/switchyard/internal/config"
	_ "github.com/switchyard-dev/switchyard/sinks/all"
	"github.com/switchyard-dev/switchyard/sinks/clickhouse"
)

func TestConfig_Redacted(t *testing.T) {
	cases := []struct {
		name    string
		yaml    string
		env     map[string]string
		hidden  []string // must not appear anywhere in the output
		present []string // lines (trimmed) that must appear in the output
		absent  []string // lines (trimmed) that must not appear
	}{
		{
			name: "secrets are redacted, other values and defaults are shown",
			yaml: `
kafka:
  brokers: [localhost:9092]
  sasl: {mechanism: PLAIN, username: svc, password: hunter2}
contracts:
  schema_registry: {url: "http://registry:8081", username: sr, password: sr-pass}
pipelines:
  - name: orders
    owner: {team: commerce, contact: "#commerce"}
    source: {topics: [orders]}
    contract: {message: orders.v1.Order, schema_ids: [7, 8]}
    sinks:
      - name: olap
        clickhouse: {addresses: ["localhost:9000"], password: "ch-pass"}
    routes: [{sink: olap}]
    dead_letter: {topic: orders.dlq}`,
			hidden: []string{"hunter2", "ch-pass", "sr-pass"},
			present: []string{
				"password: '[redacted]'", "username: svc", "client_id: switchyard", "schema_ids: [7, 8]", "username: sr",
				"group: switchyard.orders", "max_bytes: 4MiB", "interval: 200ms", "fetch_max_bytes: 50MiB",
				"database: default", "max_in_flight: 4",
			},
			absent: []string{"kafka: {}", "bigquery:"},
		},
		{
			name: "secrets from the environment are redacted too",
			yaml: `
kafka:
  brokers: [localhost:9092]
  sasl: {mechanism: PLAIN, username: svc, password: "${KAFKA_PASSWORD}"}`,
			env:     map[string]string{"KAFKA_PASSWORD": "from-env-secret"},
			hidden:  []string{"from-env-secret"},
			present: []string{"password: '[redacted]'"},
		},
		{
			name: "empty secrets stay empty, password_file is shown",
			yaml: `
kafka:
  brokers: [localhost:9092]
  sasl: {mechanism: PLAIN, username: svc, password_file: /run/secrets/kafka}`,
			present: []string{`password: ""`, "password_file: /run/secrets/kafka"},
			absent:  []string{"password: '[redacted]'"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, tc.yaml, tc.env)
			out, err := cfg.Redacted()
			if err != nil {
				t.Fatal(err)
			}
			text := string(out)
			lines := map[string]bool{}
			for _, l := range strings.Split(text, "\n") {
				lines[strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "- "))] = true
			}
			for _, h := range tc.hidden {
				if strings.Contains(text, h) {
					t.Errorf("output contains secret %q:\n%s", h, text)
				}
			}
			for _, p := range tc.present {
				if !lines[p] {
					t.Errorf("output lacks line %q:\n%s", p, text)
				}
			}
			for _, a := range tc.absent {
				if lines[a] {
					t.Errorf("output has line %q:\n%s", a, text)
				}
			}
		})
	}
}

// TestConfig_Redacted_round_trip loads the rendered example back: the effective configuration
// must be the same, except for the redacted secret.
func TestConfig_Redacted_round_trip(t *testing.T) {
	cfg := mustParse(t, string(Example()), map[string]string{"CLICKHOUSE_PASSWORD": "s3cret"})
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	again, err := parseWith(string(out), nil)
	if err != nil {
		t.Fatalf("redacted output does not load:\n%v\n%s", err, out)
	}
	if got := again.Pipelines[0].Sinks[0].Options.(*clickhouse.Config).Password; got != RedactedText {
		t.Errorf("password after round trip = %q, want %q", got, RedactedText)
	}
	again.Pipelines[0].Sinks[0].Options.(*clickhouse.Config).Password = "s3cret"
	strip := func(c *Config) {
		c.Positions, c.ValuePositions = nil, nil
		for i := range c.Pipelines {
			c.Pipelines[i].File = ""
		}
	}
	strip(cfg)
	strip(again)
	if !reflect.DeepEqual(cfg, again) {
		t.Errorf("round trip changed the configuration:\nbefore %+v\nafter  %+v", cfg, again)
	}
}
