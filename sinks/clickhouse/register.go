package clickhouse

import (
	"context"

	"google.golang.org/protobuf/reflect/protoreflect"

	"switchyard/sinks"
	"switchyard/sinks/registry"
)

func init() {
	registry.Register(registry.Kind[Config]{
		Name: "clickhouse",
		Doc:  "Write to ClickHouse tables.",
		Table: func(c *Config, contract protoreflect.MessageDescriptor) {
			if c.Table == "" {
				c.Table = TableName(string(contract.FullName()))
			}
		},
		New: func(_ context.Context, c *Config, deps registry.Deps) (sinks.Sink, error) {
			return New(c, deps.Deps)
		},
	})
}
