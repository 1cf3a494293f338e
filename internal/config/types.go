package config

import (
	"fmt"
	"time"
)

// The structs below are the single declaration of Switchyard's configuration. Their tags drive
// parsing, defaults, validation, docs/config.md and the JSON Schema:
//
//	yaml:"key"          the YAML key (snake_case); "-" for fields the loader fills itself
//	doc:"..."           one-sentence description for docs and editors
//	default:"..."       default value, in YAML syntax
//	required:"true"     the key must be present (and non-empty)
//	enum:"a|b|c"        allowed values
//	secret:"true"       printed as [redacted] whenever config is echoed
//	example:"..."       example value, for docs
//
// Durations are Go durations ("250ms", "5s"); sizes are Bytes ("1MiB", "512KB", 1048576).

// Config is the whole configuration: global sections plus every pipeline.
type Config struct {
	Kafka     Kafka     `yaml:"kafka" doc:"Kafka cluster that sources read from and the kafka sink and dead-letter topics write to."`
	Contracts Contracts `yaml:"contracts" doc:"Where the Protobuf data contracts are loaded from."`
	PII       PII       `yaml:"pii" doc:"Key for hashing personal-data fields that contracts mark (switchyard.v1.field).pii = PII_HASH (see docs/transforms.md)."`
	Admin     Admin     `yaml:"admin" doc:"Admin HTTP server: Prometheus metrics and health checks."`
	Logging   Logging   `yaml:"logging" doc:"Logging."`
	// MemoryLimit is the daemon's memory budget (see docs/ARCHITECTURE.md, Memory budget).
	MemoryLimit Bytes      `yaml:"memory_limit" doc:"Memory budget of the whole daemon. Half of it is split evenly over every pipeline's lanes: a lane's fetched-and-unacknowledged records (key and value plus 512 bytes each, and five times the value more for a record handed to a lane whose sink reads decoded messages, six when the pipeline has other lanes, whose decoded messages it may borrow) may hold a quarter of its share before its partitions stop handing out records and pause fetching, which also bounds its decoded messages and sink batches (a sink batch's max_bytes is capped at that quarter over the sink's max_in_flight). The Go runtime's soft memory limit (debug.SetMemoryLimit) is set to it unless GOMEMLIMIT is set, and the collector's GOGC to 75 unless GOGC is set. 0 disables the budget (only the record-count limits apply) and leaves both to the runtime." default:"256MiB"`
	Pipelines   []Pipeline `yaml:"pipelines" doc:"Pipelines, each from one consumer group to its sinks."`

	// Positions maps the YAML path of every key and list element that was read
	// (e.g. "pipelines[0].routes[1].when") to where it was written.
	Positions map[string]Position `yaml:"-"`
	// ValuePositions maps the YAML path of every scalar value to where its text begins (after
	// an opening quote), so errors inside an expression can point at the offending column.
	ValuePositions map[string]Position `yaml:"-"`
}

// Kafka is the Kafka cluster connection.
type Kafka struct {
	Brokers  []string `yaml:"brokers" doc:"Seed brokers, host:port." required:"true" example:"[\"localhost:9092\"]"`
	ClientID string   `yaml:"client_id" doc:"Client id sent to the brokers." default:"switchyard"`
	TLS      TLS      `yaml:"tls" doc:"TLS to the brokers."`
	SASL     SASL     `yaml:"sasl" doc:"SASL authentication."`
	Producer Producer `yaml:"producer" doc:"The producer that kafka sinks and dead-letter writes use."`
}

// Producer is the router's Kafka producer settings.
type Producer struct {
	MaxRecordBytes  Bytes         `yaml:"max_record_bytes" doc:"Largest record batch, and so largest record (key, value and headers, before compression), the producer sends; keep it at or below the brokers' message.max.bytes and the topics' max.message.bytes (1MiB by default in Kafka). A larger event is dead-lettered with class sink and reason too_large; a larger dead letter is written without its value (see docs/sinks.md)." default:"1MiB"`
	DeliveryTimeout time.Duration `yaml:"delivery_timeout" doc:"Longest a produced record may wait for its acknowledgement, retries included. One that expires is a transient failure: the engine retries it and the sink shows as down." default:"30s"`
}

