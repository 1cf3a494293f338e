package integration

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-dev/switchyard/client/producer"
	"github.com/switchyard-dev/switchyard/contract"
	auctionsv1 "github.com/switchyard-dev/switchyard/gen/go/auctions/v1"
	"github.com/switchyard-dev/switchyard/integration/harness"
)

var updateInterop = flag.Bool("update-interop", false, "rewrite the golden vectors in testdata/interop")

// interopBid is the auctions.v1.BidPlaced every side of the interop test writes, as protojson.
func interopBid(eventID string) string {
	return fmt.Sprintf(`{"eventId":%q,"occurredAt":"2026-12-01T20:15:00Z","auctionId":"7f0c1c6e-2b1e-4c1a-9a52-0d7a4f3e9b10","lotId":"0a3c5e7f-1b2d-4e6f-8a9b-0c1d2e3f4a5b","bidderId":"5d41402a-bc4b-4a76-b971-9d911017c592","bidderEmail":"ada@example.com","amount":{"currencyCode":"EUR","units":"42","nanos":500000000},"source":"SOURCE_AUTO_BID","sequence":"3","quantity":2,"timeRemaining":"12.500s","promoCode":"SPRING"}`, eventID)
}

// python runs integration/testdata/interop/interop.py in the virtualenv of .ci/setup.
func python(t *testing.T, args ...string) []byte {
	t.Helper()
	home, _ := os.UserHomeDir()
	py := filepath.Join(home, ".cache", "switchyard", "pyvenv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("no confluent-kafka-python virtualenv at %s: run bash .ci/setup", py)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{filepath.Join(repoRoot(), "integration", "testdata", "interop", "interop.py")}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("interop.py %s: %v\n%s", args[0], err, stderr.Bytes())
	}
	return out
}

// golden compares got with testdata/interop/name, or writes it with -update-interop.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(repoRoot(), "integration", "testdata", "interop", name)
	if *updateInterop {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./integration -run TestInterop -update-interop)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed:\n got % x\nwant % x", name, got, want)
	}
}

