package source

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-dev/switchyard/internal/event"
)

// TestSource_lost_partitions_not_committed: when the group session fails (the broker answers a
// heartbeat with UNKNOWN_MEMBER_ID), the partitions are lost: what was acked is not committed,
// OnRevoked is called, and after rejoining the records come again from the last commit.
func TestSource_lost_partitions_not_committed(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	const topic, group = "lost", "g-lost"
	createTopic(t, brokers, topic, 1)
	produce(t, brokers, topic, 0, 10)

	var commits atomic.Int32
	cluster.ControlKey(kmsg.OffsetCommit.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		commits.Add(1)
		return nil, nil, false
	})
	var (
		mu      sync.Mutex
		revoked []event.TopicPartition
	)
	cfg := Config{
		Kafka:          seeds(brokers, kgo.SessionTimeout(time.Second), kgo.RebalanceTimeout(time.Second)),
		Group:          group,
		Topics:         []string{topic},
		MaxBatch:       1,
		CommitInterval: time.Hour,
		OnRevoked: func(_ context.Context, tps []event.TopicPartition) {
			mu.Lock()
			revoked = append(revoked, tps...)
			mu.Unlock()
		},
	}
	src, ch := start(t, cfg)
	for want := int64(0); want < 5; want++ {
		msg := receive(t, ch, 30*time.Second)
		if got := offsets(msg)[0]; got != want {
			t.Fatalf("got offset %d, want %d", got, want)
		}
		msg.Ack()
	}

	var failed atomic.Bool
	cluster.ControlKey(kmsg.Heartbeat.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if failed.Swap(true) {
			return nil, nil, false
		}
		resp := req.(*kmsg.HeartbeatRequest).ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp, nil, true
	})

	// Records 5.. may still arrive from before the loss; after it, delivery restarts at 0.
	deadline := time.Now().Add(30 * time.Second)
	for {
		msg := receive(t, ch, time.Until(deadline))
		got := offsets(msg)[0]
		msg.Ack()
		if got == 0 {
			break
		}
		if got < 5 {
			t.Fatalf("got offset %d after the loss, want a restart at 0", got)
		}
	}
	if n := commits.Load(); n != 0 {
		t.Errorf("%d offset commits sent, want none", n)
	}
	mu.Lock()
	if len(revoked) != 1 || revoked[0] != (event.TopicPartition{Topic: topic, Partition: 0}) {
		t.Errorf("OnRevoked got %v, want the lost partition", revoked)
	}
	mu.Unlock()
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
}