// TLS is client TLS settings.
type TLS struct {
	Enabled            bool   `yaml:"enabled" doc:"Connect with TLS." default:"false"`
	CAFile             string `yaml:"ca_file" doc:"PEM file of CAs to trust; the system pool when empty."`
	CertFile           string `yaml:"cert_file" doc:"PEM client certificate, for mutual TLS."`
	KeyFile            string `yaml:"key_file" doc:"PEM client key, for mutual TLS."`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" doc:"Do not verify the server certificate (testing only)." default:"false"`
}

// SASL is SASL authentication settings.
type SASL struct {
	Mechanism    string `yaml:"mechanism" doc:"SASL mechanism; empty disables SASL." enum:"|PLAIN|SCRAM-SHA-256|SCRAM-SHA-512"`
	Username     string `yaml:"username" doc:"SASL user name."`
	Password     string `yaml:"password" doc:"SASL password." secret:"true"`
	PasswordFile string `yaml:"password_file" doc:"File holding the SASL password, instead of password."`
}

// Contracts locates the contract registry.
type Contracts struct {
	Path           string         `yaml:"path" doc:"A directory of .proto files (compiled at start-up; imports resolve in it and to the well-known types), or a FileDescriptorSet file from 'buf build -o'." default:"contracts"`
	SchemaRegistry SchemaRegistry `yaml:"schema_registry" doc:"Confluent-compatible Schema Registry that the schema ids of Confluent frames are looked up in: a frame's id must name a schema that defines the contract's message, at the frame's message-index path. Without one only the path is checked, against the contract's own .proto file (see docs/sinks.md, Confluent framing)."`
}

// SchemaRegistry is a Confluent-compatible Schema Registry.
type SchemaRegistry struct {
	URL          string `yaml:"url" doc:"Base URL of the registry; empty disables lookups. Each schema id is looked up once and cached; while the registry cannot be reached, batches with an uncached id are retried, not dead-lettered." example:"http://schema-registry:8081"`
	Username     string `yaml:"username" doc:"HTTP basic-auth user."`
	Password     string `yaml:"password" doc:"HTTP basic-auth password." secret:"true"`
	PasswordFile string `yaml:"password_file" doc:"File holding the basic-auth password (a trailing newline is ignored), instead of password."`
	TLS          TLS    `yaml:"tls" doc:"TLS to the registry, for an https url with a private CA or client certificates (an https url needs no more)."`
}

// PII holds the secret behind the PII guardrails: fields that a contract marks
// (switchyard.v1.field).pii = PII_HASH reach sinks as the hex HMAC-SHA256 of their value under this key.
type PII struct {
	HashKey     string `yaml:"hash_key" doc:"HMAC-SHA256 key for fields marked pii = HASH; required when a route outputs such a field. Write ${VAR} to read it from the environment." secret:"true" example:"${SWITCHYARD_PII_HASH_KEY}"`
	HashKeyFile string `yaml:"hash_key_file" doc:"File holding the HMAC-SHA256 key (a trailing newline is ignored), instead of hash_key."`
}

// Admin is the admin HTTP server.
type Admin struct {
	Address string `yaml:"address" doc:"Listen address of /metrics, /healthz and /readyz; empty disables the server. A non-loopback address (0.0.0.0, ::, a host name) is logged at WARN at start-up: the endpoints have no authentication." default:"127.0.0.1:9464"`
	PProf   bool   `yaml:"pprof" doc:"Also serve Go profiles under /debug/pprof/ (CPU, heap, goroutines, execution traces); they reveal internals and cost CPU while taken, so enable them only where the admin address is private." default:"false"`
}

// Logging configures log/slog.
type Logging struct {
	Level  string `yaml:"level" doc:"Minimum level." default:"info" enum:"debug|info|warn|error"`
	Format string `yaml:"format" doc:"text on a terminal and json otherwise when auto." default:"auto" enum:"auto|text|json"`
}

