package expr

import (
	"cel.dev/cel-go/interpreter"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/event"
)

// Activation binds the variables of NewEnv (and Element) to one event; it is the only
// resolver of those names. One goroutine reuses it across events: Reset it, then evaluate.
// Nothing is allocated until a variable is read, and the headers map is built at most once
// per event and reused (cleared) for the next.
type Activation struct {
	Event  protoreflect.Message
	Record *event.Record // nil: the kafka.* variables read as zero values
	// Element is the current element of an exploded list, as expressions see it; HasElement
	// says whether there is one (element is unbound otherwise).
	Element    any
	HasElement bool

	headers    map[string]string
	headersFor *event.Record // the record headers was filled from; nil: not filled
}

var noRecord event.Record

var _ interpreter.Activation = (*Activation)(nil)

// Reset binds the activation to a new event and forgets the previous one's element and
// headers.
func (a *Activation) Reset(ev protoreflect.Message, rec *event.Record) {
	a.Event, a.Record = ev, rec
	a.Element, a.HasElement = nil, false
	a.headersFor = nil
}

// ResolveName implements interpreter.Activation.
func (a *Activation) ResolveName(name string) (any, bool) {
	r := a.Record
	if r == nil {
		r = &noRecord
	}
	switch name {
	case VarEvent:
		return a.Event.Interface(), true
	case VarElement:
		return a.Element, a.HasElement
	case VarTopic:
		return r.Topic, true
	case VarPartition:
		return int64(r.Partition), true
	case VarOffset:
		return r.Offset, true
	case VarKey:
		return string(r.Key), true
	case VarTimestamp:
		return r.Timestamp, true
	case VarHeaders:
		return a.headersOf(r), true
	}
	return nil, false
}

// headersOf returns r's headers as a map, the last header of a name winning. The map is
// reused across events: CEL only reads it during the evaluation that asked for it.
func (a *Activation) headersOf(r *event.Record) map[string]string {
	if a.headersFor == r && a.headers != nil {
		return a.headers
	}
	if a.headers == nil {
		a.headers = make(map[string]string, len(r.Headers))
	} else {
		clear(a.headers)
	}
	for _, h := range r.Headers {
		a.headers[h.Key] = string(h.Value)
	}
	a.headersFor = r
	return a.headers
}

// Parent implements interpreter.Activation.
func (a *Activation) Parent() interpreter.Activation { return nil }
