package kafkaconn

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The lz4 compressor's frames use 256 KiB blocks and decompress, through franz-go's own
// decompressor, to what went in, for batches smaller and larger than one block.
func TestLz4Compressor_roundtrip(t *testing.T) {
	c := newLz4Compressor()
	dec := kgo.DefaultDecompressor()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 200, 64 << 10, 256 << 10, 1<<20 + 17} {
		src := make([]byte, n)
		for i := range src {
			src[i] = "abcdefgh"[rng.IntN(8)] // compressible, not trivially
		}
		var dst bytes.Buffer
		out, codec := c.Compress(&dst, src)
		if codec != kgo.CodecLz4 {
			t.Fatalf("%d bytes: codec %v, want lz4", n, codec)
		}
		// Frame descriptor: magic (4 bytes), FLG, BD; BD bits 4-6 are the block maximum
		// size, 5 for 256 KiB (7 for lz4's default 4 MiB).
		if len(out) < 6 || out[5]>>4&7 != 5 {
			t.Fatalf("%d bytes: block size code %d, want 5 (256 KiB)", n, out[5]>>4&7)
		}
		got, err := dec.Decompress(bytes.Clone(out), kgo.CodecLz4)
		if err != nil {
			t.Fatalf("%d bytes: decompress: %v", n, err)
		}
		if !bytes.Equal(got, src) {
			t.Fatalf("%d bytes: round trip differs (%d bytes back)", n, len(got))
		}
	}
}
