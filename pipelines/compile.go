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

	"switchyard/internal/config"
	"switchyard/internal/contract"
	"switchyard/routing"
	"switchyard/sinks/bigquery"
	sinkkafka "switchyard/sinks/kafka"
)

// Compiled is a configuration checked against the contracts: every contract resolved,
// every route condition type-checked, every sink's options checked against its schema.
// Nothing is connected.
type Compiled struct {
	Config    *config.Config
	Registry  *contract.Registry
	Pipelines []*CompiledPipeline
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
	Routes   []*routing.Route
	// Schemas maps each sink to the message descriptor its records carry.
	Schemas map[string]protoreflect.MessageDescriptor
}

// Compile checks cfg against the contracts in reg. It returns every problem found, each with
// its file:line:col, as config.Errors.
func Compile(cfg *config.Config, reg *contract.Registry) (*Compiled, error) {
	c := &Compiled{Config: cfg, Registry: reg}
	var errs config.Errors
	pos := func(path string) config.Position { return cfg.Positions[path] }
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
		routes, rerrs := routing.Compile(pc.Routes, msgs, pc.Path, cfg)
		errs = append(errs, rerrs...)
		cp.Routes = routes
		for j := range pc.Sinks {
			sc := &pc.Sinks[j]
			// Without transforms a sink receives the contract message itself. With several
			// contracts the first is the schema; sinks that create tables need one contract.
			var schema protoreflect.MessageDescriptor
			if len(msgs) > 0 {
				schema = msgs[0]
			}
			cp.Schemas[sc.Name] = schema
			if sc.Kafka != nil && schema != nil {
				for _, msg := range sinkkafka.ValidateConfig(*sc.Kafka, enc, schema) {
					errs = append(errs, config.Error{Pos: pos(sc.Path + ".kafka"), Msg: fmt.Sprintf("pipeline %q sink %q: %s", pc.Name, sc.Name, msg)})
				}
				if sc.Kafka.Topic == "" {
					for _, r := range routes {
						if r.Sink == sc.Name && r.Target == "" {
							errs = append(errs, config.Error{Pos: pos(fmt.Sprintf("%s.routes[%d]", pc.Path, r.Index)),
								Msg: fmt.Sprintf("pipeline %q: route %q sends to kafka sink %q, but neither the route nor the sink names a topic", pc.Name, r.Name, sc.Name)})
						}
					}
				}
			}
			if sc.BigQuery != nil && schema != nil {
				for _, msg := range bigquery.ValidateConfig(*sc.BigQuery, schema) {
					errs = append(errs, config.Error{Pos: pos(sc.Path + ".bigquery"), Msg: fmt.Sprintf("pipeline %q sink %q: %s", pc.Name, sc.Name, msg)})
				}
			}
			if (sc.ClickHouse != nil || sc.BigQuery != nil) && len(msgs) > 1 {
				errs = append(errs, config.Error{Pos: pos(sc.Path), Msg: fmt.Sprintf("pipeline %q sink %q: a table sink needs one contract per pipeline, this pipeline decodes %d", pc.Name, sc.Name, len(msgs))})
			}
		}
		c.Pipelines = append(c.Pipelines, cp)
	}
	if len(errs) > 0 {
		return c, errs
	}
	return c, nil
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
	return fmt.Sprintf("pipeline %q (owner %s): %d topic(s) %v, contract %v as %s, %d route(s) to %v, dead letters to %s",
		cp.Config.Name, cp.Config.Owner.Team, len(cp.Config.Source.Topics), cp.Config.Source.Topics, names,
		cp.Config.Contract.Encoding, len(cp.Routes), sinkNames, cp.Config.DeadLetter.Topic)
}

func sinkKind(s *config.Sink) string {
	switch {
	case s.Kafka != nil:
		return "kafka"
	case s.ClickHouse != nil:
		return "clickhouse"
	case s.BigQuery != nil:
		return "bigquery"
	}
	return "unknown"
}
