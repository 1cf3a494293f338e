package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/pipelines"
)

const frameConfig = `
kafka:
  brokers: ["${BROKERS}"]
contracts:
  path: ${CONTRACTS}
pii:
  hash_key: integration-test-key
admin:
  address: ""
pipelines:
  - name: orders
    owner: {team: commerce, contact: "#commerce"}
    source:
      topics: [%[1]s]
      group: %[1]s-group
      drain_timeout: 5s
    contract:
      encoding: confluent
      message: orders.v1.OrderPaid
      schema_ids: [41, 42]
    sinks:
      - name: bus
        kafka: {topic: %[1]s-out}
        batch: {interval: 50ms}
    routes:
      - sink: bus
    dead_letter:
      topic: %[1]s-dlq
`

// TestFraming_daemon_dead_letters_frames_of_another_message_or_schema runs the daemon against
// Apache Kafka with OrderPaid events framed right, and framed with an index path out of range,
// the index path of a nested message of the same file, and a schema id outside schema_ids:
// the valid ones land, the others are dead-lettered with class framing and what was found.
func TestFraming_daemon_dead_letters_frames_of_another_message_or_schema(t *testing.T) {
	topic := uniqueName(t, "orders")
	kafka.CreateTopic(t, topic, 2)
	reg, err := contract.Load(repoRootContracts())
	if err != nil {
		t.Fatal(err)
	}
	gen, err := eventgen.New(reg, eventgen.Options{Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	type bad struct {
		id      uint32
		indexes []int
		msg     string
	}
	bads := []bad{
		{41, []int{7}, "decode framing: message index [7] is out of range in orders/v1/order_paid.proto (schema id 41), want [0] for orders.v1.OrderPaid"},
		{42, []int{0, 1}, "decode framing: message index [0,1] selects orders.v1.OrderPaid.LineItem (schema id 42), want [0] for orders.v1.OrderPaid"},
		{987654, []int{0}, "decode framing: schema id 987654 is not one of the accepted schema_ids [41, 42]"},
	}
	cl := kafka.NewClient(t, kgo.DefaultProduceTopic(topic))
	valid := map[string]bool{}
	want := map[string]string{} // coordinates -> error message
	for i := range 30 {
		ev, err := gen.Make(eventgen.OrderPaid, eventgen.Valid, contract.Raw)
		if err != nil {
			t.Fatal(err)
		}
		b, id, idx := bad{}, uint32(41+i%2), []int{0}
		if i%5 == 4 {
			b = bads[(i/5)%len(bads)]
			id, idx = b.id, b.indexes
		}
		rec := &kgo.Record{Key: fmt.Appendf(nil, "%d", i), Value: contract.FrameConfluent(nil, id, idx, ev.Payload)}
		r, err := cl.ProduceSync(context.Background(), rec).First()
		if err != nil {
			t.Fatal(err)
		}
		if b.msg == "" {
			valid[string(rec.Key)] = true
		} else {
			want[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)] = b.msg
		}
	}

	config := writeConfig(t, fmt.Sprintf(frameConfig, topic))
	logPath := filepath.Join(t.TempDir(), "daemon.log")
	d := startDaemon(t, config, logPath)
	defer d.kill()

	invalid := map[string]bool{}
	for c := range want {
		invalid[c] = true
	}
	dlq := readDeadLetters(t, topic+"-dlq", invalid)
	got := map[string]string{}
	for _, r := range dlq {
		if class := header(r, pipelines.HeaderClass); class != "framing" {
			t.Errorf("dead letter %s has class %q (%s), want framing", dlqCoord(r), class, header(r, pipelines.HeaderMessage))
		}
		got[dlqCoord(r)] = header(r, pipelines.HeaderMessage)
	}
	for c, msg := range want {
		if got[c] != msg {
			t.Errorf("dead letter %s: message %q, want %q", c, got[c], msg)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d dead letters, want %d", len(got), len(want))
	}

	out := readUntil(t, topic+"-out", time.Minute, func(recs []*kgo.Record) bool { return len(recs) >= len(valid) })
	landed := map[string]bool{}
	for _, r := range out {
		if !valid[string(r.Key)] {
			t.Errorf("event %s landed but is framed wrong", r.Key)
		}
		landed[string(r.Key)] = true
	}
	if len(landed) != len(valid) {
		t.Fatalf("%d of %d valid events landed (log: %s)", len(landed), len(valid), strings.TrimSpace(tail(logPath, 20)))
	}
	d.terminate(t)
}
