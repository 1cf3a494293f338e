// Package all registers every sink kind Switchyard ships (the Benthos components/all
// pattern). Composition roots import it for its side effect:
//
//	import _ "github.com/switchyard-dev/switchyard/sinks/all"
//
// A new sink package adds one import line here; TestEverySinkListed fails until it does.
package all

import (
	_ "github.com/switchyard-dev/switchyard/sinks/bigquery"
	_ "github.com/switchyard-dev/switchyard/sinks/clickhouse"
	_ "github.com/switchyard-dev/switchyard/sinks/kafka"
)
