package kafkaconn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// ErrTooLarge is wrapped by produce errors of records that are larger than the producer's
// max_record_bytes or than the topic accepts: retrying cannot help.
var ErrTooLarge = errors.New("record too large")

// ProducerOptions configure a Producer beyond the cluster connection.
type ProducerOptions struct {
	// Compression is none, gzip, snappy (the default, for ""), lz4 or zstd.
	Compression string
	// MaxRecordBytes bounds one record batch, and so one record (0: 1 MiB, the broker's
	// default message.max.bytes).
	MaxRecordBytes int
	// DeliveryTimeout bounds how long a record may wait to be acknowledged, retries included
	// (0: 2 minutes). An expired record fails with a transient error.
	DeliveryTimeout time.Duration
	// Metrics, when set, receives franz-go's client metrics (kprom) labelled client=Name.
	Metrics prometheus.Registerer
	// Name labels the client's metrics.
	Name string
	// TransactionalID makes the producer transactional (see Begin and Commit) when set.
	TransactionalID string
	// TransactionTimeout bounds an open transaction (0: 10s).
	TransactionTimeout time.Duration
	// Extra options, appended last (tests).
	Extra []kgo.Opt
}

// DefaultMaxRecordBytes is the default max_record_bytes: 1 MiB, the broker's default
// message.max.bytes.
const DefaultMaxRecordBytes = 1 << 20

// Producer produces records through one franz-go client. It is goroutine-safe.
//
// Keyed records are partitioned with murmur2, as the Java client and franz-go's default do, so
// output keys are co-partitioned with every other producer of them; records of one key keep
// their order (idempotent producer, acks from all in-sync replicas).
type Producer struct {
	cl *kgo.Client
}

// NewProducer connects a producer to the cluster described by base (see FranzOpts).
func NewProducer(base []kgo.Opt, opt ProducerOptions) (*Producer, error) {
	codec, err := compressionCodec(opt.Compression)
	if err != nil {
		return nil, err
	}
	if opt.MaxRecordBytes <= 0 {
		opt.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if opt.DeliveryTimeout <= 0 {
		opt.DeliveryTimeout = 2 * time.Minute
	}
	opts := append([]kgo.Opt{}, base...)
	if codec == kgo.Lz4Compression() {
		opts = append(opts, kgo.WithCompressor(newLz4Compressor()))
	} else {
		opts = append(opts, kgo.ProducerBatchCompression(codec))
	}
	opts = append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(int32(min(opt.MaxRecordBytes, 1<<30))),
		kgo.RecordDeliveryTimeout(opt.DeliveryTimeout),
		// The default partitioner: murmur2 for keyed records, as the Java client does;
		// uniform sticky batches for unkeyed ones (KIP-794).
		kgo.MaxBufferedRecords(100_000),
		// As the Java client and sarama do: a broker with auto.create.topics.enable creates a
		// missing output topic on first use.
		kgo.AllowAutoTopicCreation(),
	)
	if opt.TransactionalID != "" {
		if opt.TransactionTimeout <= 0 {
			opt.TransactionTimeout = 10 * time.Second
		}
		opts = append(opts, kgo.TransactionalID(opt.TransactionalID), kgo.TransactionTimeout(opt.TransactionTimeout))
	}
	if opt.Metrics != nil {
		opts = append(opts, ClientMetrics(opt.Metrics, opt.Name))
	}
	opts = append(opts, opt.Extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("connect kafka producer: %w", err)
	}
	return &Producer{cl: cl}, nil
}

// ClientMetrics returns the option that exports a client's franz-go metrics (kprom) on reg,
// labelled client=name. A closed client's metrics are unregistered.
func ClientMetrics(reg prometheus.Registerer, name string) kgo.Opt {
	return kgo.WithHooks(kprom.NewMetrics("switchyard_kafka",
		kprom.Registerer(reg), kprom.WithStaticLabel(prometheus.Labels{"client": name})))
}

func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "", "snappy":
		return kgo.SnappyCompression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown compression %q", name)
}

// Client is the underlying franz-go client.
func (p *Producer) Client() *kgo.Client { return p.cl }

// Produce produces every record and returns once each is acknowledged or failed. It returns
// nil, or the index and error of every record that was not acknowledged (the others were).
// Errors of records too large to produce wrap ErrTooLarge. Records must not be reused until
// Produce returns.
func (p *Producer) Produce(ctx context.Context, recs []*kgo.Record) map[int]error {
	if len(recs) == 0 {
		return nil
	}
	var (
		mu     sync.Mutex
		failed map[int]error
		index  map[*kgo.Record]int // built at the first failure
		wg     sync.WaitGroup
	)
	// One promise for the whole call, not a closure per record: a failed record's index is
	// looked up by pointer (failures are rare, records are many).
	promise := func(r *kgo.Record, err error) {
		defer wg.Done()
		if err == nil {
			return
		}
		err = produceError(r.Topic, err)
		mu.Lock()
		if failed == nil {
			failed = map[int]error{}
			index = make(map[*kgo.Record]int, len(recs))
			for i, r := range recs {
				index[r] = i
			}
		}
		failed[index[r]] = err
		mu.Unlock()
	}
	wg.Add(len(recs))
	for _, r := range recs {
		p.cl.Produce(ctx, r, promise)
	}
	wg.Wait()
	return failed
}

// produceError describes a failed produce, marking size refusals with ErrTooLarge.
func produceError(topic string, err error) error {
	if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
		return fmt.Errorf("produce to %s: %w: %w", topic, ErrTooLarge, err)
	}
	return fmt.Errorf("produce to %s: %w", topic, err)
}

// ProduceAll is Produce for callers that need every record or none: it returns the first
// error, if any record failed.
func (p *Producer) ProduceAll(ctx context.Context, recs []*kgo.Record) error {
	failed := p.Produce(ctx, recs)
	for i, err := range failed {
		return fmt.Errorf("%d of %d records not acknowledged (record %d: %w)", len(failed), len(recs), i, err)
	}
	return nil
}

// Close flushes nothing (Produce waits for every record) and closes the client.
func (p *Producer) Close() error {
	p.cl.Close()
	return nil
}
