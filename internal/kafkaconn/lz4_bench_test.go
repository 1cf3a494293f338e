package kafkaconn

import (
	"bytes"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
)

// BenchmarkLz4: one 1 MiB produce batch of BidPlaced payloads compressed by franz-go's lz4
// (4 MiB blocks) and by the producer's (256 KiB blocks).
//
//	go test ./internal/kafkaconn -run '^$' -bench Lz4 -benchmem
func BenchmarkLz4(b *testing.B) {
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
	for _, c := range []struct {
		name string
		c    kgo.Compressor
	}{{"franz-go", franz}, {"256KiB-blocks", newLz4Compressor()}} {
		b.Run(c.name, func(b *testing.B) {
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
