package kafka_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/integration/harness"
	"github.com/switchyard-dev/switchyard/internal/kafkaconn"
)

// BenchmarkProducer measures the router's publishing path (kafkaconn.Producer, as the kafka
// sink and the dead-letter writer use it) alone against a real broker: one Produce call per
// batch of 10,000 records, returning once all are acknowledged.
func BenchmarkProducer(b *testing.B) {
	k := harness.StartKafka(b)
	topic := fmt.Sprintf("bench-producer-%d", time.Now().UnixNano())
	k.CreateTopic(b, topic, 8)
	p, err := kafkaconn.NewProducer([]kgo.Opt{kgo.SeedBrokers(k.Brokers()...)}, kafkaconn.ProducerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	recs := make([]*kgo.Record, 10000)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: make([]byte, 200)}
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for range b.N {
		if err := p.ProduceAll(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	report(b, b.N*len(recs), time.Since(start), cpuTime()-cpu0)
}

// BenchmarkFranzProducer is the same load through franz-go's producer (asynchronous produce,
// then Flush, as it is used at scale), for comparison: the cost of kafkaconn.Producer's
// per-batch bookkeeping on top of the client.
func BenchmarkFranzProducer(b *testing.B) {
	k := harness.StartKafka(b)
	topic := fmt.Sprintf("bench-franz-%d", time.Now().UnixNano())
	k.CreateTopic(b, topic, 8)
	cl := k.NewClient(b, kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.RequiredAcks(kgo.AllISRAcks()))
	recs := make([]*kgo.Record, 10000)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: make([]byte, 200)}
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for range b.N {
		for _, r := range recs {
			cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
			})
		}
		if err := cl.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	report(b, b.N*len(recs), time.Since(start), cpuTime()-cpu0)
}

// report adds records/s and the test process's CPU-µs per record (user + system; the broker
// runs in another process).
func report(b *testing.B, n int, elapsed, cpu time.Duration) {
	b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/record")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
