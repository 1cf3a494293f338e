package clickhouse

import (
	"testing"

	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/sinktest"
)

func TestSink_conformance(t *testing.T) {
	sinktest.Run(t, sinktest.Features{Dedup: true, ConcurrentWrites: true}, func(t *testing.T, deps sinks.Deps) sinktest.Env {
		table := newTable(t)
		s, err := New(testConfig(table), deps)
		if err != nil {
			t.Fatalf("new sink: %v", err)
		}
		return sinktest.Env{
			Sink: s,
			ReadBack: func(t *testing.T, target string) []string {
				if target != "" {
					t.Fatalf("clickhouse sink has no targets, got %q", target)
				}
				var ids []string
				for _, r := range server.Query(t, "SELECT id FROM default."+table) {
					ids = append(ids, r[0])
				}
				return ids
			},
		}
	})
}