// switchyardCmd runs the switchyard binary with stdin and returns its exit code and output.
func switchyardCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, daemonBinary(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

const interopConfig = `
kafka:
  brokers: ["${BROKERS}"]
contracts:
  path: %[2]s
pii:
  hash_key: integration-test-key
pipelines:
  - name: interop
    owner: {team: platform, contact: "#platform"}
    source:
      topics: [%[1]s-unused]
    contract:
      message: %[3]s
    sinks:
      - name: bus
        kafka: {topic: %[1]s-out}
    routes:
      - sink: bus
    dead_letter:
      topic: %[1]s-dlq
`

// TestInterop_confluent_kafka_python checks Switchyard's Confluent framing against
// confluent-kafka-python through the real broker, both ways: what client/producer and
// `switchyard produce` write is read by its ProtobufDeserializer, which looks the writer
// schema up by the frame's id in a mock:// registry and follows the frame's message index;
// and what its ProtobufSerializer writes, including messages that are not the first of their
// file (index paths [1] and [1, 0]), is decoded by `switchyard tail`. The bytes each side
// wrote are kept as golden vectors in testdata/interop.
func TestInterop_confluent_kafka_python(t *testing.T) {
	goTopic, pyTopic := uniqueName(t, "go"), uniqueName(t, "py")
	kafka.CreateTopic(t, goTopic, 3)
	for _, tp := range []string{pyTopic, pyTopic + "-frame", pyTopic + "-lot"} {
		kafka.CreateTopic(t, tp, 1)
	}

	// confluent-kafka-python serializes and produces; it registered BidPlaced for goTopic.
	var ser struct {
		GoSchemaID uint32            `json:"go_schema_id"`
		Payloads   map[string]string `json:"payloads"`
		Version    string            `json:"confluent_kafka"`
	}
	out := python(t, "serialize", kafka.Brokers()[0], goTopic, pyTopic, interopBid("c0a80101-0000-4000-8000-0000000000aa"))
	if err := json.Unmarshal(out, &ser); err != nil {
		t.Fatalf("serialize printed %q: %v", out, err)
	}
	t.Logf("confluent-kafka %s, schema id %d for %s-value", ser.Version, ser.GoSchemaID, goTopic)
	for name, wantIdx := range map[string][]int{"auctions": {0}, "frame": {1}, "lot": {1, 0}} {
		b, _ := hex.DecodeString(ser.Payloads[name])
		_, idx, _, err := contract.SplitConfluent(b)
		if err != nil || fmt.Sprint(idx) != fmt.Sprint(wantIdx) {
			t.Errorf("python %s: message indexes %v (%v), want %v", name, idx, err, wantIdx)
		}
		golden(t, "python_"+name+".bin", b)
	}

	// Switchyard decodes what Python wrote.
	auctionsCfg := writeConfig(t, fmt.Sprintf(interopConfig, goTopic, "${CONTRACTS}", "auctions.v1.BidPlaced"))
	frameCfg := writeConfig(t, fmt.Sprintf(interopConfig, goTopic, filepath.Join(repoRoot(), "contract", "testdata", "frame"), "test.v1.BidPlaced"))
	for _, tc := range []struct {
		cfg, topic, contract string
		want                 []string
	}{
		{auctionsCfg, pyTopic, "auctions.v1.BidPlaced", []string{`"eventId":"c0a80101-0000-4000-8000-0000000000aa"`, `"bidderEmail":"[redacted]"`, `"timeRemaining":"12.500s"`, `"promoCode":"SPRING"`, `"key":"7f0c1c6e-2b1e-4c1a-9a52-0d7a4f3e9b10"`}},
		{frameCfg, pyTopic + "-frame", "test.v1.BidPlaced", []string{`"event":{"bidId":"b-17","amountCents":"4250","lot":{"lotId":"lot-9","tags":["art","oil"]}}`}},
		{frameCfg, pyTopic + "-lot", "test.v1.BidPlaced.Lot", []string{`"event":{"lotId":"lot-3","tags":["coin"]}`}},
	} {
		code, stdout, stderr := switchyardCmd(t, "", "tail", "--config", tc.cfg, "--topic", tc.topic, "--contract", tc.contract)
		if code != 0 || strings.Count(stdout, "\n") != 1 {
			t.Errorf("tail %s: exit %d, stdout %s, stderr %s", tc.topic, code, stdout, stderr)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("tail %s: %s lacks %s", tc.topic, stdout, w)
			}
		}
		if strings.Contains(stdout, `"error"`) {
			t.Errorf("tail %s: %s", tc.topic, stdout)
		}
	}

	// client/producer and switchyard produce write for goTopic, with the registered id.
	var ev auctionsv1.BidPlaced
	if err := protojson.Unmarshal([]byte(interopBid("c0a80101-0000-4000-8000-000000000001")), &ev); err != nil {
		t.Fatal(err)
	}
	p, err := producer.New(producer.Config{Brokers: kafka.Brokers(), Topic: goTopic, SchemaID: ser.GoSchemaID, KeyField: "auction_id", Name: "interop-test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(context.Background(), &ev); err != nil {
		t.Fatal(err)
	}
	p.Close()
	code, _, stderr := switchyardCmd(t, interopBid("c0a80101-0000-4000-8000-000000000002")+"\n", "produce", "--config", auctionsCfg,
		"--contract", "auctions.v1.BidPlaced", "--topic", goTopic, "--key", "auction_id", "--schema-id", fmt.Sprint(ser.GoSchemaID))
	if code != 0 {
		t.Fatalf("produce: exit %d: %s", code, stderr)
	}
	recs := readAll(t, goTopic, 2, 30*time.Second)
	for _, r := range recs {
		var got auctionsv1.BidPlaced
		_, _, body, err := contract.SplitConfluent(r.Value)
		if err == nil {
			err = proto.Unmarshal(body, &got)
		}
		if err != nil {
			t.Fatal(err)
		}
		name := map[string]string{"c0a80101-0000-4000-8000-000000000001": "go_producer.bin", "c0a80101-0000-4000-8000-000000000002": "go_produce.bin"}[got.EventId]
		golden(t, name, r.Value)
	}

	// confluent-kafka-python reads them back.
	lines := strings.Split(strings.TrimSpace(string(python(t, "deserialize", kafka.Brokers()[0], goTopic, "2"))), "\n")
	t.Logf("ProtobufDeserializer:\n%s", strings.Join(lines, "\n"))
	seen := map[string]bool{}
	for _, l := range lines {
		var d struct {
			SchemaID     uint32            `json:"schema_id"`
			RegisteredID uint32            `json:"registered_id"`
			Key          string            `json:"key"`
			Headers      map[string]string `json:"headers"`
			Event        map[string]any    `json:"event"`
			Error        string            `json:"error"`
		}
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("deserialize printed %q: %v", l, err)
		}
		if d.Error != "" || d.SchemaID != d.RegisteredID || d.Key != ev.AuctionId || d.Headers[contract.HeaderContract] != "auctions.v1.BidPlaced" {
			t.Errorf("ProtobufDeserializer: %s", l)
		}
		id, _ := d.Event["eventId"].(string)
		seen[id] = true
		if d.Event["bidderEmail"] != "ada@example.com" || d.Event["promoCode"] != "SPRING" || d.Event["timeRemaining"] != "12.500s" {
			t.Errorf("ProtobufDeserializer decoded %v", d.Event)
		}
	}
	if !seen["c0a80101-0000-4000-8000-000000000001"] || !seen["c0a80101-0000-4000-8000-000000000002"] {
		t.Errorf("ProtobufDeserializer read events %v, want ...001 (client/producer) and ...002 (switchyard produce)", seen)
	}
}

