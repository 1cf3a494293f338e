// Package transforms reshapes a route's events for its sink, checked against the contract
// when the configuration loads, and applies the contract's PII guardrails.
//
// A route's transforms are an ordered list of steps (select, drop, rename, flatten, set,
// filter, cast, enrich, explode; see docs/transforms.md for the YAML). Compile type-checks
// every step against the contract message the route's events are decoded as: field paths
// must exist at that step, CEL expressions must compile with a usable result type, casts
// must apply to the field's type. Every problem comes back at once as config.Errors with the
// file:line:col of the offending step, list element or map key.
//
// Compile also computes the output schema (Chain.Schema): a message descriptor in a
// generated file, switchyard.out.<pipeline>_<route>.Event. Table sinks create and evolve
// their tables from it, so `switchyard plan` shows the DDL after transforms.
//
// # PII guardrails
//
// Contracts mark personal data with (switchyard.v1.field).pii = PII_HASH | PII_MASK | PII_DROP
// (contracts/switchyard/v1/options.proto, extension number 57292; the deprecated
// (switchyard.field).pii of switchyard/options.proto, extension 57291, reads the same way).
// Every route applies the
// marks by default, at any depth (nested messages, lists, map values): HASH turns the value
// into the lowercase hex HMAC-SHA256 under the configured key (pii.hash_key), MASK keeps "***"
// plus the last 4 characters of values longer than 8 characters ("***" otherwise), DROP
// removes the field from the output schema. Expressions of set steps may not read such
// fields (has() is allowed; filter may read them, since it only decides whether an event
// goes on). A route with pii: raw and a pii_reason sees raw values; RawPIIGrant reports it so
// the engine can log the grant at start-up. Redact, IsSensitive and SafeCELError render
// events and errors for logs and dead-letter headers without the values of fields marked
// pii or debug_redact.
//
// # Cost
//
// Everything is resolved by Compile: CEL programs, output field descriptors, conversion
// functions and copy plans for nested messages. Apply looks nothing up by name. A route
// without steps over a contract without PII compiles to the identity chain, whose Apply
// returns the input message itself.
//
// # Wiring (for the engine)
//
// For each route and each contract message the pipeline decodes, at load:
//
//	key, err := transforms.HashKey(cfg.PII)
//	chain, errs := transforms.Compile(routeCfg, contract.Descriptor(),
//		transforms.Options{Pipeline: p.Name, Route: route.Name, HashKey: key},
//		cfg.Pos, fmt.Sprintf("%s.routes[%d]", p.Path, i))
//	// append errs to the load errors; sinks.Deps.Schema = chain.Schema() for the route's sink.
//	// Further routes (or contracts) to the same sink pass Options.Schema = that Schema, so
//	// every record the sink gets has its descriptor (sinks resolve fields against it).
//	if reason, ok := chain.RawPIIGrant(); ok {
//		log.Warn("route sees raw personal data", "pipeline", p.Name, "route", route.Name, "reason", reason)
//	}
//
// Per event, after the route matched:
//
//	outs, err := chain.Apply(msg, rec, outs[:0])
//	// err (a *transforms.Error): dead-letter the record with reason "transform" and
//	//   err.Error() as the message; the text holds no event values.
//	// otherwise one event.Record per result: a copy of rec with Message set to it.
//
// When !chain.Identity() a sink must encode Record.Message and never pass Record.Value (the
// original payload, with raw PII) through.
package transforms
