package app

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
)

// TestProduce_compose_generator runs what docker-compose.yml's generator service runs
// (produce --config configs/compose, with that service's environment) against an in-process
// broker, and reads back what it produced: Confluent-framed events of the sample contracts
// on the compose pipelines' source topics, stamped at the wall clock.
func TestProduce_compose_generator(t *testing.T) {
	root := mustAbs(t, "../..")
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(4), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	t.Setenv("SWITCHYARD_BROKERS", "kafka:9092") // as in the compose file; --brokers overrides it here
	t.Setenv("SWITCHYARD_CONTRACTS", filepath.Join(root, "contracts"))
	t.Setenv("SWITCHYARD_PII_HASH_KEY_FILE", filepath.Join(root, "configs/compose/pii_hash_key.example"))
	var stdout, stderr bytes.Buffer
	started := time.Now()
	code := Main(context.Background(), []string{"produce", "--config", filepath.Join(root, "configs/compose"),
		"--brokers", cluster.ListenAddrs()[0], "--rate", "500", "--duration", "2s", "--log-format", "json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("produce exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	m := regexp.MustCompile(`produced (\d+) sample events`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no count in stdout %q", stdout.String())
	}
	produced, _ := strconv.Atoi(m[1])
	if produced < 300 {
		t.Fatalf("produced %d events in 2s at 500/s", produced)
	}

	reg, err := contract.Load(filepath.Join(root, "contracts"))
	if err != nil {
		t.Fatal(err)
	}
	topics := map[string]string{"livestream.views": "livestream.v1.ViewStarted", "auctions.bids": "auctions.v1.BidPlaced", "orders.paid": "orders.v1.OrderPaid"}
	var names []string
	for tp := range topics {
		names = append(names, tp)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(names...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	decoders := map[string]*contract.Decoder{}
	for tp, name := range topics {
		c, err := reg.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		decoders[tp] = c.NewDecoder(contract.Confluent)
	}
	perTopic := map[string]int{}
	valid, total := 0, 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for total < produced && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			total++
			perTopic[r.Topic]++
			d := decoders[r.Topic]
			defer d.Release()
			msg, err := d.Decode(r.Value)
			if err != nil {
				return // one of the ~1% undecodable events
			}
			valid++
			ts := msg.Get(msg.Descriptor().Fields().ByName("occurred_at")).Message()
			at := time.Unix(ts.Get(ts.Descriptor().Fields().ByName("seconds")).Int(), 0)
			if at.Before(started.Add(-5*time.Second)) || at.After(time.Now().Add(time.Second)) {
				t.Fatalf("%s event occurred at %s, produced between %s and now", r.Topic, at, started)
			}
		})
	}
	if total != produced {
		t.Fatalf("read %d records back, produce said %d", total, produced)
	}
	for tp := range topics {
		if perTopic[tp] == 0 {
			t.Errorf("nothing produced to %s: %v", tp, perTopic)
		}
	}
	if valid < total*9/10 {
		t.Errorf("%d of %d events decode: want about 99%%", valid, total)
	}
}
