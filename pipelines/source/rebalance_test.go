package source

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-dev/switchyard/internal/event"
)

// TestSource_revoke_second_member: while member a works on four partitions, with batches in
// flight, acked out of order and sometimes nacked, member b joins and takes some of them.
// Every commit the broker sees comes from a member that owns the partition (between its
// OnAssigned and OnRevoked), covers only acked records, and never moves backwards; in the end
// everything is committed.
func TestSource_revoke_second_member(t *testing.T) {
	const (
		partitions   = 4
		perPartition = 2000
		group        = "g-revoke"
		topic        = "revoke"
	)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	createTopic(t, brokers, topic, partitions)
	for p := range int32(partitions) {
		produce(t, brokers, topic, p, perPartition)
	}

	var (
		mu         sync.Mutex
		acked      = make(map[int32][]bool)
		lastCommit = make(map[int32]int64)
		owned      = map[string]map[int32]bool{"a": {}, "b": {}}
		inFlight   = map[string]int{}
		ackedBy    = map[string]int{}
		revokedA   int
		violations []string
	)
	for p := range int32(partitions) {
		acked[p] = make([]bool, perPartition)
		lastCommit[p] = -1
	}
	violate := func(format string, args ...any) {
		if len(violations) < 20 {
			violations = append(violations, fmt.Sprintf(format, args...))
		}
	}

	cluster.ControlKey(kmsg.OffsetCommit.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.OffsetCommitRequest)
		if r.Group != group {
			return nil, nil, false
		}
		member := "?"
		for _, m := range []string{"a", "b"} {
			if strings.HasPrefix(r.MemberID, "member-"+m+"-") {
				member = m
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rt := range r.Topics {
			for _, rp := range rt.Partitions {
				p, off := rp.Partition, rp.Offset
				if !owned[member][p] {
					violate("member %s committed %s at %d without owning it", member, tpName(rt.Topic, p), off)
				}
				if off < lastCommit[p] {
					violate("%s commit moved back from %d to %d (member %s)", tpName(rt.Topic, p), lastCommit[p], off, member)
				}
				for o := max(lastCommit[p], 0); o < off && o < perPartition; o++ {
					if !acked[p][o] {
						violate("member %s committed %s at %d but offset %d was never acked", member, tpName(rt.Topic, p), off, o)
						break
					}
				}
				lastCommit[p] = max(lastCommit[p], off)
			}
		}
		return nil, nil, false
	})

	member := func(name string) (*Source, <-chan *message.Message) {
		cfg := Config{
			Kafka:          seeds(brokers, kgo.ClientID("member-"+name)),
			Group:          group,
			Topics:         []string{topic},
			MaxInFlight:    20,
			MaxBatch:       5,
			DrainTimeout:   5 * time.Second,
			CommitInterval: 50 * time.Millisecond,
			OnAssigned: func(_ context.Context, tps []event.TopicPartition) error {
				mu.Lock()
				defer mu.Unlock()
				for _, tp := range tps {
					owned[name][tp.Partition] = true
				}
				return nil
			},
			OnRevoked: func(_ context.Context, tps []event.TopicPartition) {
				mu.Lock()
				defer mu.Unlock()
				for _, tp := range tps {
					delete(owned[name], tp.Partition)
				}
				if name == "a" {
					revokedA += len(tps)
				}
			},
		}
		src, ch := start(t, cfg)
		go func() {
			for msg := range ch {
				mu.Lock()
				inFlight[name]++
				mu.Unlock()
				go func() {
					time.Sleep(time.Duration(5+rand.IntN(10)) * time.Millisecond)
					b := BatchOf(msg)
					mu.Lock()
					inFlight[name]--
					nack := rand.IntN(40) == 0
					if !nack {
						for _, r := range b.Records {
							acked[b.Partition][r.Offset] = true
						}
						ackedBy[name] += len(b.Records)
					}
					mu.Unlock()
					if nack {
						msg.Nack()
					} else {
						msg.Ack()
					}
				}()
			}
		}()
		return src, ch
	}

	a, _ := member("a")
	waitFor(t, 30*time.Second, "member a to ack 1000 records", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ackedBy["a"] >= 1000
	})
	mu.Lock()
	aInFlight := inFlight["a"]
	mu.Unlock()
	if aInFlight == 0 {
		t.Error("member a had nothing in flight when b joined; the test proves less than it claims")
	}
	b, _ := member("b")
	waitFor(t, 30*time.Second, "member b to take partitions from a", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return revokedA > 0 && len(owned["b"]) > 0
	})
	waitFor(t, 60*time.Second, "every partition to be committed to its end", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for p := range int32(partitions) {
			if lastCommit[p] != perPartition {
				return false
			}
		}
		return true
	})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, v := range violations {
		t.Error(v)
	}
	if ackedBy["b"] == 0 {
		t.Error("member b acked nothing")
	}
	got := committed(t, brokers, group, topic)
	for p := range int32(partitions) {
		if got[p] != perPartition {
			t.Errorf("committed %v, want %d everywhere", got, perPartition)
			break
		}
	}
	if len(owned["a"])+len(owned["b"]) != 0 {
		t.Errorf("partitions still owned after close: %v", owned)
	}
}
