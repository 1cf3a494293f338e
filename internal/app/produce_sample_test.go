package app

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
)

// TestProduce_compose_generator runs docker-compose.yml's generator service, as that file
// declares it (command, environment, secret), against an in-process broker instead of the
// compose one, and reads back what it produced: Confluent-framed events of the sample
// contracts on the compose pipelines' source topics, stamped at the wall clock.
func TestProduce_compose_generator(t *testing.T) {
	root := mustAbs(t, "../..")
	compose := loadCompose(t)
	svc := compose.Services["generator"]
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(4), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	for k, v := range svc.Environment {
		t.Setenv(k, v)
	}
	// The image's layout (Dockerfile: /etc/switchyard holds contracts/ and configs/) is the
	// repository's, and the compose secret is mounted where configs/compose reads it.
	t.Setenv("SWITCHYARD_CONTRACTS", filepath.Join(root, "contracts"))
	t.Setenv("SWITCHYARD_PII_HASH_KEY_FILE", filepath.Join(root, compose.Secrets["pii_hash_key"].File))
	var args []string
	for _, a := range svc.Command {
		args = append(args, strings.ReplaceAll(a, "/etc/switchyard/", root+"/"))
	}
	args = append(args, "--brokers", cluster.ListenAddrs()[0], "--duration", "2s", "--log-format", "json")
	var stdout, stderr bytes.Buffer
	started := time.Now()
	code := Main(context.Background(), args, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("switchyard %v exited %d\nstdout:\n%s\nstderr:\n%s", args, code, stdout.String(), stderr.String())
	}
	m := regexp.MustCompile(`produced (\d+) sample events`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no count in stdout %q", stdout.String())
	}
	produced, _ := strconv.Atoi(m[1])
	if produced < 100 {
		t.Fatalf("produced %d events in 2s at the compose generator's rate", produced)
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
			if err != nil || d.Contract().Validate(msg) != nil {
				return // one of the ~1% invalid events (some decode, e.g. without occurred_at)
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
		t.Errorf("%d of %d events decode and validate: want about 99%%", valid, total)
	}
}
