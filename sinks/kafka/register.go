package kafka

import (
	"context"
	"fmt"

	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/registry"
)

func init() {
	registry.Register(registry.Kind[Config]{
		Name:       "kafka",
		Doc:        "Write to Kafka topics.",
		Topic:      func(c *Config) string { return c.Topic },
		Schemaless: true,
		Lint:       lint,
		Check:      checkSchemas,
		New: func(_ context.Context, c *Config, deps registry.Deps) (sinks.Sink, error) {
			return New(*c, Options{Kafka: deps.KafkaOpts, Producer: deps.Producer, Input: deps.Input}, deps.Deps)
		},
	})
}

// lint checks what the options need from the rest of the pipeline, before contracts are read.
func lint(c *Config, p *config.Pipeline) []string {
	if c.Encoding == "confluent" && p.Contract.Encoding != "confluent" && c.SchemaID == 0 {
		return []string{fmt.Sprintf("kafka encoding confluent needs schema_id when the input encoding is %s", p.Contract.Encoding)}
	}
	return nil
}

// checkSchemas checks the options against the contract and against what each route's
// transforms make of it.
func checkSchemas(c *Config, s registry.Schemas) []string {
	if s.Contract == nil {
		return nil
	}
	problems := ValidateConfig(*c, s.Input, s.Contract)
	fit := len(problems) == 0 // the options fit the contract itself
	transformed := false
	for _, r := range s.Routes {
		transformed = transformed || !r.Identity
		if fit && r.Out != r.In {
			for _, msg := range ValidateConfig(*c, s.Input, r.Out) {
				problems = append(problems, fmt.Sprintf("route %q, after its transforms: %s", r.Route, msg))
			}
		}
	}
	if transformed && c.Encoding == "confluent" && c.SchemaID <= 0 {
		problems = append(problems, "schema_id is required: transforms change the events' shape, so the input's schema id does not describe them")
	}
	return problems
}