// Pipeline is one consumer group's path from source topics to sinks.
type Pipeline struct {
	Name       string     `yaml:"name" doc:"Unique pipeline name, used in metrics, logs and default group ids." required:"true"`
	Owner      Owner      `yaml:"owner" doc:"Team that owns the pipeline, shown in logs and alerts." required:"true"`
	Source     Source     `yaml:"source" doc:"Where events are consumed from." required:"true"`
	Contract   Contract   `yaml:"contract" doc:"The data contract that events are decoded and validated with." required:"true"`
	Sinks      []Sink     `yaml:"sinks" doc:"Destinations that routes send events to; each sets exactly one kind section, which says what it writes to." required:"true"`
	Routes     []Route    `yaml:"routes" doc:"Routes: which events go to which sink. An event goes to every route whose condition holds." required:"true"`
	DeadLetter DeadLetter `yaml:"dead_letter" doc:"Where events that cannot be decoded, validated, routed or written go, with the reason." required:"true"`
	// MaxEventBytes bounds a source record's value.
	MaxEventBytes Bytes `yaml:"max_event_bytes" doc:"Largest source record value the pipeline accepts; a larger one is dead-lettered without being decoded (class decode, reason too_large). 0 accepts any size." default:"0"`
	// EventTimeField names the event time the SLOs measure freshness from.
	EventTimeField string `yaml:"event_time_field" doc:"Top-level google.protobuf.Timestamp field of the contract that is the event's time, for the freshness SLO and switchyard_event_freshness_seconds; when empty, occurred_at or event_time if the contract has one. Events where it is unset use the Kafka record timestamp." example:"occurred_at"`
	SLO            SLO    `yaml:"slo" doc:"Service-level objectives measured per sink: freshness and completeness (see docs/slo.md)."`

	// File is the configuration file this pipeline was read from.
	File string `yaml:"-"`
	// Path is the YAML path of this pipeline in Config.Positions, e.g. "pipelines[2]".
	Path string `yaml:"-"`
}

// Owner names who to call.
type Owner struct {
	Team    string `yaml:"team" doc:"Owning team." required:"true"`
	Contact string `yaml:"contact" doc:"How to reach them: a channel, an alias or a pager handle." required:"true"`
}

// Source is a Kafka consumer-group source.
type Source struct {
	Topics         []string      `yaml:"topics" doc:"Topics to consume." required:"true"`
	Group          string        `yaml:"group" doc:"Consumer group id; each sink consumes as <group>.<sink>. Defaults to switchyard.<pipeline name>."`
	Start          string        `yaml:"start" doc:"Where a group without committed offsets starts." default:"earliest" enum:"earliest|latest"`
	MaxInFlight    int           `yaml:"max_in_flight" doc:"Most records per partition handed out and not yet acknowledged; fetching that partition pauses at the limit." default:"3500"`
	MaxBatch       int           `yaml:"max_batch" doc:"Most records in one unit of work handed from the source to the engine." default:"1000"`
	SessionTimeout time.Duration `yaml:"session_timeout" doc:"Consumer-group session timeout: how long the group waits for a member that stopped heartbeating (e.g. a killed process) before giving its partitions to others." default:"15s"`
	InstanceID     string        `yaml:"instance_id" doc:"Static group membership: an id per process, stable across its restarts and unique among the instances running the pipeline, e.g. ${POD_NAME} of a StatefulSet pod; each sink's lane joins as <instance_id>.<sink>. A process back within session_timeout gets its partitions back without a rebalance; a stopped one does not leave the group, so its partitions move after session_timeout (see docs/scaling.md)."`
	DrainTimeout   time.Duration `yaml:"drain_timeout" doc:"How long a rebalance or shutdown waits for in-flight records before it commits what was acknowledged." default:"30s"`
	FetchMaxBytes  Bytes         `yaml:"fetch_max_bytes" doc:"Most bytes one fetch from a broker returns." default:"50MiB"`
	LagInterval    time.Duration `yaml:"lag_interval" doc:"How often each sink's lane asks the brokers for the high watermarks of its partitions and updates switchyard_consumer_lag_records (high watermark minus committed offset) and the stall check; fresh also while fetching is paused." default:"5s"`
	StallAfter     time.Duration `yaml:"stall_after" doc:"A partition whose committed offset has not moved for this long while records wait behind it is reported stalled: a WARN line, switchyard_partition_stalled = 1 and a 503 from /readyz listing it. Keep it above the longest a healthy sink takes to land a batch, retries included." default:"2m"`
}

