package clickhouse

import "fmt"

// version is a ClickHouse server version.
type version struct{ major, minor, patch uint64 }

func (v version) String() string { return fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch) }

// features are the server abilities that change the DDL and the INSERT settings. They are
// derived from the server version only, so one code path serves every release and the
// choice is visible in `switchyard plan`.
type features struct {
	version version
	// dateTime64: DateTime64(3, 'UTC') for timestamps; else DateTime('UTC') (seconds).
	dateTime64 bool
	// boolType: Bool for bool fields; else UInt8.
	boolType bool
	// mapType: Map(K, V) for maps with scalar values; else parallel arrays <f>_keys, <f>_values.
	mapType bool
	// addColumnIfNotExists: ALTER TABLE ... ADD COLUMN IF NOT EXISTS.
	addColumnIfNotExists bool
	// dedupToken: the insert_deduplication_token setting and the MergeTree setting
	// non_replicated_deduplication_window.
	dedupToken bool
	// asyncInsert: async_insert and wait_for_async_insert.
	asyncInsert bool
	// asyncDedup: async inserts honour insert_deduplication_token (async_insert_deduplicate).
	asyncDedup bool
}

// Minimum versions of each feature. Conservative: the first release where the feature is
// generally available without an experimental setting.
var (
	minDateTime64     = version{20, 1, 0}
	minBool           = version{22, 1, 0}
	minMap            = version{22, 1, 0}
	minAddIfNotExists = version{20, 1, 0}
	minDedupToken     = version{22, 2, 0}
	minAsyncInsert    = version{21, 11, 0}
	minAsyncDedup     = version{23, 7, 0}
)

func (v version) atLeast(m version) bool {
	return v.major > m.major || (v.major == m.major && v.minor >= m.minor)
}

func featuresOf(v version) features {
	ge := v.atLeast
	return features{
		version:              v,
		dateTime64:           ge(minDateTime64),
		boolType:             ge(minBool),
		mapType:              ge(minMap),
		addColumnIfNotExists: ge(minAddIfNotExists),
		dedupToken:           ge(minDedupToken),
		asyncInsert:          ge(minAsyncInsert),
		asyncDedup:           ge(minAsyncDedup),
	}
}
