// Package bigquery is the bigquery sink: it appends events to a BigQuery table through the
// Storage Write API (cloud.google.com/go/bigquery/storage/managedwriter), serializing each
// event as a protobuf row of a writer descriptor derived once from the contract.
//
// At start-up (Open) it checks the dataset, creates the table from the contract when asked,
// adds NULLABLE columns for contract fields the table lacks (tables.patch with the table's
// ETag) and refuses to start when the table is incompatible. Rows go to the table's default
// stream (at-least-once) or, with exactly_once, to one committed stream per source
// partition with explicit offsets. docs/sinks.md (section BigQuery) describes the type
// mapping, the exactly-once design and its limits.
package bigquery

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/option"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/config"
	sinktable "github.com/switchyard-dev/switchyard/sinks/table"
)

// Config is the bigquery sink's section of a sink: it writes to BigQuery with the Storage
// Write API (see docs/sinks.md, section BigQuery).
type Config struct {
	Project              string        `yaml:"project" doc:"Google Cloud project that owns the dataset." required:"true"`
	Dataset              string        `yaml:"dataset" doc:"Dataset; it must exist." required:"true"`
	Table                string        `yaml:"table" doc:"Table; derived from the contract name when empty (orders.v1.OrderPaid -> orders_v1_order_paid)."`
	CredentialsFile      string        `yaml:"credentials_file" doc:"Service-account key file (JSON); Application Default Credentials when empty."`
	Endpoint             string        `yaml:"endpoint" doc:"BigQuery REST API base URL, for emulators; Google's when empty." example:"http://localhost:9050"`
	GRPCEndpoint         string        `yaml:"grpc_endpoint" doc:"Storage Write API gRPC address (host:port), for emulators; Google's when empty." example:"localhost:9060"`
	Insecure             bool          `yaml:"insecure" doc:"Talk to endpoint and grpc_endpoint in plaintext and without credentials (emulators only)." default:"false"`
	CreateTable          bool          `yaml:"create_table" doc:"Create the table from the contract at start-up when it does not exist." default:"false"`
	AddColumns           bool          `yaml:"add_columns" doc:"At start-up, add a NULLABLE column for every contract field the table lacks; when false such a table stops the sink." default:"true"`
	EventTimeField       string        `yaml:"event_time_field" doc:"Top-level google.protobuf.Timestamp field of the contract copied into the _event_time column; when empty, occurred_at or event_time if the contract has one. Events where it is unset get the Kafka record timestamp." example:"occurred_at"`
	PartitionField       string        `yaml:"partition_field" doc:"Top-level TIMESTAMP column a created table is time-partitioned by." default:"_event_time"`
	PartitionGranularity string        `yaml:"partition_granularity" doc:"Time-partitioning granularity of a created table; none creates an unpartitioned table." default:"day" enum:"hour|day|month|year|none"`
	Clustering           []string      `yaml:"clustering" doc:"Up to four top-level columns a created table is clustered by." example:"[\"_topic\", \"_partition\"]"`
	ExactlyOnce          bool          `yaml:"exactly_once" doc:"Append through one committed write stream per source partition with offsets, resuming after a restart or rebalance from the highest _offset in the table, so each event lands once (see docs/sinks.md)." default:"false"`
	AppendsInFlight      int           `yaml:"appends_in_flight" doc:"Most append requests awaiting a response on one write stream connection." default:"1000"`
	MaxRequestBytes      config.Bytes  `yaml:"max_request_bytes" doc:"Largest append request; a batch is split into requests of at most this size (the service limit is 10MB)." default:"8MiB"`
	AppendTimeout        time.Duration `yaml:"append_timeout" doc:"Longest the sink waits for one append request to be sent and answered. When it expires the write fails as transient and the engine retries it: the default stream is reconnected, and with exactly_once the stream is finalized and its row count says which rows landed, so none land twice." default:"30s"`
	RequestTimeout       time.Duration `yaml:"request_timeout" doc:"Longest any other call the write path waits on may take: the offset queries of exactly_once and creating or finalizing a write stream. One that expires fails the write as transient, and the engine retries it." default:"1m"`
}

// Options are what the sink needs besides its configuration. The zero value is fine.
type Options struct {
	// REST and GRPC are extra client options for the BigQuery REST client and the Storage
	// Write client, appended after the ones derived from the configuration.
	REST []option.ClientOption
	GRPC []option.ClientOption
	// Input is the encoding the pipeline reads events with. With Raw or Confluent, and a
	// contract whose rows can be transcoded, the sink writes rows from records' payloads
	// (WritesPayload); otherwise (the zero value included) from their decoded messages.
	Input contract.Encoding
}

// Defaults used when a config field holds its zero value (a config built in code rather
// than loaded); the loader fills them from the default tags of Config.
const (
	defaultAppendsInFlight = 1000
	defaultMaxRequestBytes = 8 << 20
	defaultAppendTimeout   = 30 * time.Second
	defaultRequestTimeout  = time.Minute
	// requestLimit is the Write API's limit on one AppendRows request.
	requestLimit = 10_000_000
)