// Contract says which message type each record holds and how it is encoded.
type Contract struct {
	Encoding string            `yaml:"encoding" doc:"Payload encoding: Confluent wire format (magic byte, schema id, message indexes), raw protobuf, or protojson." default:"confluent" enum:"confluent|raw|json"`
	Message  string            `yaml:"message" doc:"Full name of the message type of every record, unless topics or header say otherwise." example:"auctions.v1.BidPlaced"`
	Topics   map[string]string `yaml:"topics" doc:"Message type per source topic." example:"{\"auctions.bids\": \"auctions.v1.BidPlaced\"}"`
	Header   HeaderMapping     `yaml:"header" doc:"Choose the message type by the value of a record header."`
	// SchemaIDs are the Confluent schema ids a frame may carry.
	SchemaIDs []int `yaml:"schema_ids" doc:"Confluent schema ids that frames may carry, for encoding confluent; any id when empty. A frame with another id is dead-lettered with reason framing." example:"[101, 102]"`
}

// HeaderMapping selects the contract by a header value.
type HeaderMapping struct {
	Name   string            `yaml:"name" doc:"Header whose value names the event type."`
	Values map[string]string `yaml:"values" doc:"Message type per header value."`
}

// Sink is one destination. Besides the keys below it sets exactly one kind section, whose key
// names the sink kind (kafka, clickhouse, ...) and whose value the kind's options. The kinds
// are not declared here: each sink package registers its own (see RegisterSinkKind and
// switchyard/sinks/registry), and the loader adds a key per registered kind.
type Sink struct {
	Name        string  `yaml:"name" doc:"Sink name, unique in its pipeline; routes refer to it." required:"true"`
	Batch       Batch   `yaml:"batch" doc:"When the engine flushes a batch to the sink."`
	Retry       Retry   `yaml:"retry" doc:"How the engine retries transient write errors."`
	MaxInFlight int     `yaml:"max_in_flight" doc:"Most batches being written at once." default:"4"`
	SLO         SinkSLO `yaml:"slo" doc:"Overrides of the pipeline's slo for this sink; keys left out keep the pipeline's."`
	// Kind is the sink's kind, the key of its kind section (e.g. "kafka"); empty while it
	// sets none or several.
	Kind string `yaml:"-"`
	// Options are the kind's options: a pointer to the struct its SinkKind.Config returns,
	// e.g. *kafka.Config of switchyard/sinks/kafka.
	Options any `yaml:"-"`
	// Path is the YAML path of this sink, e.g. "pipelines[0].sinks[1]".
	Path string `yaml:"-"`

	decoded []sinkSection // every kind section written, in kind order
}

// Batch limits: a batch is flushed when any limit is reached.
type Batch struct {
	MaxRows  int           `yaml:"max_rows" doc:"Most records in a batch." default:"5000"`
	MaxBytes Bytes         `yaml:"max_bytes" doc:"Most payload bytes in a batch." default:"4MiB"`
	Interval time.Duration `yaml:"interval" doc:"Longest a record waits for its batch to fill." default:"200ms"`
}

// Retry is the backoff policy for transient errors.
type Retry struct {
	MaxAttempts    int           `yaml:"max_attempts" doc:"Attempts per batch; 0 retries until the sink recovers (the sink pauses, its partitions stop fetching at max_in_flight, nothing is committed past the batch). A positive limit hands the records back to the source, which redelivers them after backoff; nothing is dropped either way." default:"0"`
	InitialBackoff time.Duration `yaml:"initial_backoff" doc:"First backoff; doubles per attempt up to max_backoff, each wait drawn at random between half and all of it." default:"100ms"`
	MaxBackoff     time.Duration `yaml:"max_backoff" doc:"Longest backoff." default:"30s"`
}

