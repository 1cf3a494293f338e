// Package routing decides which sinks an event goes to.
//
// Each route is an optional CEL condition plus a sink. Conditions are compiled once, when the
// configuration loads, against every contract message the pipeline can decode, so a typo in a
// field name is a load-time error with file:line:col, never a run-time surprise. The CEL layer
// (variables and their resolver, environment, compiling, error positions) is package expr,
// shared with transforms; this package holds only what routes add to it.
package routing

import (
	"fmt"
	"strings"

	"cel.dev/cel-go/cel"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/expr"
)

// Route is one compiled route.
type Route struct {
	Name   string
	Sink   string
	Target string // route-specific destination (kafka topic), "" for the sink's default
	Index  int    // position in the pipeline's routes list

	programs map[protoreflect.FullName]cel.Program // nil: the route matches every event
}

// Unconditional reports whether the route matches every event without evaluating anything.
func (r *Route) Unconditional() bool { return r.programs == nil }

// Match evaluates the route's condition for the event in act. It is goroutine-safe.
// An error means the condition could not be evaluated for this event (e.g. a division by
// zero, or a message type the route was not compiled for); the engine dead-letters it.
func (r *Route) Match(act *expr.Activation) (bool, error) {
	if r.programs == nil {
		return true, nil
	}
	prg, ok := r.programs[act.Event.Descriptor().FullName()]
	if !ok {
		return false, fmt.Errorf("route %q has no condition compiled for %s", r.Name, act.Event.Descriptor().FullName())
	}
	out, _, err := prg.Eval(act)
	if err != nil {
		// CEL errors can quote event data ("no such key: <value>"): keep only their class,
		// since this text reaches logs and dead-letter headers.
		return false, fmt.Errorf("route %q: evaluate condition: %s", r.Name, expr.SafeError(err))
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("route %q: condition returned %s, not bool", r.Name, out.Type())
	}
	return b, nil
}

// Compile compiles the routes of one pipeline against every message type it decodes.
// path is the pipeline's YAML path (e.g. "pipelines[0]"); cfg locates errors. Every problem
// is returned, each with the position of the offending part of the expression.
func Compile(routes []config.Route, messages []protoreflect.MessageDescriptor, path string, cfg *config.Config) ([]*Route, config.Errors) {
	var errs config.Errors
	envs := make(map[protoreflect.FullName]*cel.Env, len(messages))
	for _, md := range messages {
		env, err := expr.NewEnv(md)
		if err != nil {
			errs = append(errs, config.Error{Pos: cfg.Pos(path + ".contract"), Msg: fmt.Sprintf("build expression environment for %s: %v", md.FullName(), err)})
			continue
		}
		envs[md.FullName()] = env
	}
	out := make([]*Route, 0, len(routes))
	for i, rc := range routes {
		r := &Route{Name: rc.Name, Sink: rc.Sink, Target: rc.Topic, Index: i}
		if r.Name == "" {
			r.Name = fmt.Sprintf("%s#%d", rc.Sink, i)
		}
		out = append(out, r)
		if strings.TrimSpace(rc.When) == "" {
			continue
		}
		whenPath := fmt.Sprintf("%s.routes[%d].when", path, i)
		r.programs = make(map[protoreflect.FullName]cel.Program, len(envs))
		for _, md := range messages {
			env := envs[md.FullName()]
			if env == nil {
				continue
			}
			_, prg, err := expr.Compile(env, rc.When, cel.BoolType)
			if err != nil {
				errs = append(errs, expr.Errors(expr.TextPos(cfg, whenPath), fmt.Sprintf("route %q (for %s)", r.Name, md.FullName()), err)...)
				continue
			}
			r.programs[md.FullName()] = prg
		}
	}
	return out, errs
}