var (
	tableRe   = regexp.MustCompile(`^[\p{L}\p{M}\p{N}\p{Pc}\p{Pd}\p{Zs}]+$`)
	datasetRe = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

// clusterable are the column types BigQuery can cluster by.
var clusterable = []bigquery.FieldType{
	bigquery.StringFieldType, bigquery.IntegerFieldType, bigquery.NumericFieldType,
	bigquery.BigNumericFieldType, bigquery.BooleanFieldType, bigquery.TimestampFieldType,
	bigquery.DateFieldType, bigquery.DateTimeFieldType, bigquery.GeographyFieldType,
}

// settings is the checked configuration.
type settings struct {
	cfg             Config
	table           string
	partitioning    *bigquery.TimePartitioning // nil: unpartitioned
	clustering      *bigquery.Clustering
	appendsInFlight int
	maxRequest      int
	appendTimeout   time.Duration // per append request, from sending it to its answer
	requestTimeout  time.Duration // per other call of the write path (queries, stream RPCs)
}

// check validates cfg against the layout derived from the contract, without connecting.
func check(cfg Config, lay *layout) (*settings, error) {
	s := &settings{cfg: cfg, table: cfg.Table, appendsInFlight: cfg.AppendsInFlight, maxRequest: int(cfg.MaxRequestBytes)}
	var problems []string
	if cfg.Project == "" {
		problems = append(problems, "project is required")
	}
	if !datasetRe.MatchString(cfg.Dataset) || len(cfg.Dataset) > 1024 {
		problems = append(problems, fmt.Sprintf("dataset %q: use letters, digits and underscores", cfg.Dataset))
	}
	if s.table == "" {
		s.table = sinktable.Name(lay.contract.FullName())
	}
	if !tableRe.MatchString(s.table) || len(s.table) > 1024 {
		problems = append(problems, fmt.Sprintf("table %q is not a valid BigQuery table name", s.table))
	}
	if s.appendsInFlight <= 0 {
		s.appendsInFlight = defaultAppendsInFlight
	}
	if s.maxRequest <= 0 {
		s.maxRequest = defaultMaxRequestBytes
	}
	s.appendTimeout, s.requestTimeout = cfg.AppendTimeout, cfg.RequestTimeout
	if s.appendTimeout <= 0 {
		s.appendTimeout = defaultAppendTimeout
	}
	if s.requestTimeout <= 0 {
		s.requestTimeout = defaultRequestTimeout
	}
	if s.maxRequest > requestLimit {
		problems = append(problems, fmt.Sprintf("max_request_bytes %d exceeds the Write API's 10MB request limit", s.maxRequest))
	}
	gran := strings.ToLower(cfg.PartitionGranularity)
	if gran == "" {
		gran = "day"
	}
	if gran != "none" {
		field := cfg.PartitionField
		if field == "" {
			field = sinktable.ColEventTime
		}
		col := lay.column(field)
		switch {
		case col == nil:
			problems = append(problems, fmt.Sprintf("partition_field %q is not a top-level column of the table (contract fields or metadata columns)", field))
		case col.typ != bigquery.TimestampFieldType || col.repeated:
			problems = append(problems, fmt.Sprintf("partition_field %q is a %s column; time partitioning needs a TIMESTAMP", field, col.sqlType()))
		}
		types := map[string]bigquery.TimePartitioningType{
			"hour": bigquery.HourPartitioningType, "day": bigquery.DayPartitioningType,
			"month": bigquery.MonthPartitioningType, "year": bigquery.YearPartitioningType,
		}
		t, ok := types[gran]
		if !ok {
			problems = append(problems, fmt.Sprintf("partition_granularity %q: use hour, day, month, year or none", cfg.PartitionGranularity))
		}
		s.partitioning = &bigquery.TimePartitioning{Type: t, Field: field}
	}
	if len(cfg.Clustering) > 4 {
		problems = append(problems, fmt.Sprintf("clustering names %d columns; BigQuery allows at most 4", len(cfg.Clustering)))
	}
	for _, name := range cfg.Clustering {
		col := lay.column(name)
		switch {
		case col == nil:
			problems = append(problems, fmt.Sprintf("clustering column %q is not a top-level column of the table", name))
		case col.repeated || !slices.Contains(clusterable, col.typ):
			problems = append(problems, fmt.Sprintf("clustering column %q is a %s column, which BigQuery cannot cluster by", name, col.sqlType()))
		}
	}
	if len(cfg.Clustering) > 0 {
		s.clustering = &bigquery.Clustering{Fields: cfg.Clustering}
	}
	if cfg.GRPCEndpoint != "" && strings.Contains(cfg.GRPCEndpoint, "://") {
		problems = append(problems, fmt.Sprintf("grpc_endpoint %q: write host:port, without a scheme", cfg.GRPCEndpoint))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return s, nil
}
