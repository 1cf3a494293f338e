package transforms

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/event"
)

// Options are what Compile needs besides the route and its contract.
type Options struct {
	// Pipeline is the pipeline's name, for messages and the output message's package.
	Pipeline string
	// Route is the route's name as the engine reports it (routing.Route.Name); the route's
	// configured name, then "<sink>#<index>", when empty.
	Route string
	// HashKey is the HMAC-SHA256 key of pii = HASH fields (see HashKey). Compile refuses a
	// route that outputs such a field when it is empty.
	HashKey []byte
	// Now is the clock of ingestion_time; time.Now when nil.
	Now func() time.Time
	// Schema, when set, is the descriptor the chain's results use instead of a new one:
	// typically the Schema of another route's chain to the same sink, so that every record
	// a sink receives has the sink's descriptor (sinks resolve fields against it). It must
	// have exactly the fields the chain outputs (names, numbers, types, presence; nested
	// generated messages compared field by field); Compile reports a problem otherwise.
	Schema protoreflect.MessageDescriptor
}

// Chain is one route's compiled transforms for one contract message type. It is immutable
// and safe for concurrent use.
type Chain struct {
	route    string
	input    protoreflect.MessageDescriptor
	schema   protoreflect.MessageDescriptor
	identity bool
	raw      bool
	reason   string
	now      func() time.Time

	out         protoreflect.MessageType
	cols        []colPlan
	filters     []*program
	rowFilters  []*program
	explode     *getter
	elemType    *vtype
	elemWriter  writer // converts elements as the explode step saw them, for expressions
	usesElement bool   // some expression reads element

	ctxs sync.Pool // *evalCtx
}

