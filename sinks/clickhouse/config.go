package clickhouse

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"switchyard/internal/config"
)

// Defaults for keys a hand-built config leaves at the zero value (the loader fills them from
// the default tags of config.ClickHouse; keep the two equal).
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
func withDefaults(c config.ClickHouse) config.ClickHouse {
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
func options(c config.ClickHouse) (*ch.Options, error) {
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
