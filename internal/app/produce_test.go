package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/client/producer"
)

// bidJSON is a valid auctions.v1.BidPlaced as protojson, with eventID and quantity.
func bidJSON(eventID string, quantity int) string {
	return fmt.Sprintf(`{"eventId":%q,"occurredAt":"2026-12-01T20:15:00Z","auctionId":"7f0c1c6e-2b1e-4c1a-9a52-0d7a4f3e9b10","lotId":"0a3c5e7f-1b2d-4e6f-8a9b-0c1d2e3f4a5b","bidderId":"5d41402a-bc4b-4a76-b971-9d911017c592","bidderEmail":"ada@example.com","amount":{"currencyCode":"EUR","units":"42"},"source":"SOURCE_API","sequence":"1","quantity":%d}`, eventID, quantity)
}

// kfakeConfig writes a configuration for a kfake cluster with topics auctions.bids (read as
// Confluent with schema id 7 by pipeline bids) and bids.dlq, and returns its path.
func kfakeConfig(t *testing.T) (string, *kfake.Cluster) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "auctions.bids", "bids.dlq", "plain"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	contracts, _ := filepath.Abs("../../contracts")
	yaml := fmt.Sprintf(`kafka:
  brokers: [%q]
pii: {hash_key: test-key}
contracts:
  path: %s
pipelines:
  - name: bids
    owner: {team: auctions, contact: "#auctions"}
    source:
      topics: [auctions.bids]
    contract:
      message: auctions.v1.BidPlaced
      schema_ids: [7]
    sinks:
      - name: bus
        kafka: {topic: out}
    routes:
      - sink: bus
    dead_letter:
      topic: bids.dlq
`, c.ListenAddrs()[0], contracts)
	path := filepath.Join(t.TempDir(), "switchyard.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, c
}