// Compile type-checks route's transforms against input, the contract message its events
// are decoded as, and the contract's PII options, and computes the output schema.
//
// path is the route's YAML path (e.g. "pipelines[0].routes[1]"); pos returns where a YAML
// path was written (config.Config.Pos), so every problem carries the file:line:col of the
// offending step, list element or map key. All problems are returned at once; the Chain is
// nil when there are any.
//
// A route without transforms whose contract marks no field pii (or with pii: raw) compiles
// to the identity chain: Schema is input and Apply passes events through.
func Compile(route config.Route, input protoreflect.MessageDescriptor, opts Options, pos func(path string) config.Position, path string) (*Chain, config.Errors) {
	b := &builder{
		route:        route,
		opts:         opts,
		input:        input,
		pos:          pos,
		path:         path,
		guard:        route.PII != "raw",
		piiMemo:      map[protoreflect.FieldDescriptor]piiMode{},
		containsMemo: map[protoreflect.FullName]bool{},
		shapeMemo:    map[protoreflect.FullName]*shape{},
		hasher:       newHasher(opts.HashKey),
	}
	b.label = fmt.Sprintf("pipeline %q route %q", opts.Pipeline, b.routeName())
	if input == nil {
		b.errorf(path, "no contract message to transform")
		return nil, b.errs
	}
	switch {
	case route.PII == "raw" && route.PIIReason == "":
		b.errorf(path+".pii", "pii: raw needs pii_reason saying why this route may see personal data")
	case route.PII != "raw" && route.PIIReason != "":
		b.errorf(path+".pii_reason", "pii_reason is set but pii is not raw")
	}
	c := &Chain{
		route:  b.routeName(),
		input:  input,
		raw:    route.PII == "raw",
		reason: route.PIIReason,
		now:    opts.Now,
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.ctxs.New = func() any { return &evalCtx{chain: c} }
	if len(route.Transforms) == 0 && (!b.guard || !b.containsPII(input)) {
		if len(b.errs) > 0 {
			return nil, b.errs
		}
		c.identity, c.schema = true, input
		return c, nil
	}
	var err error
	if b.files, err = inputFiles(input); err != nil {
		b.errorf(path, "collect the files of %s: %v", input.FullName(), err)
		return nil, b.errs
	}
	b.initial()
	for i, t := range route.Transforms {
		b.step(i, t)
	}
	if len(b.errs) > 0 {
		return nil, b.errs
	}
	if fd := hashedField(b.cols); fd != "" && len(opts.HashKey) == 0 {
		b.errorf(path, "%s is marked pii = HASH and reaches the sink, but no hash key is configured; set pii.hash_key or pii.hash_key_file (or drop the field)", fd)
		return nil, b.errs
	}
	schema, err := b.buildSchema()
	if err != nil {
		b.errorf(path, "%v", err)
		return nil, b.errs
	}
	if opts.Schema != nil {
		if problem := sameFields(schema, opts.Schema, map[[2]protoreflect.FullName]bool{}); problem != "" {
			b.errorf(path, "the route's output cannot use %s, the schema it shares with its sink: %s", opts.Schema.FullName(), problem)
			return nil, b.errs
		}
		schema = opts.Schema
	}
	b.shapeDesc = shapeDescriptors(b.cols, schema)
	b.plan(c, schema)
	c.schema = schema
	return c, nil
}

func (b *builder) routeName() string {
	switch {
	case b.opts.Route != "":
		return b.opts.Route
	case b.route.Name != "":
		return b.route.Name
	}
	idx := ""
	if m := routeIndex.FindStringSubmatch(b.path); m != nil {
		idx = m[1]
	}
	return b.route.Sink + "#" + idx
}

var routeIndex = regexp.MustCompile(`routes\[(\d+)\]$`)

// hashedField returns the input field of a HASH conversion still in cols, or "".
func hashedField(cols []*col) string {
	seen := map[*shape]bool{}
	var find func(cols []*col) string
	find = func(cols []*col) string {
		for _, c := range cols {
			for _, cv := range c.typ.convs {
				if cv.hash {
					return string(c.in.FullName())
				}
			}
			if s := c.typ.msg; c.typ.isMessage() && !s.reused && !seen[s] {
				seen[s] = true // recursive messages hold their own shape
				if f := find(s.cols); f != "" {
					return f
				}
			}
		}
		return ""
	}
	return find(cols)
}

// shapeDescriptors maps every synthesized message type to its output descriptor, following
// the output fields that hold them.
func shapeDescriptors(cols []*col, md protoreflect.MessageDescriptor) map[*shape]protoreflect.MessageDescriptor {
	out := map[*shape]protoreflect.MessageDescriptor{}
	var walk func(cols []*col, md protoreflect.MessageDescriptor)
	walk = func(cols []*col, md protoreflect.MessageDescriptor) {
		fields := md.Fields()
		for i, c := range cols {
			t := c.typ
			if !t.isMessage() || t.msg.reused {
				continue
			}
			if _, ok := out[t.msg]; ok {
				continue
			}
			fd := fields.Get(i)
			if fd.IsMap() {
				fd = fd.MapValue()
			}
			out[t.msg] = fd.Message()
			walk(t.msg.cols, fd.Message())
		}
	}
	walk(cols, md)
	return out
}

// Schema returns the descriptor of the messages Apply returns: the sink's schema
// (sinks.Deps.Schema), from which table sinks create and evolve tables.
func (c *Chain) Schema() protoreflect.MessageDescriptor { return c.schema }

// Input returns the contract message type the chain was compiled for.
func (c *Chain) Input() protoreflect.MessageDescriptor { return c.input }

// Identity reports whether Apply returns its input unchanged (no steps, no PII to guard).
// Only then may a sink pass the original record bytes through instead of encoding
// the message Apply returns.
func (c *Chain) Identity() bool { return c.identity }

// RawPIIGrant reports whether the route sees raw personal data (pii: raw), and why. The
// engine logs the grant at start-up.
func (c *Chain) RawPIIGrant() (reason string, ok bool) { return c.reason, c.raw }

// Error is an event the chain could not transform: an expression failed to evaluate, a cast
// failed, or the event is not of the chain's contract. The engine dead-letters the event with
// reason "transform". Its text never holds event values, so it is safe for logs and
// dead-letter headers.
type Error struct {
	Route string // route name
	Step  string // e.g. `transforms[2] set "amount_cents"`, or "" for the whole chain
	Msg   string
}

func (e *Error) Error() string {
	if e.Step == "" {
		return fmt.Sprintf("transform route %q: %s", e.Route, e.Msg)
	}
	return fmt.Sprintf("transform route %q %s: %s", e.Route, e.Step, e.Msg)
}

// Apply transforms one event and appends the results to dst: none when a filter drops the
// event (or the exploded list is empty), one, or one per element of the exploded list. in
// must be a message of Input() (read only: it is never modified, so a hyperpb message is
// fine); rec supplies the Kafka metadata (topic, partition, offset, key, headers, timestamp)
// and may be nil.
//
// Results are dynamicpb messages of Schema(), except that the identity chain returns in
// itself. They may share read-only sub-messages and bytes with in, so they are valid as long
// as in is (for hyperpb messages: until the decoder's Release). Apply is safe for concurrent
// use and never panics; on error it returns dst unchanged and an *Error.
func (c *Chain) Apply(in protoreflect.Message, rec *event.Record, dst []protoreflect.Message) (out []protoreflect.Message, err error) {
	if c.identity {
		return append(dst, in), nil
	}
	if in == nil || !in.IsValid() {
		return dst, &Error{Route: c.route, Msg: "no event"}
	}
	if md := in.Descriptor(); md != c.input && md.FullName() != c.input.FullName() {
		return dst, &Error{Route: c.route, Msg: fmt.Sprintf("event is a %s, the chain was compiled for %s", md.FullName(), c.input.FullName())}
	}
	n := len(dst)
	defer func() {
		if v := recover(); v != nil {
			out, err = dst[:n], &Error{Route: c.route, Msg: "internal error: " + panicText(v)}
		}
	}()
	ctx := c.ctxs.Get().(*evalCtx)
	ctx.Reset(in, rec)
	defer func() {
		ctx.reset()
		c.ctxs.Put(ctx)
	}()
	if ok, err := keep(ctx, c.filters); err != nil || !ok {
		return dst, c.wrap(err)
	}
	if c.explode == nil {
		m, err := c.row(ctx)
		if err != nil {
			return dst, c.wrap(err)
		}
		return append(dst, m), nil
	}
	lv, ok, err := c.explode.value(ctx)
	if err != nil || !ok {
		return dst, c.wrap(err)
	}
	list := lv.List()
	for i := range list.Len() {
		ctx.elem, ctx.HasElement = list.Get(i), true
		if c.usesElement {
			v, err := c.elemWriter.elemValue(ctx.elem)
			if err != nil {
				return dst[:n], c.wrap(err)
			}
			ctx.Element = celValue(c.elemType, v)
		}
		ok, err := keep(ctx, c.rowFilters)
		if err != nil {
			return dst[:n], c.wrap(err)
		}
		if !ok {
			continue
		}
		m, err := c.row(ctx)
		if err != nil {
			return dst[:n], c.wrap(err)
		}
		dst = append(dst, m)
	}
	return dst, nil
}

// wrap turns an evaluation failure into an *Error.
func (c *Chain) wrap(err error) error {
	if err == nil {
		return nil
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		return &Error{Route: c.route, Step: fe.step, Msg: fe.err.Error()}
	}
	return &Error{Route: c.route, Msg: err.Error()}
}

// panicText describes a recovered panic without values from the event: the type of the
// panic value, and the text of runtime errors (which name no data).
func panicText(v any) string {
	if e, ok := v.(interface{ RuntimeError() }); ok {
		return e.(error).Error()
	}
	return strconv.Quote(fmt.Sprintf("%T", v))
}
