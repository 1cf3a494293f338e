package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/integration/harness"
	"github.com/switchyard-dev/switchyard/pipelines"
)

// TestOversized_events_never_hold_their_partition: a 10 MB invalid event and a 10 MB valid
// event (padded with an unknown field) sit in one partition between valid events. Every valid
// event lands in ClickHouse, including the big one; the kafka sink refuses the big valid one
// (too_large, never retried) and lands all the others; both big ones are in the dead-letter
// topic without their values, with size and SHA-256 kept; the partition never stalls.
func TestOversized_events_never_hold_their_partition(t *testing.T) {
	ch := harness.StartClickHouse(t)
	topic := uniqueName(t, "bids")
	big := map[string]string{"max.message.bytes": strconv.Itoa(16 << 20)}
	kafka.CreateTopicWithConfigs(t, topic, 1, big)
	kafka.CreateTopic(t, topic+"-out", 1)
	kafka.CreateTopic(t, topic+"-dlq", 1) // the broker's default limit: 1 MiB
	bus := `      - name: bus
        batch: {max_rows: 500, interval: 50ms}
        kafka: {topic: ` + topic + `-out}`
	// pii: raw, so the kafka sink passes the original (padded) bytes through rather than
	// re-encoding the hashed event (which would drop the unknown field).
	route := "      - sink: bus\n        pii: raw\n        pii_reason: the size test needs the original bytes"
	config := writeConfig(t, fmt.Sprintf(chConfig, topic, ch.Addr(), bus, route, ""))
	logPath := daemonLogPath(t)

	reg, err := contract.Load(repoRootContracts())
	if err != nil {
		t.Fatal(err)
	}
	gen, err := eventgen.New(reg, eventgen.Options{Seed: 11, Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	pad := func(payload []byte) []byte {
		// An unknown length-delimited field: decoding keeps it, the contract's rules ignore it.
		out := protowire.AppendTag(append([]byte{}, payload...), 9999, protowire.BytesType)
		return protowire.AppendBytes(out, make([]byte, 10<<20))
	}
	var recs []*kgo.Record
	valid := map[string]bool{}
	var bigValid, bigInvalid []byte
	var bigValidID string
	for i := range 2000 {
		kind := eventgen.Valid
		if i == 700 {
			kind = eventgen.Invalid
		}
		ev, err := gen.Make(eventgen.BidPlaced, kind, contract.Confluent)
		if err != nil {
			t.Fatal(err)
		}
		v := ev.Payload
		switch i {
		case 700:
			v = pad(v)
			bigInvalid = v
		case 1300:
			v = pad(v)
			bigValid, bigValidID = v, bidID(ev)
		}
		if kind == eventgen.Valid {
			valid[bidID(ev)] = true
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: v})
	}
	prod := kafka.NewClient(t, kgo.ProducerBatchMaxBytes(16<<20), kgo.MaxBufferedBytes(64<<20))
	if err := prod.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	d := startDaemon(t, config, logPath)
	t.Cleanup(d.kill)
	load := &bidLoad{valid: valid}
	waitLanded(t, ch, len(valid), 2*time.Minute, logPath)
	out := readUntil(t, topic+"-out", time.Minute, func(r []*kgo.Record) bool { return len(eventIDs(t, r)) >= len(valid)-1 })
	dlq := readUntil(t, topic+"-dlq", time.Minute, func(r []*kgo.Record) bool { return len(r) >= 2 })
	d.terminate(t)
	checkLandedOnce(t, ch, topic, load)

	ids := eventIDs(t, out)
	if len(ids) != len(valid)-1 || ids[bigValidID] != 0 {
		t.Errorf("kafka sink landed %d distinct events (the big one %d times), want the %d others", len(ids), ids[bigValidID], len(valid)-1)
	}
	if len(dlq) != 2 {
		t.Fatalf("want 2 dead letters, got %d", len(dlq))
	}
	for _, dl := range dlq {
		var want []byte
		var class, reason string
		switch header(dl, pipelines.HeaderOffset) {
		case "700":
			want, class, reason = bigInvalid, "validate", "validate"
		case "1300":
			want, class, reason = bigValid, "sink", "too_large"
		default:
			t.Fatalf("unexpected dead letter at offset %s", header(dl, pipelines.HeaderOffset))
		}
		sum := sha256.Sum256(want)
		if got := header(dl, pipelines.HeaderClass); got != class {
			t.Errorf("offset %s: class %q, want %q", header(dl, pipelines.HeaderOffset), got, class)
		}
		if got := header(dl, pipelines.HeaderReason); got != reason {
			t.Errorf("offset %s: reason %q, want %q", header(dl, pipelines.HeaderOffset), got, reason)
		}
		if len(dl.Value) != 0 || header(dl, pipelines.HeaderValueDropped) != "true" ||
			header(dl, pipelines.HeaderValueSize) != strconv.Itoa(len(want)) ||
			header(dl, pipelines.HeaderValueSHA256) != hex.EncodeToString(sum[:]) {
			t.Errorf("offset %s: want the value dropped with its size %d and hash kept, got %d bytes, headers %v", header(dl, pipelines.HeaderOffset), len(want), len(dl.Value), dl.Headers)
		}
		if string(dl.Key) != header(dl, pipelines.HeaderOffset) {
			t.Errorf("offset %s: key %q, want the original key", header(dl, pipelines.HeaderOffset), dl.Key)
		}
	}
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "too_large") {
		t.Errorf("the daemon log never says an event was too large: %s", logPath)
	}
}
