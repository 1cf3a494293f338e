package pipelines_test

import (
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/contract/eventgen"
)

const twoLaneConfig = `
kafka: {brokers: ["${BROKERS}"]}
contracts: {path: "${CONTRACTS}"}
admin: {address: ""}
pipelines:
  - name: p
    owner: {team: t, contact: c}
    source: {topics: [in], group: g, max_batch: 100}
    contract: {message: auctions.v1.BidPlaced}
    sinks:
      - name: a
        kafka: {topic: out-a}
        batch: {interval: 10ms}
      - name: b
        kafka: {topic: out-b}
        batch: {interval: 10ms}
    routes:
      - {sink: a, pii: raw, pii_reason: test}
      - {sink: b, pii: raw, pii_reason: test}
    dead_letter: {topic: dlq}
`

// Two lanes of one pipeline validate each event once between them while they move together,
// and an invalid event is still rejected by each lane (only valid verdicts are shared).
func TestEngine_lanes_share_valid_verdicts(t *testing.T) {
	e := newEnv(t, true, "in", "out-a", "out-b", "dlq")
	const n = 2000
	invalid := func(i int) bool { return i%10 == 3 }
	e.produce(t, "in", n, func(i int) eventgen.Kind {
		if invalid(i) {
			return eventgen.Invalid
		}
		return eventgen.Valid
	}, nil)
	_, m := e.start(t, twoLaneConfig)
	const valid = n - n/10
	waitFor(t, time.Minute, "both sinks to land every valid event", func() bool {
		return e.count(t, "out-a") == valid && e.count(t, "out-b") == valid && e.count(t, "dlq") == n/10
	})
	shared := value(t, m.SharedValidations.WithLabelValues("p"))
	if shared <= 0 || shared > valid {
		t.Fatalf("switchyard_validations_shared_total = %v, want in (0, %d]", shared, valid)
	}
	// Nothing more lands later: no invalid event slipped through a shared verdict.
	time.Sleep(300 * time.Millisecond)
	if a, b, d := e.count(t, "out-a"), e.count(t, "out-b"), e.count(t, "dlq"); a != valid || b != valid || d != n/10 {
		t.Fatalf("out-a=%d out-b=%d dlq=%d, want %d, %d, %d", a, b, d, valid, valid, n/10)
	}
	t.Logf("%v of %d validations shared", shared, valid)
}
