package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"switchyard/integration/harness"
	"switchyard/sinks/kafka"
)

// BenchmarkProducer measures the watermill-kafka publishing path alone against a real broker.
func BenchmarkProducer(b *testing.B) {
	k := harness.StartKafka(b)
	topic := fmt.Sprintf("bench-producer-%d", time.Now().UnixNano())
	k.CreateTopic(b, topic, 8)
	for _, par := range []int{64, 512, 2048} {
		b.Run(fmt.Sprint("parallel=", par), func(b *testing.B) {
			p, err := kafka.NewProducer(k.Brokers(), nil, par, "")
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			recs := make([]kafka.Outgoing, 10000)
			for i := range recs {
				recs[i] = kafka.Outgoing{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: make([]byte, 200)}
			}
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if err := p.ProduceAll(context.Background(), recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(recs))/time.Since(start).Seconds(), "records/s")
		})
	}
}

// BenchmarkFranzProducer is the same load through franz-go's producer, for comparison.
func BenchmarkFranzProducer(b *testing.B) {
	k := harness.StartKafka(b)
	topic := fmt.Sprintf("bench-franz-%d", time.Now().UnixNano())
	k.CreateTopic(b, topic, 8)
	cl := k.NewClient(b)
	recs := make([]*kgo.Record, 10000)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: make([]byte, 200)}
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/time.Since(start).Seconds(), "records/s")
}