// TestInterop_producer_partitions_like_the_Java_client publishes keyed events with
// client/producer and switchyard produce and checks each landed in the partition Apache Kafka's own Java producer
// code (BuiltInPartitioner, from the harness's jars) chooses for its key.
func TestInterop_producer_partitions_like_the_Java_client(t *testing.T) {
	const partitions = 7
	topic := uniqueName(t, "keys")
	kafka.CreateTopic(t, topic, partitions)
	p, err := producer.New(producer.Config{Brokers: kafka.Brokers(), Topic: topic, Encoding: contract.Raw, KeyField: "auction_id"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var msgs []proto.Message
	for i := range 50 {
		var ev auctionsv1.BidPlaced
		if err := protojson.Unmarshal([]byte(interopBid(fmt.Sprintf("c0a80101-0000-4000-8000-%012d", i))), &ev); err != nil {
			t.Fatal(err)
		}
		ev.AuctionId = fmt.Sprintf("%08x-2b1e-4c1a-9a52-0d7a4f3e9b10", i*2654435761%(1<<32))
		msgs = append(msgs, &ev)
	}
	if err := p.Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	// And 20 through switchyard produce.
	var lines strings.Builder
	for i := range 20 {
		ev := strings.Replace(interopBid(fmt.Sprintf("c0a80101-0000-4000-8000-%012d", 100+i)), "7f0c1c6e-2b1e", fmt.Sprintf("%08x-2b1e", (100+i)*2654435761%(1<<32)), 1)
		lines.WriteString(ev + "\n")
	}
	cfg := writeConfig(t, fmt.Sprintf(interopConfig, topic, "${CONTRACTS}", "auctions.v1.BidPlaced"))
	if code, _, stderr := switchyardCmd(t, lines.String(), "produce", "--config", cfg, "--contract", "auctions.v1.BidPlaced", "--topic", topic,
		"--key", "auction_id", "--encoding", "raw"); code != 0 {
		t.Fatalf("produce: exit %d: %s", code, stderr)
	}
	recs := readAll(t, topic, len(msgs)+20, 30*time.Second)
	keys := make([][]byte, len(recs))
	for i, r := range recs {
		keys[i] = r.Key
	}
	java := harness.JavaPartitions(t, keys, partitions)
	used := map[int32]bool{}
	for i, r := range recs {
		used[r.Partition] = true
		if r.Partition != java[i] {
			t.Errorf("key %s in partition %d; the Java client puts it in %d", r.Key, r.Partition, java[i])
		}
	}
	if len(used) < 4 {
		t.Errorf("70 keys landed in only %d of %d partitions", len(used), partitions)
	}
}