func run(t *testing.T, in string, args ...string) (int, string, string) {
	t.Helper()
	stdin = strings.NewReader(in)
	defer func() { stdin = os.Stdin }()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestProduce_then_tail sends JSON lines with produce, of which two are bad, and reads the
// topic back with tail: the valid event framed as the pipeline reads it, PII redacted.
func TestProduce_then_tail(t *testing.T) {
	cfg, _ := kfakeConfig(t)
	in := bidJSON("c0a80101-0000-4000-8000-000000000001", 1) + "\n" +
		bidJSON("nope", 0) + "\n\n" +
		`{"eventId": "x", "bogus": 1}` + "\n" +
		bidJSON("c0a80101-0000-4000-8000-000000000002", 2) + "\n"
	code, _, stderr := run(t, in, "produce", "--config", cfg, "--contract", "auctions.v1.BidPlaced", "--topic", "auctions.bids", "--key", "auction_id")
	const wantErr = `stdin:2: event_id: string.uuid
stdin:2: quantity: int32.gt_lte
stdin:4: json: (line 1:18): unknown field
switchyard produce: 2 events sent to auctions.bids (confluent), 2 lines failed
`
	if code != 1 || stderr != wantErr {
		t.Errorf("produce: exit %d, stderr\n%s\nwant exit 1, stderr\n%s", code, stderr, wantErr)
	}

	code, stdout, stderr := run(t, "", "tail", "--config", cfg, "--topic", "auctions.bids")
	if code != 0 {
		t.Fatalf("tail: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("tail printed %d lines, want 2:\n%s", len(lines), stdout)
	}
	var first struct {
		Partition int32             `json:"partition"`
		Offset    int64             `json:"offset"`
		Key       string            `json:"key"`
		Headers   map[string]string `json:"headers"`
		Contract  string            `json:"contract"`
		Encoding  string            `json:"encoding"`
		SchemaID  uint32            `json:"schema_id"`
		Event     map[string]any    `json:"event"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	// switchyard produce partitions like the Java client: murmur2 of the key.
	if want := int32(producer.Murmur2([]byte(first.Key))&0x7fffffff) % 2; first.Partition != want {
		t.Errorf("key %s in partition %d, the Java client puts it in %d", first.Key, first.Partition, want)
	}
	if first.Key != "7f0c1c6e-2b1e-4c1a-9a52-0d7a4f3e9b10" || first.Offset != 0 || first.Contract != "auctions.v1.BidPlaced" ||
		first.Encoding != "confluent" || first.SchemaID != 7 || first.Headers["switchyard-producer"] != "switchyard-produce" ||
		first.Headers["switchyard-event-time"] != "2026-12-01T20:15:00Z" ||
		first.Event["eventId"] != "c0a80101-0000-4000-8000-000000000001" || first.Event["bidderEmail"] != "[redacted]" {
		t.Errorf("tail line: %s", lines[0])
	}

	// --raw-pii shows the value; -n 1 --from earliest stops after one record.
	_, stdout, _ = run(t, "", "tail", "--config", cfg, "--topic", "auctions.bids", "--raw-pii", "-n", "1", "--from", "earliest")
	if strings.Count(stdout, "\n") != 1 || !strings.Contains(stdout, `"bidderEmail":"ada@example.com"`) {
		t.Errorf("tail --raw-pii -n 1: %s", stdout)
	}
	// --from latest without --follow has nothing to print.
	if code, stdout, _ = run(t, "", "tail", "--config", cfg, "--topic", "auctions.bids", "--from", "latest"); code != 0 || stdout != "" {
		t.Errorf("tail --from latest: exit %d, %q", code, stdout)
	}
}

// TestTail_dead_letter prints a dead letter's reason headers and decodes it as the
// contract its switchyard.contract header names.
func TestTail_dead_letter(t *testing.T) {
	cfg, c := kfakeConfig(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec := &kgo.Record{Topic: "bids.dlq", Value: []byte{0, 0, 0, 0, 7, 2, 2}, Headers: []kgo.RecordHeader{
		{Key: "switchyard.error.class", Value: []byte("framing")},
		{Key: "switchyard.error.reason", Value: []byte("framing")},
		{Key: "switchyard.error.message", Value: []byte("decode framing: frame names message index [1]")},
		{Key: "switchyard.contract", Value: []byte("auctions.v1.BidPlaced")},
		{Key: "switchyard.source.topic", Value: []byte("auctions.bids")},
		{Key: "switchyard.source.partition", Value: []byte("1")},
		{Key: "switchyard.source.offset", Value: []byte("41")},
	}}
	if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, "", "tail", "--config", cfg, "--topic", "bids.dlq")
	if code != 0 {
		t.Fatalf("tail: exit %d: %s", code, stderr)
	}
	want := fmt.Sprintf(`{"topic":"bids.dlq","partition":%d,"offset":0,"timestamp":%q,"dead_letter":{"contract":"auctions.v1.BidPlaced","error.class":"framing","error.message":"decode framing: frame names message index [1]","error.reason":"framing","source.offset":"41","source.partition":"1","source.topic":"auctions.bids"},"contract":"auctions.v1.BidPlaced","encoding":"confluent","schema_id":7,"error":"decode framing: frame names message index [1], auctions.v1.BidPlaced is [0]"}`+"\n",
		rec.Partition, rec.Timestamp.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"))
	if stdout != want {
		t.Errorf("tail\n%s\nwant\n%s", stdout, want)
	}
}

func TestProduceTail_help_to_stdout(t *testing.T) {
	for _, cmd := range []string{"produce", "tail"} {
		code, stdout, stderr := run(t, "", cmd, "--help")
		if code != 0 || !strings.HasPrefix(stdout, "Usage: switchyard "+cmd) || stderr != "" {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", cmd, code, stdout, stderr)
		}
	}
	if code, _, stderr := run(t, "", "tail", "--config", "x.yaml"); code != 2 || !strings.Contains(stderr, "--topic is required") {
		t.Errorf("tail without --topic: exit %d, %s", code, stderr)
	}
}

// TestProduce_partitions_by_murmur2 checks that produce keys records as the Java client
// partitions them (murmur2), not as sarama's default (FNV-1a) would.
func TestProduce_partitions_by_murmur2(t *testing.T) {
	cfg, c := kfakeConfig(t)
	var in strings.Builder
	for i := range 20 {
		in.WriteString(strings.Replace(bidJSON(fmt.Sprintf("c0a80101-0000-4000-8000-%012d", i), 1),
			"7f0c1c6e-2b1e-4c1a-9a52-0d7a4f3e9b10", fmt.Sprintf("7f0c1c6e-2b1e-4c1a-9a52-%012d", i), 1) + "\n")
	}
	if code, _, stderr := run(t, in.String(), "produce", "--config", cfg, "--contract", "auctions.v1.BidPlaced", "--topic", "plain", "--key", "auction_id", "--schema-id", "3"); code != 0 {
		t.Fatalf("produce: exit %d: %s", code, stderr)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("plain"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	for n < 20 && ctx.Err() == nil {
		for _, r := range cl.PollFetches(ctx).Records() {
			n++
			if want := int32(producer.Murmur2(r.Key)&0x7fffffff) % 2; r.Partition != want {
				t.Errorf("key %s in partition %d, the Java client puts it in %d", r.Key, r.Partition, want)
			}
		}
	}
	if n != 20 {
		t.Fatalf("read %d of 20 records", n)
	}
}
