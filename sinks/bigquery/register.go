package bigquery

import (
	"context"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/registry"
	"github.com/switchyard-dev/switchyard/sinks/table"
)

func init() {
	registry.Register(registry.Kind[Config]{
		Name: "bigquery",
		Doc:  "Write to BigQuery tables with the Storage Write API.",
		Table: func(c *Config, contract protoreflect.MessageDescriptor) {
			if c.Table == "" {
				c.Table = table.Name(contract.FullName())
			}
		},
		Check: func(c *Config, s registry.Schemas) []string {
			if s.Schema == nil {
				return nil
			}
			return ValidateConfig(*c, s.Schema)
		},
		New: func(_ context.Context, c *Config, deps registry.Deps) (sinks.Sink, error) {
			return New(*c, Options{Input: deps.Input}, deps.Deps)
		},
	})
}
