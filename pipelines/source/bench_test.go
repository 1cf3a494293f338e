package source

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	benchTopic      = "bench"
	benchPartitions = 8
	benchRecords    = 1_000_000
	kfakeServerEnv  = "SWITCHYARD_SOURCE_KFAKE_SERVER"
)

// TestMain doubles as an in-process Kafka server for the throughput benchmark, which runs it in
// a child process so that the broker's allocations and heap stay out of the measurements.
func TestMain(m *testing.M) {
	if os.Getenv(kfakeServerEnv) != "" {
		serveKfake()
		return
	}
	os.Exit(m.Run())
}

// serveKfake runs a one-broker cluster with the bench topic, prints its address and serves
// until stdin is closed.
func serveKfake() {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(benchPartitions, benchTopic))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(strings.Join(c.ListenAddrs(), ","))
	_, _ = io.Copy(io.Discard, os.Stdin)
	c.Close()
}

var (
	benchOnce    sync.Once
	benchBrokers []string
	benchErr     error
	benchChild   *exec.Cmd      // kept reachable: its stdin pipe is the child's lifeline
	benchStdin   io.WriteCloser // closed by nobody; the child exits when we do
)

// benchCluster starts the child broker once per test binary and fills the bench topic with
// benchRecords records of 16 bytes, spread evenly over its partitions.
func benchCluster(b *testing.B) []string {
	benchOnce.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			benchErr = err
			return
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), kfakeServerEnv+"=1")
		cmd.Stderr = os.Stderr
		benchChild = cmd
		if benchStdin, err = cmd.StdinPipe(); err != nil {
			benchErr = err
			return
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			benchErr = err
			return
		}
		if err := cmd.Start(); err != nil {
			benchErr = fmt.Errorf("start kfake child: %w", err)
			return
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			benchErr = fmt.Errorf("read kfake child address: %w", err)
			return
		}
		benchBrokers = strings.Split(strings.TrimSpace(line), ",")
		benchErr = fillBench(benchBrokers)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchBrokers
}

func fillBench(brokers []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return err
	}
	defer cl.Close()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wg.Add(benchRecords)
	for i := range benchRecords {
		r := &kgo.Record{Topic: benchTopic, Partition: int32(i % benchPartitions), Value: fmt.Appendf(nil, "event-%010d", i)}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	return firstErr
}

// BenchmarkSourceThroughput consumes and acks benchRecords pre-produced records (8 partitions,
// 16-byte values) from a broker in a child process, with the default limits. One op is one
// pass over all of them, from Subscribe to the last ack, in a fresh group. The per-record
// figures cover the franz-go client and the source, not the broker.
func BenchmarkSourceThroughput(b *testing.B) {
	brokers := benchCluster(b)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var (
		elapsed          time.Duration
		mallocs, bytes   uint64
		messages, recNum int
	)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		src, err := New(Config{
			Kafka:  []kgo.Opt{kgo.SeedBrokers(brokers...)},
			Group:  fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i),
			Topics: []string{benchTopic},
		}, log)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		start := time.Now()
		ch, err := src.Subscribe(context.Background(), benchTopic)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for n < benchRecords {
			msg := <-ch
			n += len(BatchOf(msg).Records)
			messages++
			msg.Ack()
		}
		elapsed += time.Since(start)
		b.StopTimer()
		runtime.ReadMemStats(&after)
		mallocs += after.Mallocs - before.Mallocs
		bytes += after.TotalAlloc - before.TotalAlloc
		recNum += n
		if err := src.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(recNum)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(recNum), "ns/record")
	b.ReportMetric(float64(mallocs)/float64(recNum), "allocs/record")
	b.ReportMetric(float64(bytes)/float64(recNum), "B/record")
	b.ReportMetric(float64(recNum)/float64(messages), "records/message")
}

// fakePauser stands in for the client: it signals resumes so the fake poller can wait.
type fakePauser struct{ resumed chan struct{} }

func (f *fakePauser) PauseFetchPartitions(map[string][]int32) map[string][]int32 { return nil }
func (f *fakePauser) ResumeFetchPartitions(map[string][]int32) {
	select {
	case f.resumed <- struct{}{}:
	default:
	}
}

// BenchmarkSourcePipeline measures the source's own cost per record, without Kafka: a fake
// poller queues chunks of 500 records (as fetches would), the emitter batches them, a
// consumer acks every message and the trackers retire the batches. One op is one record.
func BenchmarkSourcePipeline(b *testing.B) {
	for _, bc := range []struct{ partitions, maxBatch int }{{8, 1000}, {8, 100}, {1, 1000}} {
		b.Run(fmt.Sprintf("partitions=%d/batch=%d", bc.partitions, bc.maxBatch), func(b *testing.B) {
			benchPipeline(b, bc.partitions, bc.maxBatch)
		})
	}
}

func benchPipeline(b *testing.B, partitions, maxBatch int) {
	const chunk = 500
	s, err := New(Config{Group: "bench", Topics: []string{"t"}, MaxBatch: maxBatch},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	s.base = context.Background()
	fake := &fakePauser{resumed: make(chan struct{}, 1)}
	for i := range partitions {
		p := s.newPartition(fake, "t", int32(i), uint64(i), true)
		s.parts[tpKey{"t", int32(i)}] = p
		s.order = append(s.order, p)
		s.wg.Add(1)
		go p.track()
	}
	s.emitDone = make(chan struct{})
	go s.emitLoop()

	recs := make([]*kgo.Record, chunk)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "t", Offset: int64(i), Value: []byte("event-0000000000")}
	}
	done := make(chan struct{})
	go func() {
		n := 0
		for msg := range s.out {
			n += len(BatchOf(msg).Records)
			msg.Ack()
			if n == b.N {
				close(done)
			}
		}
	}()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for queued := 0; queued < b.N; {
		progressed := false
		for _, p := range s.order {
			p.mu.Lock()
			paused := p.paused
			p.mu.Unlock()
			if paused || queued >= b.N {
				continue
			}
			n := min(chunk, b.N-queued)
			p.addPending(recs[:n:n])
			queued += n
			progressed = true
		}
		s.wakeEmitter()
		if !progressed {
			<-fake.resumed
		}
	}
	<-done
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/record")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N), "B/record")

	close(s.closing)
	<-s.emitDone
	for _, p := range s.order {
		p.kill()
	}
	s.wg.Wait()
	close(s.out)
}
