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
	"regexp"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/suggest"
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
		return nil, nil, &CompileError{Issues: iss, env: env, src: src}
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
type CompileError struct {
	Issues *cel.Issues
	env    *cel.Env // for did-you-mean hints on undefined fields; nil: no hints
	src    string
}

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
			is.Message += e.fieldHint(ce.Message, l.Line(), l.Column())
		}
		out = append(out, is)
	}
	return out
}

var undefinedField = regexp.MustCompile(`^undefined field '([^']+)'$`)

// fieldHint returns a did-you-mean for CEL's "undefined field 'x'" at line, column (0-based
// runes) of the expression: CEL places the error at the dot of the selection, so the text
// before it is the operand. When that is a chain of plain selections from a variable
// (event.amount), the operand's message type is resolved field by field and its field names
// are the candidates; otherwise, or for a close match to none of them, it returns "".
func (e *CompileError) fieldHint(msg string, line, column int) string {
	m := undefinedField.FindStringSubmatch(msg)
	if m == nil || e.env == nil {
		return ""
	}
	lines := strings.Split(e.src, "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	text := []rune(lines[line-1])
	if column < 0 || column > len(text) {
		return ""
	}
	start := column
	for start > 0 && (text[start-1] == '.' || text[start-1] == '_' || isAlnum(text[start-1])) {
		start--
	}
	operand := strings.Split(string(text[start:column]), ".")
	if len(operand) == 0 || operand[0] == "" {
		return ""
	}
	// The variable's type: compile it alone (also finds the kafka.* metadata variables,
	// which are not messages and end the walk).
	ast, iss := e.env.Compile(operand[0])
	if iss.Err() != nil {
		return ""
	}
	typeName := ast.OutputType().TypeName()
	provider := e.env.CELTypeProvider()
	for _, f := range operand[1:] {
		ft, ok := provider.FindStructFieldType(typeName, f)
		if !ok {
			return ""
		}
		typeName = ft.Type.TypeName()
	}
	names, ok := provider.FindStructFieldNames(typeName)
	if !ok {
		return ""
	}
	return suggest.DidYouMean(m[1], names)
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}
