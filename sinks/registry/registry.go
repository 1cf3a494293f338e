// Package registry is where sink kinds are declared: each sink package registers its kind
// from an init function, and the config loader, the engine, `switchyard plan` and the docs
// generator learn about sink kinds only from here (Benthos's service.RegisterOutput). Import
// switchyard/sinks/all for its side effect to get every kind Switchyard ships.
//
// Register hands the configuration part of a kind (its key, its options struct, its
// load-time checks) to internal/config, which decodes, checks, documents and redacts it like
// the rest of the configuration.
package registry

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/kafkaconn"
	"github.com/switchyard-dev/switchyard/sinks"
)

// Kind declares one sink kind whose options are a C: its YAML key, its checks, its
// capabilities and its constructor. Name, Doc and New are required.
type Kind[C any] struct {
	// Name is the key a sink sets to be of this kind, e.g. "kafka".
	Name string
	// Doc describes the kind's section in one sentence, for docs/config.md and editors.
	Doc string

	// Topic is set for kinds that write to topics that a route may name (route topic): it
	// returns the sink's default topic, "" when it names none. Routes to other kinds may not
	// set topic, and every route to such a kind needs a topic of its own or the default.
	Topic func(c *C) string
	// Table is set for table sinks, which write every route's events to one table of one
	// shape: their pipeline must decode one contract, all routes to them must give the same
	// output shape, and Table fills in the table name derived from the contract message
	// when c names none. It is called once, before Check.
	Table func(c *C, contract protoreflect.MessageDescriptor)
	// Schemaless says the kind writes no schema of its own, so `switchyard plan` reports
	// nothing to change without building the sink.
	Schemaless bool

	// Lint, when set, checks c against the rest of pipeline p when the configuration is
	// loaded, before contracts are read. Each message is reported at the kind's section.
	Lint func(c *C, p *config.Pipeline) []string
	// Check, when set, checks c against the shapes of the events that will reach the sink,
	// without connecting, when the configuration is compiled against the contracts. Each
	// message is reported at the kind's section.
	Check func(c *C, s Schemas) []string

	// New builds the sink of options c. It should not connect: the engine opens the sink
	// (sinks.Opener) and retries that with backoff while it fails.
	New func(ctx context.Context, c *C, deps Deps) (sinks.Sink, error)
}

// Schemas is what a kind's Check gets: the pipeline's input encoding and the shapes of the
// events that reach the sink.
type Schemas struct {
	// Input is the encoding the pipeline reads events with.
	Input contract.Encoding
	// Contract is the pipeline's first contract message; nil when none resolved.
	Contract protoreflect.MessageDescriptor
	// Schema is the sink's schema, the descriptor of the records it gets (the output of the
	// first route to it, or Contract when no route reaches it); nil when none resolved.
	Schema protoreflect.MessageDescriptor
	// Routes holds, per route to the sink and contract message, what its transforms make of
	// the events.
	Routes []RouteSchema
}

// RouteSchema is what one route's transforms make of the events of one contract message.
type RouteSchema struct {
	Route string
	// In is the contract message; Out the descriptor of the events the route hands the
	// sink (In itself when the route has no transforms).
	In, Out protoreflect.MessageDescriptor
	// Identity is set when the transforms leave events as they are.
	Identity bool
}

// Deps is what a sink constructor gets from the engine.
type Deps struct {
	sinks.Deps
	Kafka config.Kafka
	// KafkaOpts are the franz-go options of the cluster (kafkaconn.FranzOpts).
	KafkaOpts []kgo.Opt
	// Producer are the router's producer settings (max record size, delivery timeout,
	// client metrics) for sinks that produce to Kafka.
	Producer kafkaconn.ProducerOptions
	Input    contract.Encoding
}

// kind is a registered Kind with its options type erased; opts is always a *C.
type kind struct {
	name       string
	topic      func(opts any) string
	table      func(opts any, contract protoreflect.MessageDescriptor)
	schemaless bool
	check      func(opts any, s Schemas) []string
	newSink    func(ctx context.Context, opts any, deps Deps) (sinks.Sink, error)
}

