// Package expr is the CEL layer route conditions (package routing) and transform expressions
// (package transforms) share: the variables an expression sees and the one resolver that
// binds them to an event (Activation), the environment for a contract message (NewEnv),
// compiling with a result type check (Compile), positioning compile errors in the YAML file
// (Errors) and rendering evaluation errors without event data (SafeError).
//
// What is specific to a caller stays with it: which programs run for which contract
// (routing.Route) and how results become output fields (transforms).
package expr

import (
	"fmt"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Variables visible to route conditions and transform expressions.
const (
	VarEvent     = "event"
	VarTopic     = "kafka.topic"
	VarPartition = "kafka.partition"
	VarOffset    = "kafka.offset"
	VarKey       = "kafka.key"
	VarHeaders   = "kafka.headers"
	VarTimestamp = "kafka.timestamp"
	// VarElement holds the current element after a transforms explode step. It is declared
	// only by environments built with Element.
	VarElement = "element"
)

// NewEnv returns the CEL environment for events of msg: the variable event of the message's
// type plus the kafka.* metadata variables, and the extra options (e.g. Element).
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

// Element declares the variable element of type t, for NewEnv.
func Element(t *cel.Type) cel.EnvOption { return cel.Variable(VarElement, t) }

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

// Compile parses and type-checks src in env and plans its program. want is the type the
// expression must yield (nil: any type; an expression of type dyn is accepted and checked
// by the caller at run time). Parse and check problems are returned as a *CompileError,
// which keeps their positions; a wrong result type as an error without position.
func Compile(env *cel.Env, src string, want *cel.Type) (*cel.Ast, cel.Program, error) {
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, nil, &CompileError{Issues: iss}
	}
	if want != nil && !ast.OutputType().IsExactType(want) && ast.OutputType().Kind() != types.DynKind {
		return nil, nil, fmt.Errorf("expression yields %s, want %s", ast.OutputType(), want)
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(1000))
	if err != nil {
		return nil, nil, fmt.Errorf("plan expression: %w", err)
	}
	return ast, prg, nil
}

// CompileError carries CEL's issues so positions inside the expression can be reported.
type CompileError struct{ Issues *cel.Issues }

func (e *CompileError) Error() string { return e.Issues.Err().Error() }

// Issue is one compile problem. Line and Column are 1-based positions inside the
// expression's text; Line is 0 when CEL gave no position.
type Issue struct {
	Line, Column int
	Message      string
}

// List returns the problems in the order CEL reported them.
func (e *CompileError) List() []Issue {
	var out []Issue
	for _, ce := range e.Issues.Errors() {
		is := Issue{Message: ce.Message}
		if l := ce.Location; l != nil && l.Line() > 0 {
			is.Line, is.Column = l.Line(), l.Column()+1
		}
		out = append(out, is)
	}
	return out
}
