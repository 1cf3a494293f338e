package registry_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/registry"
)

// Two kinds that exist only in this test: one that takes route topics, one table sink with a
// secret and a TLS section. They show that a kind needs nothing outside its own package.
type queueConfig struct {
	Topic string `yaml:"topic" doc:"Default topic."`
	Mode  string `yaml:"mode" doc:"Mode." default:"fast" enum:"fast|safe"`
}

type tableConfig struct {
	Table    string     `yaml:"table" doc:"Table."`
	Password string     `yaml:"password" doc:"Password." secret:"true"`
	TLS      config.TLS `yaml:"tls" doc:"TLS."`
}

var errBuilt = errors.New("built")

func init() {
	registry.Register(registry.Kind[queueConfig]{
		Name:  "queue",
		Doc:   "Write to a test queue.",
		Topic: func(c *queueConfig) string { return c.Topic },
		Lint: func(c *queueConfig, p *config.Pipeline) []string {
			if c.Mode == "safe" && p.Contract.Encoding == "raw" {
				return []string{"mode safe needs confluent input"}
			}
			return nil
		},
		New: func(_ context.Context, c *queueConfig, _ registry.Deps) (sinks.Sink, error) {
			return nil, errors.Join(errBuilt, errors.New("queue "+c.Topic))
		},
	})
	registry.Register(registry.Kind[tableConfig]{
		Name: "table",
		Doc:  "Write to a test table.",
		Table: func(c *tableConfig, _ protoreflect.MessageDescriptor) {
			if c.Table == "" {
				c.Table = "derived"
			}
		},
		New: func(context.Context, *tableConfig, registry.Deps) (sinks.Sink, error) { return nil, errBuilt },
	})
}

const base = `
kafka: {brokers: [localhost:9092]}
pipelines:
  - name: p
    owner: {team: t, contact: c}
    source: {topics: [in]}
    contract: {message: a.B, encoding: raw}
    dead_letter: {topic: dlq}
`

func TestRegisteredKindsAreConfigured(t *testing.T) {
	if got := strings.Join(registry.Kinds(), ","); got != "queue,table" {
		t.Fatalf("Kinds() = %s", got)
	}
	cfg, err := config.Parse("ok.yaml", []byte(base+`    sinks:
      - {name: q, queue: {topic: out}}
      - {name: tb, table: {password: s3cret}}
    routes: [{sink: q, topic: other}, {sink: tb}]
`))
	if err != nil {
		t.Fatal(err)
	}
	q, tb := &cfg.Pipelines[0].Sinks[0], &cfg.Pipelines[0].Sinks[1]
	if qc, ok := q.Options.(*queueConfig); q.Kind != "queue" || !ok || qc.Topic != "out" || qc.Mode != "fast" {
		t.Errorf("queue sink decoded as %q %+v", q.Kind, q.Options)
	}
	if topic, ok := registry.TakesTopic(q); !ok || topic != "out" {
		t.Errorf("TakesTopic(queue) = %q, %v", topic, ok)
	}
	if _, ok := registry.TakesTopic(tb); ok || !registry.IsTable(tb) || registry.IsTable(q) {
		t.Error("capabilities of the table sink are wrong")
	}
	registry.DeriveTable(tb, nil)
	if got := tb.Options.(*tableConfig).Table; got != "derived" {
		t.Errorf("derived table = %q", got)
	}
	if _, err := registry.New(context.Background(), q, registry.Deps{}); !errors.Is(err, errBuilt) || !strings.Contains(err.Error(), "queue out") {
		t.Errorf("New(queue) = %v, want the kind's constructor called with its options", err)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"queue:\n", "topic: out", "table:\n", "password: '[redacted]'"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Redacted() lacks %q:\n%s", want, out)
		}
	}
	md := string(config.Markdown())
	for _, want := range []string{"### `pipelines[].sinks[].queue`", "| `queue` | object, see", "Write to a test table."} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	if schema := string(config.JSONSchema()); !strings.Contains(schema, `"$ref": "#/$defs/registry_test.queueConfig"`) {
		t.Error("JSON Schema does not describe the queue kind")
	}
}

func TestRegisteredKindsAreChecked(t *testing.T) {
	_, err := config.Parse("bad.yaml", []byte(base+`    sinks:
      - {name: q, queue: {mode: safe}}
      - {name: tb, table: {tls: {ca_file: x}}}
      - {name: both, queue: {topic: x}, table: {}}
      - {name: neither}
    routes: [{sink: q}, {sink: tb, topic: nope}]
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`bad.yaml:10:19: pipeline "p": sink "q": mode safe needs confluent input`,
		`bad.yaml:11:28: pipelines[0].sinks[1].table.tls: TLS settings are given but enabled is false`,
		`pipeline "p": sink "both" must set exactly one of queue, table (it sets queue and table)`,
		`pipeline "p": sink "neither" must set exactly one of queue, table (it sets none)`,
		`pipeline "p": route 1 sends to queue sink "q", which has no topic; set topic on the route or the sink`,
		`pipeline "p": route 2 sets topic but sink "tb" is a table sink; only queue sinks take a topic`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
}

func TestUnknownKind(t *testing.T) {
	_, err := config.Parse("bad.yaml", []byte(base+`    sinks: [{name: s, tabel: {}}]
    routes: [{sink: s}]
`))
	if err == nil || !strings.Contains(err.Error(), `unknown field "tabel" (did you mean "table"?)`) {
		t.Errorf("got %v, want an unknown field with a suggestion", err)
	}
}
