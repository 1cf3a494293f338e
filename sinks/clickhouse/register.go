package clickhouse

import (
	"context"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/registry"
	sinktable "github.com/switchyard-dev/switchyard/sinks/table"
)

func init() {
	registry.Register(registry.Kind[Config]{
		Name: "clickhouse",
		Doc:  "Write to ClickHouse tables.",
		Table: func(c *Config, contract protoreflect.MessageDescriptor) {
			if c.Table == "" {
				c.Table = sinktable.Name(contract.FullName())
			}
		},
		New: func(_ context.Context, c *Config, deps registry.Deps) (sinks.Sink, error) {
			return New(c, deps.Deps)
		},
	})
}
