package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-dev/switchyard/client/producer"
	"github.com/switchyard-dev/switchyard/contract"
	auctionsv1 "github.com/switchyard-dev/switchyard/gen/go/auctions/v1"
)

// TestMurmur2 checks the hash against the vectors of Apache Kafka's UtilsTest.testMurmur2.
func TestMurmur2(t *testing.T) {
	for in, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := int32(producer.Murmur2([]byte(in))); got != want {
			t.Errorf("Murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

func newCluster(t testing.TB, partitions int32, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func readAll(t *testing.T, c *kfake.Cluster, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from %s", len(out), n, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// TestPublish_keyed_batch_lands_by_murmur2 publishes a batch of many keys and checks every
// record is in the partition murmur2 (the Java client's choice) gives its key, in order per
// key, and decodes to what was sent.
func TestPublish_keyed_batch_lands_by_murmur2(t *testing.T) {
	c := newCluster(t, 6, "bids")
	p, err := producer.New(producer.Config{Brokers: c.ListenAddrs(), Topic: "bids", Encoding: contract.Raw, KeyField: "auction_id"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var msgs []proto.Message
	for i := range 60 {
		b := bid(fmt.Sprintf("c0a80101-0000-4000-8000-%012d", i))
		b.AuctionId = fmt.Sprintf("7f0c1c6e-2b1e-4c1a-9a52-%012d", i%7)
		b.Sequence = uint64(i + 1)
		msgs = append(msgs, b)
	}
	if err := p.Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	last := map[string]uint64{}
	for _, r := range readAll(t, c, "bids", len(msgs)) {
		want := int32(producer.Murmur2(r.Key)&0x7fffffff) % 6
		if r.Partition != want {
			t.Errorf("key %s in partition %d, murmur2 says %d", r.Key, r.Partition, want)
		}
		var got auctionsv1.BidPlaced
		if err := proto.Unmarshal(r.Value, &got); err != nil {
			t.Fatal(err)
		}
		if got.AuctionId != string(r.Key) {
			t.Errorf("record keyed %s holds auction %s", r.Key, got.AuctionId)
		}
		if got.Sequence <= last[got.AuctionId] {
			t.Errorf("auction %s: sequence %d after %d", got.AuctionId, got.Sequence, last[got.AuctionId])
		}
		last[got.AuctionId] = got.Sequence
	}
}

// TestPublish_invalid_sends_nothing checks that a batch with one invalid event is refused
// whole with a typed error, then that the next valid one is the only record.
func TestPublish_invalid_sends_nothing(t *testing.T) {
	c := newCluster(t, 1, "bids")
	p, err := producer.New(producer.Config{Brokers: c.ListenAddrs(), Topic: "bids", Encoding: contract.JSON})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	bad := bid("c0a80101-0000-4000-8000-000000000002")
	bad.BidderEmail = "nope"
	bad.Amount.Units = -1
	err = p.Publish(context.Background(), bid("c0a80101-0000-4000-8000-000000000001"), bad)
	var verr *contract.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Publish = %v, want a *contract.ValidationError", err)
	}
	const want = "1 of 2 events invalid, none sent; event 1: auctions.v1.BidPlaced violates 3 rules: bidder_email [string.email], amount [bid_placed.amount_positive], amount [money.sign_consistent]"
	if err.Error() != want {
		t.Errorf("error\n%s\nwant\n%s", err, want)
	}
	if err := p.Publish(context.Background(), bid("c0a80101-0000-4000-8000-000000000003")); err != nil {
		t.Fatal(err)
	}
	rs := readAll(t, c, "bids", 1)
	var got auctionsv1.BidPlaced
	if err := protojson.Unmarshal(rs[0].Value, &got); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Offset != 0 || got.EventId != "c0a80101-0000-4000-8000-000000000003" {
		t.Errorf("topic holds %d records, first at offset %d with event %s; want only event ...003", len(rs), rs[0].Offset, got.EventId)
	}
}

// TestPublish_schema_id_from_registry frames with the latest schema id of the topic's
// subject, asked once from a Schema Registry.
func TestPublish_schema_id_from_registry(t *testing.T) {
	calls := 0
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/subjects/bids-value/versions/latest" {
			http.NotFound(w, r)
			return
		}
		calls++
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		json.NewEncoder(w).Encode(map[string]any{"subject": "bids-value", "version": 3, "id": 1234, "schemaType": "PROTOBUF", "schema": "syntax = \"proto3\";"})
	}))
	defer reg.Close()
	rc, err := sr.NewClient(sr.URLs(reg.URL))
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, 1, "bids")
	p, err := producer.New(producer.Config{Brokers: c.ListenAddrs(), Topic: "bids", Registry: rc})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range 2 {
		if err := p.Publish(context.Background(), bid(fmt.Sprintf("c0a80101-0000-4000-8000-%012d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range readAll(t, c, "bids", 2) {
		id, idx, _, err := contract.SplitConfluent(r.Value)
		if err != nil || id != 1234 || len(idx) != 1 || idx[0] != 0 {
			t.Errorf("frame: id %d, indexes %v, err %v; want id 1234, [0]", id, idx, err)
		}
	}
	if calls != 1 {
		t.Errorf("registry asked %d times, want once", calls)
	}
}

func TestNew_confluent_needs_a_schema_id(t *testing.T) {
	_, err := producer.New(producer.Config{Brokers: []string{"127.0.0.1:1"}, Topic: "bids"})
	if err == nil || err.Error() != "producer: encoding confluent needs a schema id or a schema registry" {
		t.Errorf("New = %v", err)
	}
}
