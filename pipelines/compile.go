// Package pipelines is the engine: it turns configuration into running pipelines.
//
// Each pipeline runs one lane per sink. A lane is a Kafka consumer group of its own
// (<group>.<sink>) with a watermill Router whose handler decodes, validates and routes each
// batch of records and hands the matching events to that sink's Runner. A sink that is down
// therefore stalls only its own lane; the other sinks keep landing fresh events. The first
// lane of a pipeline is its primary: it alone dead-letters events that fail to decode or
// validate, so such an event reaches the dead-letter topic once, not once per sink. See
// docs/ARCHITECTURE.md.
package pipelines

import (
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/routing"
	"github.com/switchyard-dev/switchyard/sinks/registry"
	"github.com/switchyard-dev/switchyard/transforms"
)

// Compiled is a configuration checked against the contracts: every contract resolved,
// every route condition type-checked, every sink's options checked against its schema.
// Nothing is connected.
type Compiled struct {
	Config    *config.Config
	Registry  *contract.Registry
	Pipelines []*CompiledPipeline
	// SchemaRegistry is the client of contracts.schema_registry; nil without a url.
	SchemaRegistry *contract.SchemaRegistry
}

// CompiledPipeline is one pipeline ready to run.
type CompiledPipeline struct {
	Config   *config.Pipeline
	Encoding contract.Encoding
	// byTopic and byHeader select the contract of a record; fallback is used otherwise.
	byTopic  map[string]*contract.Contract
	byHeader map[string]*contract.Contract
	header   string
	fallback *contract.Contract
	Routes   []*Route
	// Schemas maps each sink to the message descriptor its records carry.
	Schemas map[string]protoreflect.MessageDescriptor
	// SchemaIDs is the schema-id policy of Confluent frames (nil: not checked).
	SchemaIDs *contract.Schemas
	// eventTimes is the event-time field of each contract message that has one (see
	// EventTimeSource).
	eventTimes map[protoreflect.FullName]protoreflect.FieldDescriptor
	// timeFields reads the event-time field of each contract (eventTimeOf).
	timeFields map[*contract.Contract]contract.TimestampField
}

// Route is a compiled route with its transforms, one chain per contract message.
type Route struct {
	*routing.Route
	chains map[protoreflect.FullName]*transforms.Chain
}

// transforms reports whether any of the route's chains changes the message.
func (r *Route) transforms() bool {
	for _, ch := range r.chains {
		if ch != nil && !ch.Identity() {
			return true
		}
	}
	return false
}

// chain returns the route's transforms for events of md.
func (r *Route) chain(md protoreflect.MessageDescriptor) *transforms.Chain {
	return r.chains[md.FullName()]
}

// Compile checks cfg against the contracts in reg. It returns every problem found, each with
// its file:line:col, as config.Errors.
func Compile(cfg *config.Config, reg *contract.Registry) (*Compiled, error) {
	c := &Compiled{Config: cfg, Registry: reg}
	var errs config.Errors
	pos := cfg.Pos
	hashKey, err := transforms.HashKey(cfg.PII)
	if err != nil {
		at := pos("pii")
		if p, ok := cfg.ValuePositions["pii.hash_key_file"]; ok {
			at = p
		}
		errs = append(errs, config.Error{Pos: at, Msg: err.Error() + " (create the file with the key, or set pii.hash_key instead, e.g. from an environment variable)"})
		// A key is configured, it is only unreadable: check the routes as if it were there,
		// so this one problem is not reported again as "no hash key is configured" on every
		// route that hashes. Compile fails anyway, so the placeholder never hashes anything.
		hashKey = []byte("placeholder: pii.hash_key_file is unreadable")
	}
	schemaReg, rerrs := schemaRegistry(cfg)
	errs = append(errs, rerrs...)
	c.SchemaRegistry = schemaReg
	for i := range cfg.Pipelines {
		pc := &cfg.Pipelines[i]
		cp := &CompiledPipeline{
			Config:   pc,
			byTopic:  map[string]*contract.Contract{},
			byHeader: map[string]*contract.Contract{},
			header:   pc.Contract.Header.Name,
			Schemas:  map[string]protoreflect.MessageDescriptor{},
		}
		enc, err := contract.ParseEncoding(pc.Contract.Encoding)
		if err != nil {
			errs = append(errs, config.Error{Pos: pos(pc.Path + ".contract.encoding"), Msg: err.Error()})
		}
		cp.Encoding = enc
		cp.SchemaIDs = schemasFor(pc, enc, schemaReg)
		lookup := func(path, name string) *contract.Contract {
			ct, err := reg.Lookup(name)
			if err != nil {
				errs = append(errs, config.Error{Pos: pos(path), Msg: fmt.Sprintf("pipeline %q: %v", pc.Name, err)})
				return nil
			}
			return ct
		}
		if pc.Contract.Message != "" {
			cp.fallback = lookup(pc.Path+".contract.message", pc.Contract.Message)
		}
		for _, topic := range slices.Sorted(maps.Keys(pc.Contract.Topics)) {
			if ct := lookup(pc.Path+".contract.topics."+topic, pc.Contract.Topics[topic]); ct != nil {
				cp.byTopic[topic] = ct
			}
		}
		for _, v := range slices.Sorted(maps.Keys(pc.Contract.Header.Values)) {
			if ct := lookup(pc.Path+".contract.header.values."+v, pc.Contract.Header.Values[v]); ct != nil {
				cp.byHeader[v] = ct
			}
		}
		msgs := cp.messages()
		errs = append(errs, cp.compileEventTimes(pos)...)
		routes, rerrs := routing.Compile(pc.Routes, msgs, pc.Path, cfg)
		errs = append(errs, rerrs...)
		tableSinks := map[string]bool{}
		for j := range pc.Sinks {
			tableSinks[pc.Sinks[j].Name] = registry.IsTable(&pc.Sinks[j])
		}
		// Every route to a table sink must give it the same shape: later routes compile to
		// the first one's output descriptor (transforms.Compile checks the shapes match).
		shared := map[string]protoreflect.MessageDescriptor{}
		for j, r := range routes {
			cr := &Route{Route: r, chains: map[protoreflect.FullName]*transforms.Chain{}}
			cp.Routes = append(cp.Routes, cr)
			for _, md := range msgs {
				opts := transforms.Options{Pipeline: pc.Name, Route: r.Name, HashKey: hashKey}
				if tableSinks[r.Sink] {
					opts.Schema = shared[r.Sink]
				}
				ch, terrs := transforms.Compile(pc.Routes[j], md, opts, cfg.Pos, fmt.Sprintf("%s.routes[%d]", pc.Path, j))
				if ch != nil && tableSinks[r.Sink] && shared[r.Sink] == nil {
					shared[r.Sink] = ch.Schema()
				}
				errs = append(errs, terrs...)
				if ch != nil {
					cr.chains[md.FullName()] = ch
				}
			}
		}
		for j := range pc.Sinks {
			sc := &pc.Sinks[j]
			errs = append(errs, cp.checkSink(sc, cfg, enc)...)
		}
		c.Pipelines = append(c.Pipelines, cp)
	}
	if len(errs) > 0 {
		return c, errs
	}
	return c, nil
}

