package kafka

import (
	"time"
)

// Config is the kafka sink's section of a sink: it writes to Kafka topics of the router's
// cluster (the top-level kafka section).
type Config struct {
	Topic       string `yaml:"topic" doc:"Default target topic; a route may name another."`
	Key         string `yaml:"key" doc:"Record key: 'source' keeps the source key, 'none' sends none, or a field path of the event (e.g. bid_id)." default:"source"`
	Encoding    string `yaml:"encoding" doc:"Output encoding. When it equals the input encoding the original bytes pass through untouched." default:"protobuf" enum:"protobuf|confluent|json"`
	SchemaID    int    `yaml:"schema_id" doc:"Confluent schema id written in the frame when encoding is confluent and the input is not."`
	Headers     bool   `yaml:"headers" doc:"Copy the source record's headers." default:"true"`
	Compression string `yaml:"compression" doc:"Compression of produced record batches. snappy (the default) compresses BidPlaced batches 3 times as fast as lz4 here, to a better ratio (BenchmarkCompressors)." default:"snappy" enum:"none|gzip|snappy|lz4|zstd"`
	ExactlyOnce bool   `yaml:"exactly_once" doc:"Write each source batch, its dead letters and the lane's consumed offsets in one Kafka transaction, so read_committed readers see every event once, also after crashes and rebalances; a replaced member (zombie) is fenced (see docs/sinks.md)." default:"false"`
	// TransactionTimeout bounds an open transaction of an exactly_once sink.
	TransactionTimeout time.Duration `yaml:"transaction_timeout" doc:"With exactly_once: how long the broker keeps a transaction of a crashed process open before aborting it; keep it below the source's session_timeout." default:"10s"`
}
