package config_test

import (
	"reflect"
	"strings"
	"testing"

	. "github.com/switchyard-dev/switchyard/internal/config"
	_ "github.com/switchyard-dev/switchyard/sinks/all"
	"github.com/switchyard-dev/switchyard/sinks/kafka"
)

func TestExpand(t *testing.T) {
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"HOST": "kafka-1", "PORT": "9093", "EMPTY": ""}[k]
		return v, ok
	}
	cases := []struct {
		in, want string
		problems []string
	}{
		{in: "no references", want: "no references"},
		{in: "${HOST}:${PORT}", want: "kafka-1:9093"},
		{in: "${MISSING:-localhost}:9092", want: "localhost:9092"},
		{in: "${HOST:-other}", want: "kafka-1"},
		{in: "${EMPTY:-fallback}", want: "fallback"},
		{in: "${EMPTY}", want: ""},
		{in: "${MISSING:-}", want: ""},
		{in: "${MISSING:-a:-b}", want: "a:-b"},
		{in: "$${HOST} costs $5 and $$", want: "${HOST} costs $5 and $$"},
		{in: "$$${HOST}", want: "$${HOST}"},
		{in: "${MISSING}", problems: []string{`environment variable "MISSING" is not set (write ${MISSING:-default} to give a default)`}},
		{in: "${A} ${B}", problems: []string{
			`environment variable "A" is not set (write ${A:-default} to give a default)`,
			`environment variable "B" is not set (write ${B:-default} to give a default)`,
		}},
		{in: "${HOST", problems: []string{`unterminated "${HOST": write "$${" for a literal "${"`}},
		{in: "${}", problems: []string{`invalid environment variable reference "${}"`}},
		{in: "${A-B}", problems: []string{`invalid environment variable reference "${A-B}"`}},
	}
	for _, tc := range cases {
		got, problems := Expand(tc.in, env)
		if !reflect.DeepEqual(problems, tc.problems) {
			t.Errorf("expand(%q) problems = %q, want %q", tc.in, problems, tc.problems)
			continue
		}
		if tc.problems == nil && got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLoad_interpolation(t *testing.T) {
	const pipeline = `
pipelines:
  - name: ${PIPELINE:-orders}
    owner: {team: commerce, contact: "#commerce"}
    source: {topics: ["${TOPIC_PREFIX:-dev}.orders"], max_batch: "${MAX_BATCH:-}"}
    contract: {message: orders.v1.Order}
    sinks:
      - name: out
        batch: {interval: "${INTERVAL:-1s}", max_bytes: "${MAX_BYTES:-1MiB}"}
        kafka: {topic: orders.out, headers: "${HEADERS:-false}"}
    routes: [{sink: out, when: "event.note == '$${literal}'"}]
    dead_letter: {topic: orders.dlq}
`
	cases := []struct {
		name string
		yaml string
		env  map[string]string
		got  func(*Config) any
		want any
		err  string
	}{
		{
			name: "defaults inside references",
			yaml: "kafka: {brokers: [\"${BROKER:-localhost:9092}\"]}" + pipeline,
			got: func(c *Config) any {
				p := c.Pipelines[0]
				return []any{c.Kafka.Brokers[0], p.Name, p.Source.Topics[0], p.Source.MaxBatch,
					p.Sinks[0].Batch.Interval.String(), p.Sinks[0].Batch.MaxBytes, p.Sinks[0].Options.(*kafka.Config).Headers, p.Routes[0].When}
			},
			want: []any{"localhost:9092", "orders", "dev.orders", 1000, "1s", Bytes(1 << 20), false, "event.note == '${literal}'"},
		},
		{
			name: "values from the environment are decoded as their field's type",
			yaml: "kafka: {brokers: [\"${BROKER}\"]}" + pipeline,
			env: map[string]string{"BROKER": "kafka:9093", "PIPELINE": "prod_orders", "TOPIC_PREFIX": "prod",
				"MAX_BATCH": "50", "INTERVAL": "250ms", "MAX_BYTES": "2097152", "HEADERS": "true"},
			got: func(c *Config) any {
				p := c.Pipelines[0]
				return []any{c.Kafka.Brokers[0], p.Name, p.Source.Topics[0], p.Source.MaxBatch,
					p.Sinks[0].Batch.Interval.String(), p.Sinks[0].Batch.MaxBytes, p.Sinks[0].Options.(*kafka.Config).Headers, p.Source.Group}
			},
			want: []any{"kafka:9093", "prod_orders", "prod.orders", 50, "250ms", Bytes(2 << 20), true, "switchyard.prod_orders"},
		},
		{
			name: "a secret from the environment",
			yaml: `
kafka:
  brokers: [localhost:9092]
  sasl: {mechanism: PLAIN, username: "${KAFKA_USER}", password: "${KAFKA_PASSWORD}"}`,
			env:  map[string]string{"KAFKA_USER": "svc", "KAFKA_PASSWORD": "p4ss"},
			got:  func(c *Config) any { return []string{c.Kafka.SASL.Username, c.Kafka.SASL.Password} },
			want: []string{"svc", "p4ss"},
		},
		{
			name: "keys are not interpolated",
			yaml: "kafka:\n  brokers: [localhost:9092]\n  ${KEY}: x",
			env:  map[string]string{"KEY": "client_id"},
			err:  `test.yaml:3:3: unknown field "${KEY}"`,
		},
		{
			name: "an environment value of the wrong type is reported at the reference",
			yaml: "kafka: {brokers: [localhost:9092]}" + pipeline,
			env:  map[string]string{"MAX_BATCH": "lots"},
			err:  `test.yaml:5:66: invalid max_batch: expected an integer, got "lots"`,
		},
		{
			name: "a value that becomes empty takes the default",
			yaml: `
kafka: {brokers: [localhost:9092], client_id: "${CLIENT_ID}"}
logging: {level: "${LEVEL:-}"}`,
			env:  map[string]string{"CLIENT_ID": ""},
			got:  func(c *Config) any { return []string{c.Kafka.ClientID, c.Logging.Level} },
			want: []string{"switchyard", "info"},
		},
		{
			name: "a required value that becomes empty is reported",
			yaml: `
kafka: {brokers: ["${BROKER}"]}
pipelines:
  - name: "${NAME}"
    owner: {team: commerce, contact: "#commerce"}
    source: {topics: [orders]}
    contract: {message: orders.v1.Order}
    sinks: [{name: out, kafka: {topic: orders.out}}]
    routes: [{sink: out}]
    dead_letter: {topic: orders.dlq}`,
			env: map[string]string{"BROKER": "", "NAME": ""},
			err: "test.yaml:2:19: invalid brokers[0]: must not be empty\n" +
				`test.yaml:4:11: required field "name" is empty`,
		},
		{
			name: "an unset variable is reported once, with nothing else",
			yaml: "kafka: {brokers: [\"${BROKER}\"]}",
			err:  `test.yaml:1:19: environment variable "BROKER" is not set (write ${BROKER:-default} to give a default)`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseWith(tc.yaml, tc.env)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error:\n%v\nwant\n%s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("load failed:\n%v", err)
			}
			if got := tc.got(cfg); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
	if strings.Contains(pipeline, "\t") {
		t.Fatal("tabs in YAML")
	}
}
