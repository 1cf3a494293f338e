// Package all registers every sink kind Switchyard ships (the Benthos components/all
// pattern). Composition roots import it for its side effect:
//
//	import _ "switchyard/sinks/all"
//
// A new sink package adds one import line here; TestEverySinkListed fails until it does.
package all

import (
	_ "switchyard/sinks/bigquery"
	_ "switchyard/sinks/clickhouse"
	_ "switchyard/sinks/kafka"
)
