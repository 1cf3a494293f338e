// Package routing decides which sinks an event goes to.
//
// Each route is an optional CEL condition plus a sink. Conditions are compiled once, when the
// configuration loads, against every contract message the pipeline can decode, so a typo in a
// field name is a load-time error with file:line:col, never a run-time surprise.
package routing

import (
	"fmt"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/interpreter"
	"google.golang.org/protobuf/reflect/protoreflect"

	"switchyard/internal/config"
	"switchyard/internal/event"
)

// Variables visible to route conditions (and to transform expressions).
const (
	VarEvent     = "event"
	VarTopic     = "kafka.topic"
	VarPartition = "kafka.partition"
	VarOffset    = "kafka.offset"
	VarKey       = "kafka.key"
	VarHeaders   = "kafka.headers"
	VarTimestamp = "kafka.timestamp"
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
func (r *Route) Match(act *Activation) (bool, error) {
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
		return false, fmt.Errorf("route %q: evaluate condition: %s", r.Name, SafeEvalError(err))
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("route %q: condition returned %s, not bool", r.Name, out.Type())
	}
	return b, nil
}

// celSafe lists the CEL run-time error messages, or message prefixes, that hold no values
// from the event; SafeEvalError keeps them.
var celSafe = []string{
	"division by zero",
	"modulus by zero",
	"integer overflow",
	"unsigned integer overflow",
	"no such overload",
	"no such key",
	"no such field",
	"no such attribute",
	"index out of range",
	"index out of bounds",
	"invalid RFC 3339 timestamp",
	"invalid index",
	"range error",
	"type conversion error",
	"timestamp overflow",
	"duration overflow",
	"operation cancelled",
	"operation interrupted",
}

// SafeEvalError renders a CEL evaluation error for logs and dead-letter headers. CEL's text
// can quote data (a missing map key, a string that did not parse as a number), so only known
// kinds of failure are named, without their details; anything else becomes "evaluation
// failed". Route conditions and transform expressions both use it.
func SafeEvalError(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	for _, s := range celSafe {
		if strings.HasPrefix(msg, s) {
			return s
		}
	}
	switch {
	case strings.Contains(msg, "cannot parse") || strings.Contains(msg, "parse error") || strings.Contains(msg, "invalid syntax"):
		return "type conversion error"
	case strings.Contains(msg, "out of range") || strings.Contains(msg, "overflow"):
		return "range error"
	}
	return "evaluation failed"
}

// Activation is the set of variables one evaluation sees. It is reused across events by one
// goroutine: set its fields and evaluate; nothing is allocated until a variable is read.
type Activation struct {
	Event  protoreflect.Message
	Record *event.Record
}

// ResolveName implements interpreter.Activation.
func (a *Activation) ResolveName(name string) (any, bool) {
	switch name {
	case VarEvent:
		return a.Event.Interface(), true
	case VarTopic:
		return a.Record.Topic, true
	case VarPartition:
		return int64(a.Record.Partition), true
	case VarOffset:
		return a.Record.Offset, true
	case VarKey:
		return string(a.Record.Key), true
	case VarTimestamp:
		return a.Record.Timestamp, true
	case VarHeaders:
		h := make(map[string]string, len(a.Record.Headers))
		for _, kv := range a.Record.Headers {
			h[kv.Key] = string(kv.Value)
		}
		return h, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *Activation) Parent() interpreter.Activation { return nil }

// NewEnv returns the CEL environment for events of msg: the variable event of the message's
// type plus the kafka.* metadata variables.
func NewEnv(msg protoreflect.MessageDescriptor, extra ...cel.EnvOption) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.TypeDescs(msg.ParentFile()),
		cel.Variable(VarEvent, cel.ObjectType(string(msg.FullName()))),
		cel.Variable(VarTopic, cel.StringType),
		cel.Variable(VarPartition, cel.IntType),
		cel.Variable(VarOffset, cel.IntType),
		cel.Variable(VarKey, cel.StringType),
		cel.Variable(VarHeaders, cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable(VarTimestamp, cel.TimestampType),
	}
	opts = append(opts, transitiveFiles(msg)...)
	return cel.NewEnv(append(opts, extra...)...)
}

