package source

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-dev/switchyard/integration/harness"
)

// tapReader consumes a Source's messages, checks that every partition's records arrive once
// and in order, and acks them while acking is on.
type tapReader struct {
	t      *testing.T
	tapped atomic.Int64 // records the source took from the tap (OnTapped)

	mu   sync.Mutex
	next map[int32]int64
	held []*message.Message
	hold bool
	err  error
}

func newTapReader(t *testing.T, hold bool) *tapReader {
	return &tapReader{t: t, next: make(map[int32]int64), hold: hold}
}

func (r *tapReader) run(ch <-chan *message.Message) {
	for msg := range ch {
		b := BatchOf(msg)
		r.mu.Lock()
		for _, rec := range b.Records {
			if want := r.next[b.Partition]; rec.Offset != want && r.err == nil {
				r.err = fmt.Errorf("partition %d: offset %d, want %d", b.Partition, rec.Offset, want)
			}
			r.next[b.Partition] = rec.Offset + 1
		}
		if r.hold {
			r.held = append(r.held, msg)
		} else {
			msg.Ack()
		}
		r.mu.Unlock()
	}
}

// release acks what is held and every later message.
func (r *tapReader) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold = false
	for _, m := range r.held {
		m.Ack()
	}
	r.held = nil
}

// received is how many records of partitions 0..n-1 arrived, in order, without a gap.
func (r *tapReader) received(n int32) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		r.t.Fatal(r.err)
	}
	var sum int64
	for p := range n {
		sum += r.next[p]
	}
	return sum
}

func tapConfig(brokers []string, group, topic string, tap *Tap, rank int, r *tapReader) Config {
	return Config{Kafka: seeds(brokers), Group: group, Topics: []string{topic}, MaxBatch: 100,
		CommitInterval: 50 * time.Millisecond, Tap: tap, TapRank: rank,
		OnTapped: func(n int) { r.tapped.Add(int64(n)) }}
}

// startTapPair starts a leader and, once the leader has the first records of each of
// partitions, a follower on the same tap, and waits until the follower has them too: from
// then on the follower can attach. edit adjusts the configurations before they start.
func startTapPair(t *testing.T, brokers []string, topic string, tap *Tap, partitions int32, first int64,
	lead, follow *tapReader, edit func(lead, follow *Config)) (ls, fs *Source) {
	t.Helper()
	lcfg := tapConfig(brokers, topic+"-lead", topic, tap, 0, lead)
	fcfg := tapConfig(brokers, topic+"-follow", topic, tap, 1, follow)
	if edit != nil {
		edit(&lcfg, &fcfg)
	}
	ls, lch := start(t, lcfg)
	go lead.run(lch)
	waitFor(t, 30*time.Second, "the leader's first records", func() bool { return lead.received(partitions) == int64(partitions)*first })
	fs, fch := start(t, fcfg)
	go follow.run(fch)
	waitFor(t, 30*time.Second, "the follower's first records", func() bool { return follow.received(partitions) == int64(partitions)*first })
	return ls, fs
}

// TestTap_follower_takes_the_leaders_fetches: a follower that reached the leader's position
// takes the records the leader fetches instead of fetching them; both see every record once,
// in order, and commit everything.
func TestTap_follower_takes_the_leaders_fetches(t *testing.T) {
	testTapShares(t, newCluster(t), "tap")
}

// TestTap_follower_takes_the_leaders_fetches_realKafka is the same against Apache Kafka.
func TestTap_follower_takes_the_leaders_fetches_realKafka(t *testing.T) {
	testTapShares(t, harness.StartKafka(t).Brokers(), "tap-real")
}

