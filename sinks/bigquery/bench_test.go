package bigquery

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
)

// benchProto is an order-paid-like event: ids, money, an enum, a timestamp, a nested record,
// repeated records and a map; about 250 bytes encoded.
const benchProto = `
syntax = "proto3";
package bench.v1;
import "google/protobuf/timestamp.proto";
enum Method { METHOD_UNSPECIFIED = 0; METHOD_CARD = 1; METHOD_WALLET = 2; }
message Money { string currency = 1; int64 units = 2; int32 nanos = 3; }
message Line { string sku = 1; uint32 quantity = 2; Money price = 3; }
message OrderPaid {
  string order_id = 1;
  string buyer_id = 2;
  string seller_id = 3;
  Money total = 4;
  Method method = 5;
  google.protobuf.Timestamp paid_at = 6;
  repeated Line lines = 7;
  map<string, string> attributes = 8;
  bool first_order = 9;
  uint64 stream_id = 10;
}`

func benchRecords(b *testing.B, n int) []*event.Record {
	md := compileProto(b, "bench.v1.OrderPaid", map[string]string{"bench/v1/order.proto": benchProto})
	recs := make([]*event.Record, n)
	for i := range recs {
		m := dynamicpb.NewMessage(md)
		js := fmt.Sprintf(`{"orderId": "ord-%08d", "buyerId": "buyer-%d", "sellerId": "seller-%d",
			"total": {"currency": "EUR", "units": "%d", "nanos": 500000000}, "method": "METHOD_CARD",
			"paidAt": "2026-11-26T12:00:%02d.%03dZ",
			"lines": [{"sku": "sku-%d", "quantity": 2, "price": {"currency": "EUR", "units": "10"}},
			          {"sku": "sku-%d", "quantity": 1, "price": {"currency": "EUR", "units": "%d"}}],
			"attributes": {"channel": "live", "show": "show-%d"}, "firstOrder": %v, "streamId": "%d"}`,
			i, i%977, i%131, 20+i%50, i%60, i%1000, i%300, i%301, i%40, i%97, i%7 == 0, uint64(i)*7919)
		if err := protojson.Unmarshal([]byte(js), m); err != nil {
			b.Fatal(err)
		}
		v, _ := proto.Marshal(m)
		recs[i] = &event.Record{Topic: "orders.paid", Partition: int32(i % 4), Offset: int64(i / 4),
			Timestamp: time.Now(), Value: v, Message: m, Contract: string(md.FullName())}
	}
	return recs
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWrite measures rows through the sink and the real client library into the fake,
// in batches of 1000 rows over 4 partitions. One op is one row. cpu-µs/row counts the whole
// process, the fake's decoding and checks included.
func BenchmarkWrite(b *testing.B) {
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			e := newFakeEnv(b)
			table := e.table("bench")
			recs := benchRecords(b, 4000)
			cfg := e.config(table)
			cfg.EventTimeField = "paid_at"
			cfg.ExactlyOnce = mode.exactlyOnce
			s := e.open(b, cfg, recs[0].Message.Descriptor())
			const batch = 1000
			ctx := context.Background()
			offset := int64(0)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for n := 0; n < b.N; n += batch {
				chunk := recs[(n/batch*batch)%len(recs):][:min(batch, b.N-n)]
				for i, r := range chunk {
					r.Offset = offset + int64(i/4) // exactly_once skips offsets it has seen
				}
				offset += int64(len(chunk))
				if err := s.Write(ctx, chunk); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			used := cpuTime() - cpu
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/row")
			if got := e.fake.RowCount(testProject, testDataset, table); got < b.N {
				b.Fatalf("%d rows landed, want %d", got, b.N)
			}
		})
	}
}

// BenchmarkEncode measures the sink's serialization alone (events to rows). One op is one
// row.
// BenchmarkEncode: rows from decoded messages (message) and, as a lane of a binary pipeline
// hands them over (sinks.PayloadWriter), transcoded from payloads (payload).
func BenchmarkEncode(b *testing.B) {
	for _, mode := range []string{"message", "payload"} {
		b.Run(mode, func(b *testing.B) {
			recs := benchRecords(b, 1000)
			opt := Options{}
			if mode == "payload" {
				opt.Input = contract.Raw
				for _, r := range recs {
					r.Message = nil
				}
			}
			s, err := New(Config{Project: "p", Dataset: "d", EventTimeField: "paid_at"}, opt,
				sinks.Deps{Schema: compileProto(b, "bench.v1.OrderPaid", map[string]string{"bench/v1/order.proto": benchProto})})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			bytes := 0
			for n := 0; n < b.N; n += len(recs) {
				batch := s.encode(recs[:min(len(recs), b.N-n)])
				if len(batch.failed) > 0 {
					b.Fatal(batch.failed)
				}
				for _, r := range batch.rows {
					bytes += len(r)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(bytes)/float64(b.N), "bytes/row")
		})
	}
}