var (
	mu    sync.RWMutex
	kinds = map[string]*kind{}
)

// Register adds a sink kind, and its configuration section to the config loader. Call it
// from the init function of the sink's package. It panics on a second kind of the same name,
// on a declaration without Name, Doc or New, and after a configuration has been read.
func Register[C any](k Kind[C]) {
	if k.Name == "" || k.Doc == "" || k.New == nil {
		panic(fmt.Sprintf("registry: sink kind %q needs Name, Doc and New", k.Name))
	}
	e := &kind{
		name:       k.Name,
		schemaless: k.Schemaless,
		newSink: func(ctx context.Context, opts any, deps Deps) (sinks.Sink, error) {
			return k.New(ctx, opts.(*C), deps)
		},
	}
	ck := config.SinkKind{Name: k.Name, Doc: k.Doc, Config: func() any { return new(C) }}
	if k.Topic != nil {
		e.topic = func(opts any) string { return k.Topic(opts.(*C)) }
		ck.Topic = e.topic
	}
	if k.Table != nil {
		e.table = func(opts any, md protoreflect.MessageDescriptor) { k.Table(opts.(*C), md) }
	}
	if k.Check != nil {
		e.check = func(opts any, s Schemas) []string { return k.Check(opts.(*C), s) }
	}
	if k.Lint != nil {
		ck.Check = func(opts any, p *config.Pipeline) []string { return k.Lint(opts.(*C), p) }
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := kinds[k.Name]; dup {
		panic(fmt.Sprintf("registry: sink kind %q registered twice", k.Name))
	}
	config.RegisterSinkKind(ck)
	kinds[k.Name] = e
}

// Kinds returns the names of the registered sink kinds, sorted.
func Kinds() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// lookup returns the kind of sc and whether it is registered with options of its type.
func lookup(sc *config.Sink) (*kind, bool) {
	mu.RLock()
	defer mu.RUnlock()
	k, ok := kinds[sc.Kind]
	return k, ok && sc.Options != nil
}

// New builds the sink sc declares, with the constructor of its kind.
func New(ctx context.Context, sc *config.Sink, deps Deps) (sinks.Sink, error) {
	k, ok := lookup(sc)
	if !ok {
		return nil, fmt.Errorf("sink %q: kind %s is not available in this build", sc.Name, kindName(sc))
	}
	return k.newSink(ctx, sc.Options, deps)
}

// TakesTopic reports whether sc's kind writes to topics that routes may name, and its
// default topic.
func TakesTopic(sc *config.Sink) (defaultTopic string, ok bool) {
	k, found := lookup(sc)
	if !found || k.topic == nil {
		return "", false
	}
	return k.topic(sc.Options), true
}

// IsTable reports whether sc is a table sink (see Kind.Table).
func IsTable(sc *config.Sink) bool {
	k, ok := lookup(sc)
	return ok && k.table != nil
}

// DeriveTable fills in the table name of a table sink from its contract message when its
// options name none; other sinks are left alone.
func DeriveTable(sc *config.Sink, contract protoreflect.MessageDescriptor) {
	if k, ok := lookup(sc); ok && k.table != nil {
		k.table(sc.Options, contract)
	}
}

// Schemaless reports whether sc's kind writes no schema of its own (see Kind.Schemaless).
func Schemaless(sc *config.Sink) bool {
	k, ok := lookup(sc)
	return ok && k.schemaless
}

// Check runs the Check of sc's kind; it returns one message per problem.
func Check(sc *config.Sink, s Schemas) []string {
	k, ok := lookup(sc)
	if !ok || k.check == nil {
		return nil
	}
	return k.check(sc.Options, s)
}

func kindName(sc *config.Sink) string {
	if sc.Kind == "" {
		return "unknown"
	}
	return sc.Kind
}
