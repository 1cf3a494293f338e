package kafkaconn

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
)

// BenchmarkCompressors: produce batches of BidPlaced payloads (16 KiB, 128 KiB, 1 MiB)
// compressed by franz-go's lz4 (4 MiB blocks), by the producer's lz4 (256 KiB blocks) and by
// franz-go's snappy, the producers' default.
//
//	go test ./internal/kafkaconn -run '^$' -bench Compressors -benchmem
func BenchmarkCompressors(b *testing.B) {
	_, file, _, _ := runtime.Caller(0)
	reg, err := contract.Load(filepath.Join(filepath.Dir(file), "..", "..", "contracts"))
	if err != nil {
		b.Fatal(err)
	}
	gen, err := eventgen.New(reg, eventgen.Options{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var src []byte
	for len(src) < 1<<20 {
		ev, err := gen.Make(eventgen.BidPlaced, eventgen.Valid, contract.Confluent)
		if err != nil {
			b.Fatal(err)
		}
		src = append(src, ev.Payload...)
	}
	franz, err := kgo.DefaultCompressor(kgo.Lz4Compression())
	if err != nil {
		b.Fatal(err)
	}
	snappy, err := kgo.DefaultCompressor(kgo.SnappyCompression())
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		c    kgo.Compressor
	}{{"lz4-franz-go", franz}, {"lz4-256KiB-blocks", newLz4Compressor()}, {"snappy", snappy}} {
		// Produce batches of a lane are tens to hundreds of KiB; 1 MiB is max_record_bytes.
		for _, size := range []int{16 << 10, 128 << 10, 1 << 20} {
			src := src[:size]
			b.Run(fmt.Sprintf("%s/%dKiB", c.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(len(src)))
				b.ReportAllocs()
				var dst bytes.Buffer
				var out []byte
				for b.Loop() {
					dst.Reset()
					out, _ = c.c.Compress(&dst, src)
				}
				b.ReportMetric(float64(len(src))/float64(len(out)), "ratio")
			})
		}
	}
}