// transitiveFiles declares the files msg's file imports, so nested message types resolve.
func transitiveFiles(msg protoreflect.MessageDescriptor) []cel.EnvOption {
	var out []cel.EnvOption
	seen := map[string]bool{msg.ParentFile().Path(): true}
	var walk func(f protoreflect.FileDescriptor)
	walk = func(f protoreflect.FileDescriptor) {
		imports := f.Imports()
		for i := range imports.Len() {
			imp := imports.Get(i).FileDescriptor
			if seen[imp.Path()] {
				continue
			}
			seen[imp.Path()] = true
			out = append(out, cel.TypeDescs(imp))
			walk(imp)
		}
	}
	walk(msg.ParentFile())
	return out
}

// Compile compiles the routes of one pipeline against every message type it decodes.
// path is the pipeline's YAML path (e.g. "pipelines[0]"); cfg locates errors. Every problem
// is returned, each with the position of the offending part of the expression.
func Compile(routes []config.Route, messages []protoreflect.MessageDescriptor, path string, cfg *config.Config) ([]*Route, config.Errors) {
	var errs config.Errors
	envs := make(map[protoreflect.FullName]*cel.Env, len(messages))
	for _, md := range messages {
		env, err := NewEnv(md)
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
			prg, err := CompileBool(env, rc.When)
			if err != nil {
				errs = append(errs, ExprErrors(TextPos(cfg, whenPath), fmt.Sprintf("route %q (for %s)", r.Name, md.FullName()), err)...)
				continue
			}
			r.programs[md.FullName()] = prg
		}
	}
	return out, errs
}

// CompileBool compiles a CEL expression that must yield a bool.
func CompileBool(env *cel.Env, expr string) (cel.Program, error) {
	return CompileTyped(env, expr, cel.BoolType)
}

// CompileTyped compiles a CEL expression that must yield want (nil: any type).
func CompileTyped(env *cel.Env, expr string, want *cel.Type) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, &CompileError{Issues: iss}
	}
	if want != nil && !ast.OutputType().IsExactType(want) && ast.OutputType() != cel.DynType {
		return nil, fmt.Errorf("expression yields %s, want %s", ast.OutputType(), want)
	}
	return env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(1000))
}

// CompileError carries CEL's issues so positions inside the expression can be reported.
type CompileError struct{ Issues *cel.Issues }

func (e *CompileError) Error() string { return e.Issues.Err().Error() }

// TextPos is where the text of the scalar at path begins, or the key's position if unknown.
func TextPos(cfg *config.Config, path string) config.Position {
	if p, ok := cfg.ValuePositions[path]; ok {
		return p
	}
	return cfg.Pos(path)
}

// ExprErrors turns an expression compile error into config errors positioned at the
// expression's location in the YAML file (pos is where the expression's text starts; a Col of
// 0 means the text starts a block scalar whose indentation is unknown).
func ExprErrors(pos config.Position, what string, err error) config.Errors {
	ce, ok := err.(*CompileError)
	if !ok {
		return config.Errors{{Pos: pos, Msg: fmt.Sprintf("%s: %v", what, err)}}
	}
	var out config.Errors
	for _, e := range ce.Issues.Errors() {
		p := pos
		if l := e.Location; l != nil && l.Line() > 0 {
			if l.Line() == 1 && p.Col > 0 {
				p.Col += l.Column()
			} else {
				p.Line += l.Line() - 1
				p.Col = l.Column() + 1
			}
		}
		out = append(out, config.Error{Pos: p, Msg: fmt.Sprintf("%s: %s", what, e.Message)})
	}
	return out
}
