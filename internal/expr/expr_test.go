package expr_test

import (
	"errors"
	"testing"
	"time"

	"cel.dev/cel-go/cel"
	"google.golang.org/protobuf/types/known/typepb"

	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/internal/expr"
)

func env(t *testing.T, extra ...cel.EnvOption) *cel.Env {
	t.Helper()
	e, err := expr.NewEnv((&typepb.Field{}).ProtoReflect().Descriptor(), extra...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func eval(t *testing.T, e *cel.Env, act *expr.Activation, src string) any {
	t.Helper()
	_, prg, err := expr.Compile(e, src, nil)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	out, _, err := prg.Eval(act)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return out.Value()
}

// TestActivation_resolves_every_variable: the one resolver binds each variable of NewEnv to
// the record, the last header of a name wins, and Reset refreshes the reused headers map.
func TestActivation_resolves_every_variable(t *testing.T) {
	e := env(t, expr.Element(cel.IntType))
	ev := (&typepb.Field{Number: 10, Name: "n"}).ProtoReflect()
	rec := &event.Record{Topic: "t", Partition: 2, Offset: 7, Key: []byte("k"), Timestamp: time.Unix(20, 0),
		Headers: []event.Header{{Key: "h", Value: []byte("a")}, {Key: "h", Value: []byte("b")}}}
	var act expr.Activation
	act.Reset(ev, rec)
	for src, want := range map[string]any{
		"event.number":       int64(10),
		"kafka.topic":        "t",
		"kafka.partition":    int64(2),
		"kafka.offset":       int64(7),
		"kafka.key":          "k",
		`kafka.headers["h"]`: "b",
		"kafka.timestamp == timestamp(\"1970-01-01T00:00:20Z\")": true,
		`"element" in kafka.headers`:                             false,
		`size(kafka.headers) == 1`:                               true,
		`event.name == "n" && event.json_name == ""`:             true,
	} {
		if got := eval(t, e, &act, src); got != want {
			t.Errorf("%s = %v, want %v", src, got, want)
		}
	}
	if _, prg, err := expr.Compile(e, "element + 1", nil); err != nil {
		t.Fatal(err)
	} else if _, _, err := prg.Eval(&act); err == nil {
		t.Error("element resolved although no element is bound")
	}
	act.Element, act.HasElement = int64(41), true
	if got := eval(t, e, &act, "element + 1"); got != int64(42) {
		t.Errorf("element + 1 = %v, want 42", got)
	}

	next := &event.Record{Headers: []event.Header{{Key: "h", Value: []byte("c")}}}
	act.Reset(ev, next)
	if got := eval(t, e, &act, `kafka.headers["h"]`); got != "c" {
		t.Errorf("after Reset: headers[h] = %v, want c", got)
	}
	if _, prg, _ := expr.Compile(e, "element", nil); prg != nil {
		if _, _, err := prg.Eval(&act); err == nil {
			t.Error("Reset kept the previous element")
		}
	}
	act.Reset(ev, nil)
	if got := eval(t, e, &act, `kafka.topic == "" && kafka.offset == 0 && size(kafka.headers) == 0`); got != true {
		t.Errorf("nil record: %v, want zero values", got)
	}
}

// TestActivation_reuses_headers_map: a reused activation refills its headers map for the next
// event instead of allocating a new one.
func TestActivation_reuses_headers_map(t *testing.T) {
	e := env(t)
	_, prg, err := expr.Compile(e, `kafka.headers["h"] == "a"`, cel.BoolType)
	if err != nil {
		t.Fatal(err)
	}
	ev := (&typepb.Field{Number: 10}).ProtoReflect()
	rec := &event.Record{Headers: []event.Header{{Key: "h", Value: []byte("a")}, {Key: "g", Value: []byte("b")}}}
	run := func(act *expr.Activation) {
		act.Reset(ev, rec)
		if out, _, err := prg.Eval(act); err != nil || out.Value() != true {
			t.Fatalf("eval = %v, %v", out, err)
		}
	}
	var reused expr.Activation
	warm := testing.AllocsPerRun(100, func() { run(&reused) })
	fresh := testing.AllocsPerRun(100, func() { run(&expr.Activation{}) })
	if warm >= fresh-1 {
		t.Errorf("reused activation: %v allocations per event, fresh: %v; want the map (at least 1) saved", warm, fresh)
	}
}

func TestCompile_checks_result_type_and_keeps_positions(t *testing.T) {
	e := env(t)
	if _, _, err := expr.Compile(e, "kafka.topic", cel.BoolType); err == nil || err.Error() != "expression yields string, want bool" {
		t.Errorf("non-bool: %v", err)
	}
	_, _, err := expr.Compile(e, "kafka.offset == 1 &&\n  event.nope", cel.BoolType)
	var ce *expr.CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("unknown field: %T %v, want *CompileError", err, err)
	}
	is := ce.List()
	if len(is) != 1 || is[0].Line != 2 || is[0].Column != 8 {
		t.Fatalf("issues = %+v, want one at line 2 column 8", is)
	}
	// Errors places it in the YAML file: line 2 of the expression is line 11 of the file.
	got := expr.Errors(config.Position{File: "f.yaml", Line: 10, Col: 9}, "route \"r\"", err)
	if len(got) != 1 || got[0].Pos.Line != 11 || got[0].Pos.Col != 8 {
		t.Errorf("Errors = %+v, want f.yaml:11:8", got)
	}
	one := expr.Errors(config.Position{File: "f.yaml", Line: 10, Col: 9}, "w", &expr.CompileError{Issues: issues(t, e, "event.nope")})
	if len(one) != 1 || one[0].Pos.Line != 10 || one[0].Pos.Col != 9+5 {
		t.Errorf("single-line Errors = %+v, want f.yaml:10:14", one)
	}
}

func issues(t *testing.T, e *cel.Env, src string) *cel.Issues {
	t.Helper()
	_, iss := e.Compile(src)
	if iss.Err() == nil {
		t.Fatalf("%s compiled", src)
	}
	return iss
}

func TestSafeError_drops_quoted_data(t *testing.T) {
	for in, want := range map[string]string{
		"no such key: alice@example.com":                "no such key",
		`strconv.ParseInt: parsing "x": invalid syntax`: "type conversion error",
		"something with secret":                         "evaluation failed",
	} {
		if got := expr.SafeError(errors.New(in)); got != want {
			t.Errorf("SafeError(%q) = %q, want %q", in, got, want)
		}
	}
	if expr.SafeError(nil) != "" {
		t.Error("SafeError(nil) not empty")
	}
}
