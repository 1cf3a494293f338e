package clickhouse

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/switchyard-dev/switchyard/internal/config"
)

// Config is the clickhouse sink's section of a sink (see docs/sinks.md).
type Config struct {
	Addresses     []string      `yaml:"addresses" doc:"Native-protocol addresses, host:port." required:"true" example:"[\"localhost:9000\"]"`
	Database      string        `yaml:"database" doc:"Database." default:"default"`
	Table         string        `yaml:"table" doc:"Table; derived from the contract name when empty (auctions.v1.BidPlaced -> auctions_v1_bid_placed)."`
	Username      string        `yaml:"username" doc:"User." default:"default"`
	Password      string        `yaml:"password" doc:"Password." secret:"true"`
	PasswordFile  string        `yaml:"password_file" doc:"File holding the password, instead of password."`
	TLS           config.TLS    `yaml:"tls" doc:"TLS to the server."`
	CreateTable   bool          `yaml:"create_table" doc:"Create the table from the contract when it does not exist (see docs/sinks.md for the type mapping)." default:"false"`
	AddColumns    bool          `yaml:"add_columns" doc:"Add columns for fields the contract gained (ALTER TABLE ... ADD COLUMN) at start-up; when false a missing column stops the sink." default:"true"`
	Engine        string        `yaml:"engine" doc:"Table engine for create_table." default:"MergeTree()" example:"ReplicatedMergeTree('/clickhouse/tables/{shard}/bids', '{replica}')"`
	OrderBy       string        `yaml:"order_by" doc:"ORDER BY expression for create_table; keep _topic, _partition, _offset first so the de-duplication lookups use the primary key." default:"_topic, _partition, _offset"`
	PartitionBy   string        `yaml:"partition_by" doc:"PARTITION BY expression for create_table; empty for none." default:"toYYYYMM(_event_time)"`
	AsyncInsert   bool          `yaml:"async_insert" doc:"Insert with async_insert=1 and wait_for_async_insert=1 (ClickHouse 21.11+); the sink refuses to start on older servers." default:"false"`
	InsertTimeout time.Duration `yaml:"insert_timeout" doc:"Longest one INSERT, or one look-up of landed offsets for de-duplication, may take (connecting included) before it counts as failed and the engine retries it." default:"30s"`
	DialTimeout   time.Duration `yaml:"dial_timeout" doc:"Longest a connection attempt may take." default:"5s"`
	Compression   string        `yaml:"compression" doc:"Native-protocol block compression." default:"lz4" enum:"none|lz4|zstd"`
	MaxOpenConns  int           `yaml:"max_open_conns" doc:"Most connections open to the server at once; keep it above the sink's max_in_flight." default:"8"`
}

// Defaults for keys a hand-built config leaves at the zero value (the loader fills them from
// the default tags of Config; keep the two equal).
const (
	defaultDatabase      = "default"
	defaultUsername      = "default"
	defaultEngine        = "MergeTree()"
	defaultOrderBy       = "_topic, _partition, _offset"
	defaultInsertTimeout = 30 * time.Second
	defaultDialTimeout   = 5 * time.Second
	defaultCompression   = "lz4"
	defaultMaxOpenConns  = 8
	// dedupWindow is non_replicated_deduplication_window for tables the sink creates on
	// servers with insert_deduplication_token: how many recent insert tokens the table keeps.
	dedupWindow = 1000
)

// withDefaults returns a copy of c with zero values replaced by their defaults. PartitionBy
// and the booleans keep their zero values: the loader has already applied their defaults, and
// an empty partition_by means "no partition key".
func withDefaults(c Config) Config {
	set := func(p *string, def string) {
		if *p == "" {
			*p = def
		}
	}
	set(&c.Database, defaultDatabase)
	set(&c.Username, defaultUsername)
	set(&c.Engine, defaultEngine)
	set(&c.OrderBy, defaultOrderBy)
	set(&c.Compression, defaultCompression)
	if c.InsertTimeout <= 0 {
		c.InsertTimeout = defaultInsertTimeout
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = defaultDialTimeout
	}
	if c.MaxOpenConns <= 0 {
		c.MaxOpenConns = defaultMaxOpenConns
	}
	return c
}

// options builds the clickhouse-go options of c.
func options(c Config) (*ch.Options, error) {
	if len(c.Addresses) == 0 {
		return nil, errors.New("clickhouse: addresses is empty")
	}
	password := c.Password
	switch {
	case c.Password != "" && c.PasswordFile != "":
		return nil, errors.New("clickhouse: set password or password_file, not both")
	case c.PasswordFile != "":
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("clickhouse: read password_file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	tlsCfg, err := tlsConfig(c.TLS)
	if err != nil {
		return nil, err
	}
	var method ch.CompressionMethod
	switch c.Compression {
	case "none":
		method = ch.CompressionNone
	case "lz4":
		method = ch.CompressionLZ4
	case "zstd":
		method = ch.CompressionZSTD
	default:
		return nil, fmt.Errorf("clickhouse: unknown compression %q (want none, lz4 or zstd)", c.Compression)
	}
	return &ch.Options{
		Protocol:     ch.Native,
		Addr:         c.Addresses,
		Auth:         ch.Auth{Database: c.Database, Username: c.Username, Password: password},
		TLS:          tlsCfg,
		DialTimeout:  c.DialTimeout,
		MaxOpenConns: c.MaxOpenConns,
		MaxIdleConns: c.MaxOpenConns,
		Compression:  &ch.Compression{Method: method},
		ClientInfo:   ch.ClientInfo{Products: []struct{ Name, Version string }{{Name: "switchyard"}}},
	}, nil
}

// tlsConfig is t's client TLS configuration, or nil when TLS is disabled.
func tlsConfig(t config.TLS) (*tls.Config, error) {
	c, err := t.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	return c, nil
}
