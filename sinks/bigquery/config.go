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

	"switchyard/internal/config"
	sinktable "switchyard/sinks/table"
)

// Options are what the sink needs besides its configuration. The zero value is fine.
type Options struct {
	// REST and GRPC are extra client options for the BigQuery REST client and the Storage
	// Write client, appended after the ones derived from the configuration.
	REST []option.ClientOption
	GRPC []option.ClientOption
}

// Defaults used when a config field holds its zero value (a config built in code rather
// than loaded); the loader fills them from the default tags of config.BigQuery.
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
	cfg             config.BigQuery
	table           string
	partitioning    *bigquery.TimePartitioning // nil: unpartitioned
	clustering      *bigquery.Clustering
	appendsInFlight int
	maxRequest      int
	appendTimeout   time.Duration // per append request, from sending it to its answer
	requestTimeout  time.Duration // per other call of the write path (queries, stream RPCs)
}

// check validates cfg against the layout derived from the contract, without connecting.
func check(cfg config.BigQuery, lay *layout) (*settings, error) {
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
