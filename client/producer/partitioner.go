package producer

import (
	"encoding/binary"
	"hash"

	"github.com/IBM/sarama"
)

// JavaPartitioner is a sarama partitioner that puts a keyed record in the partition Apache
// Kafka's Java producer would: murmur2 of the key (seed 0x9747b28c), made positive with
// & 0x7fffffff, modulo the partition count. sarama's own NewHashPartitioner (FNV-1a) and
// NewReferenceHashPartitioner (FNV-1a, Java's abs) disagree with the Java client, so a
// topic written by both would split a key across partitions. Records without a key go to a
// random partition.
var JavaPartitioner sarama.PartitionerConstructor = sarama.NewCustomPartitioner(
	sarama.WithAbsFirst(),
	sarama.WithCustomHashFunction(func() hash.Hash32 { return new(murmur2) }),
)

// murmur2 is Kafka's Utils.murmur2 as a hash.Hash32: it buffers the written bytes and
// hashes them in Sum32.
type murmur2 struct{ b []byte }

func (m *murmur2) Write(p []byte) (int, error) { m.b = append(m.b, p...); return len(p), nil }
func (m *murmur2) Reset()                      { m.b = m.b[:0] }
func (m *murmur2) Size() int                   { return 4 }
func (m *murmur2) BlockSize() int              { return 4 }
func (m *murmur2) Sum(b []byte) []byte         { return binary.BigEndian.AppendUint32(b, m.Sum32()) }
func (m *murmur2) Sum32() uint32               { return Murmur2(m.b) }

// Murmur2 is the 32-bit murmur2 hash of Apache Kafka's Utils.murmur2, which the Java
// producer partitions keyed records by.
func Murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := binary.LittleEndian.Uint32(data[i:])
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