// checkSink decides the schema of sink sc (the output of the transforms of the routes to it)
// and checks the sink's options against it.
func (cp *CompiledPipeline) checkSink(sc *config.Sink, cfg *config.Config, enc contract.Encoding) config.Errors {
	var errs config.Errors
	pc := cp.Config
	errorf := func(path, format string, args ...any) {
		errs = append(errs, config.Error{Pos: cfg.Pos(path), Msg: fmt.Sprintf("pipeline %q sink %q: ", pc.Name, sc.Name) + fmt.Sprintf(format, args...)})
	}
	msgs := cp.messages()
	if registry.IsTable(sc) && len(msgs) > 1 {
		errorf(sc.Path, "a table sink needs one contract per pipeline, this pipeline decodes %d", len(msgs))
	}
	in := registry.Schemas{Input: enc}
	if len(msgs) > 0 {
		// Tables are named after the contract, not after a route's transformed shape.
		registry.DeriveTable(sc, msgs[0])
		in.Contract = msgs[0]
	}
	defaultTopic, takesTopic := registry.TakesTopic(sc)
	var schema protoreflect.MessageDescriptor
	for _, r := range cp.Routes {
		if r.Sink != sc.Name {
			continue
		}
		for _, md := range msgs {
			rs := registry.RouteSchema{Route: r.Name, In: md, Out: md, Identity: true}
			if ch := r.chain(md); ch != nil {
				rs.Out, rs.Identity = ch.Schema(), ch.Identity()
			}
			in.Routes = append(in.Routes, rs)
			if schema == nil {
				schema = rs.Out
			}
		}
		if takesTopic && defaultTopic == "" && r.Target == "" {
			errorf(fmt.Sprintf("%s.routes[%d]", pc.Path, r.Index), "route %q sends to this %s sink, but neither the route nor the sink names a topic", r.Name, sc.Kind)
		}
	}
	if schema == nil && len(msgs) > 0 {
		schema = msgs[0] // no route reaches the sink; it still needs a schema to start
	}
	cp.Schemas[sc.Name] = schema
	in.Schema = schema
	for _, msg := range registry.Check(sc, in) {
		errorf(sc.Path+"."+sc.Kind, "%s", msg)
	}
	return errs
}

// messages returns the distinct contract messages the pipeline decodes, fallback first.
func (cp *CompiledPipeline) messages() []protoreflect.MessageDescriptor {
	var out []protoreflect.MessageDescriptor
	seen := map[protoreflect.FullName]bool{}
	add := func(ct *contract.Contract) {
		if ct == nil || seen[ct.Descriptor().FullName()] {
			return
		}
		seen[ct.Descriptor().FullName()] = true
		out = append(out, ct.Descriptor())
	}
	add(cp.fallback)
	for _, k := range slices.Sorted(maps.Keys(cp.byTopic)) {
		add(cp.byTopic[k])
	}
	for _, k := range slices.Sorted(maps.Keys(cp.byHeader)) {
		add(cp.byHeader[k])
	}
	return out
}

// Summary is a one-line description of the pipeline, for `switchyard validate`.
func (cp *CompiledPipeline) Summary() string {
	var names []string
	for _, md := range cp.messages() {
		names = append(names, string(md.FullName()))
	}
	var sinkNames []string
	for _, s := range cp.Config.Sinks {
		sinkNames = append(sinkNames, s.Name+"("+sinkKind(&s)+")")
	}
	enc := cp.Config.Contract.Encoding
	if cp.Encoding == contract.Confluent {
		enc += " (" + cp.SchemaIDs.String() + ")"
	}
	return fmt.Sprintf("pipeline %q (owner %s): %d topic(s) %v, contract %v as %s, %s, %d route(s) to %v, dead letters to %s",
		cp.Config.Name, cp.Config.Owner.Team, len(cp.Config.Source.Topics), cp.Config.Source.Topics, names,
		enc, cp.EventTimeSource(), len(cp.Routes), sinkNames, cp.Config.DeadLetter.Topic)
}

func sinkKind(s *config.Sink) string {
	if s.Kind == "" {
		return "unknown"
	}
	return s.Kind
}