func testTapShares(t *testing.T, brokers []string, topic string) {
	const first, more, rounds = 100, 500, 10
	createTopic(t, brokers, topic, 2)
	for p := range int32(2) {
		produce(t, brokers, topic, p, first)
	}
	tap := NewTap(time.Second)
	lead, follow := newTapReader(t, false), newTapReader(t, false)
	ls, fs := startTapPair(t, brokers, topic, tap, 2, first, lead, follow, nil)
	for range rounds {
		for p := range int32(2) {
			produce(t, brokers, topic, p, more)
		}
	}
	total := int64(2 * (first + more*rounds))
	waitFor(t, 30*time.Second, "every record in both", func() bool {
		return lead.received(2) == total && follow.received(2) == total
	})
	if got := follow.tapped.Load(); got < total/2 {
		t.Errorf("the follower took %d of %d records from the tap, want most of the %d produced after it started", got, total, 2*more*rounds)
	}
	if got := lead.tapped.Load(); got != 0 {
		t.Errorf("the leader took %d records from the tap", got)
	}
	for _, s := range []*Source{ls, fs} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for p, off := range committed(t, brokers, s.cfg.Group, topic) {
			if off != total/2 {
				t.Errorf("group %s committed %d on partition %d, want %d", s.cfg.Group, off, p, total/2)
			}
		}
	}
}

// TestTap_slow_follower_detaches: a follower whose sink holds everything falls behind; the
// leader does not wait for it, and once it acks it fetches the rest for itself, every record
// once and in order.
func TestTap_slow_follower_detaches(t *testing.T) {
	const first, more = 50, 3000
	brokers := newCluster(t)
	topic := "tap-slow"
	createTopic(t, brokers, topic, 1)
	produce(t, brokers, topic, 0, first)
	tap := NewTap(time.Second)
	lead, follow := newTapReader(t, false), newTapReader(t, true)
	const limit = 200
	_, fs := startTapPair(t, brokers, topic, tap, 1, first, lead, follow, func(_, f *Config) { f.MaxInFlight = limit })
	for range 30 {
		produce(t, brokers, topic, 0, more/30)
	}
	waitFor(t, 30*time.Second, "every record in the leader, with the follower holding its own", func() bool {
		return lead.received(1) == first+more
	})
	// What the follower holds (fetched or taken, not acked): its limit and one offer past
	// it, not every record the leader fetched.
	fs.mu.RLock()
	p := fs.parts[tpKey{topic, 0}]
	fs.mu.RUnlock()
	p.mu.Lock()
	held := p.pendingN + p.inflightN
	p.mu.Unlock()
	if held > 2*limit {
		t.Fatalf("the follower that acks nothing holds %d records, limit %d", held, limit)
	}
	follow.release()
	waitFor(t, 30*time.Second, "every record in the follower", func() bool { return follow.received(1) == first+more })
	if follow.tapped.Load() == 0 {
		t.Error("the follower never took records from the tap; the test proves nothing")
	}
}

// TestTap_stuck_leader_releases_its_followers: a leader that stops fetching (its sink acks
// nothing) holds its followers for at most the patience; then they fetch for themselves. When
// the leader leaves, its followers go on.
func TestTap_stuck_leader_releases_its_followers(t *testing.T) {
	const first, more = 50, 3000
	brokers := newCluster(t)
	topic := "tap-stuck"
	createTopic(t, brokers, topic, 1)
	produce(t, brokers, topic, 0, first)
	tap := NewTap(200 * time.Millisecond)
	lead, follow := newTapReader(t, true), newTapReader(t, false)
	const limit = 200
	ls, _ := startTapPair(t, brokers, topic, tap, 1, first, lead, follow, func(l, _ *Config) { l.MaxInFlight = limit })
	for range 30 {
		produce(t, brokers, topic, 0, more/30)
	}
	waitFor(t, 30*time.Second, "every record in the follower while the leader is stuck", func() bool {
		return follow.received(1) == first+more
	})
	if got := lead.received(1); got > first+2*limit {
		t.Fatalf("the stuck leader received %d records, over its in-flight limit", got)
	}
	if follow.tapped.Load() == 0 {
		t.Error("the follower never took records from the tap; the test proves nothing")
	}
	lead.release()
	if err := ls.Close(); err != nil {
		t.Fatal(err)
	}
	produce(t, brokers, topic, 0, more)
	waitFor(t, 30*time.Second, "the records produced after the leader left", func() bool {
		return follow.received(1) == first+2*more
	})
}
