package source

import (
	"testing"

	"github.com/switchyard-dev/switchyard/integration/harness"
)

// TestCheckpoint_realKafka is TestCheckpoint against Apache Kafka started by the harness.
func TestCheckpoint_realKafka(t *testing.T) {
	kafka := harness.StartKafka(t)
	testCheckpoint(t, kafka.Brokers(), "checkpoint-real", nil)
}