// Route sends matching events to a sink.
type Route struct {
	Name  string `yaml:"name" doc:"Route name, for metrics and logs; defaults to the sink name and index."`
	When  string `yaml:"when" doc:"CEL condition over the decoded event (as 'event') and its Kafka metadata ('kafka.topic', 'kafka.partition', 'kafka.offset', 'kafka.key', 'kafka.headers'); every event when empty. Type-checked against the contract at load." example:"event.amount.units >= 100"`
	Sink  string `yaml:"sink" doc:"Name of the sink that matching events go to." required:"true"`
	Topic string `yaml:"topic" doc:"Target topic for a kafka sink; the sink's topic when empty."`
	// Transforms reshape the events of this route; see docs/transforms.md.
	Transforms []Transform `yaml:"transforms" doc:"Ordered steps that reshape the route's events for its sink; each list item sets exactly one step. Checked against the contract at load; the sink's table is created from the result (see docs/transforms.md)."`
	PII        string      `yaml:"pii" doc:"How fields that the contract marks (switchyard.v1.field).pii reach the sink: apply hashes them, masks them or drops them as marked; raw passes them unchanged and needs pii_reason." default:"apply" enum:"apply|raw"`
	PIIReason  string      `yaml:"pii_reason" doc:"Why this route may see raw personal data; required with pii: raw and logged at start-up." example:"fraud team reconciles bids with the payment provider by email"`
}

// Transform is one step of a route's transforms. Exactly one key is set. Field paths are
// dotted (amount.units) and refer to the event as the steps before have shaped it; CEL
// expressions see the decoded event as 'event' (and, after explode, the current element as
// 'element') plus the kafka.* metadata, as route conditions do.
type Transform struct {
	Select  []string          `yaml:"select" doc:"Keep only these fields, in this order." example:"[\"event_id\", \"amount.units\"]"`
	Drop    []string          `yaml:"drop" doc:"Remove these fields." example:"[\"max_auto_bid\"]"`
	Rename  map[string]string `yaml:"rename" doc:"Rename fields: field path to new name." example:"{\"bidder_id\": \"user_id\"}"`
	Flatten bool              `yaml:"flatten" doc:"Replace every singular message field (except google.protobuf types) by its fields, named parent_child, recursively." default:"false"`
	Set     map[string]string `yaml:"set" doc:"Add or replace fields with the value of a CEL expression, whose type becomes the field's type." example:"{\"amount_cents\": \"event.amount.units * 100 + event.amount.nanos / 10000000\"}"`
	Filter  string            `yaml:"filter" doc:"Keep only events (after explode: rows) for which this CEL expression is true." example:"event.quantity > 1"`
	Cast    map[string]string `yaml:"cast" doc:"Convert fields: field path to string, bytes, int32, int64, uint32, uint64, float, double, bool, date (YYYY-MM-DD), timestamp or millis." example:"{\"occurred_at\": \"date\"}"`
	Enrich  map[string]string `yaml:"enrich" doc:"Add fields from the Kafka record: field name to topic, partition, offset, key, key_bytes, timestamp, ingestion_time or header:NAME." example:"{\"ingested_at\": \"ingestion_time\"}"`
	Explode string            `yaml:"explode" doc:"Emit one event per element of this repeated field, which becomes a single value; an event whose list is empty emits none." example:"items"`
}

// DeadLetter is the dead-letter topic.
type DeadLetter struct {
	Topic string `yaml:"topic" doc:"Dead-letter topic; it receives the original key, value and headers plus switchyard.* headers with the reason." required:"true"`
	// Breaker halts the pipeline during a poison storm (see Breaker).
	Breaker Breaker `yaml:"breaker" doc:"Circuit breaker for poison storms: when more than max_ratio of a sink lane's events were dead-lettered over window (with at least min_events), every lane of the pipeline stops consuming and committing until a probe batch after cooldown is healthy (see docs/ARCHITECTURE.md, Dead-letter breaker). On by default."`
}

// Position is where a value was written.
type Position struct {
	File string
	Line int
	Col  int
}

func (p Position) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Bytes is a size in bytes, written as an integer or with a unit (KB, MB, GB, KiB, MiB, GiB).
type Bytes int64
