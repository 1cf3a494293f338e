// Package eventgen generates realistic events of the sample contracts in contracts/
// (livestream.v1.ViewStarted, auctions.v1.BidPlaced, orders.v1.OrderPaid) for
// `switchyard dev`, tests and benchmarks: valid events, events that decode but violate a
// buf.validate rule, and payloads that do not decode, in any contract.Encoding.
//
// Output is deterministic for a given Options.Seed and sequence of calls.
package eventgen

import (
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/switchyard-dev/switchyard/contract"
)

// Full names of the contracts a Generator produces.
const (
	ViewStarted = "livestream.v1.ViewStarted"
	BidPlaced   = "auctions.v1.BidPlaced"
	OrderPaid   = "orders.v1.OrderPaid"
)

// Names lists the contracts a Generator produces.
func Names() []string { return []string{ViewStarted, BidPlaced, OrderPaid} }

// Kind is what an Event is meant to exercise.
type Kind int

const (
	// Valid events decode and pass validation.
	Valid Kind = iota
	// Invalid events decode but violate Event.Rule.
	Invalid
	// Undecodable payloads fail Decoder.Decode with a DecodeError of reason Event.Rule.
	Undecodable
)

// String returns "valid", "invalid" or "undecodable".
func (k Kind) String() string {
	switch k {
	case Valid:
		return "valid"
	case Invalid:
		return "invalid"
	case Undecodable:
		return "undecodable"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Event is one generated event.
type Event struct {
	// Contract is the full name of the event's message.
	Contract string
	Kind     Kind
	// Rule is, for Invalid, the rule id the event violates (it may violate others too)
	// and, for Undecodable, the expected contract.DecodeError reason. Empty for Valid.
	Rule string
	// Message is the event before encoding; nil for Undecodable.
	Message *dynamicpb.Message
	// Payload is the encoded event.
	Payload []byte
}

// Options configure a Generator. The zero value is usable.
type Options struct {
	// Seed makes the output reproducible.
	Seed uint64
	// InvalidRate is the fraction of Next events that are not Valid, split evenly between
	// Invalid and Undecodable; e.g. 0.01 for the usual 1%. 0 generates only valid events.
	InvalidRate float64
	// SchemaID is written into Confluent frames; 0 means 1.
	SchemaID uint32
	// Start is the occurred_at of the first event; later events advance by up to 50ms
	// each. Zero means 2025-06-01T18:00:00Z, which keeps output reproducible. Ignored when
	// Clock is set.
	Start time.Time
	// Clock, when set, makes event times track it instead of a simulated clock: each event
	// occurs at Clock() minus a random lateness of up to MaxLateness, as events reach Kafka
	// a little after they happen. Use time.Now for a live generator (switchyard dev), whose
	// "last hour" queries must find its events; the output is then not reproducible.
	Clock func() time.Time
}

// MaxLateness is how far before Options.Clock's time an event may have occurred.
const MaxLateness = 2 * time.Second

// Generator produces events. It is not safe for concurrent use.
type Generator struct {
	opts      Options
	rng       *rand.Rand
	now       time.Time
	contracts map[string]*contract.Contract

	users, shows, streams, auctions, lots, listings, sellers []string
	bidSeq                                                   map[string]uint64
}

// New returns a Generator for the sample contracts, which reg must contain (load it from
// the repository's contracts/ directory).
func New(reg *contract.Registry, opts Options) (*Generator, error) {
	if opts.SchemaID == 0 {
		opts.SchemaID = 1
	}
	if opts.Start.IsZero() {
		opts.Start = time.Date(2025, 6, 1, 18, 0, 0, 0, time.UTC)
	}
	g := &Generator{
		opts:      opts,
		rng:       rand.New(rand.NewPCG(opts.Seed, 0x5717c4a7d)),
		now:       opts.Start,
		contracts: make(map[string]*contract.Contract),
		bidSeq:    make(map[string]uint64),
	}
	for _, name := range Names() {
		c, err := reg.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("new event generator: %w", err)
		}
		g.contracts[name] = c
	}
	pool := func(n int) []string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = g.uuid()
		}
		return ids
	}
	g.users, g.sellers = pool(2000), pool(50)
	g.shows, g.streams = pool(20), pool(20)
	g.auctions, g.lots, g.listings = pool(200), pool(200), pool(500)
	return g, nil
}

// Contract returns the contract of one of Names.
func (g *Generator) Contract(name string) (*contract.Contract, error) {
	c, ok := g.contracts[name]
	if !ok {
		return nil, fmt.Errorf("event generator: unknown contract %q (want one of %v)", name, Names())
	}
	return c, nil
}

// Next returns an event of a random contract (60% ViewStarted, 30% BidPlaced, 10%
// OrderPaid) encoded in enc, Invalid or Undecodable with probability Options.InvalidRate.
func (g *Generator) Next(enc contract.Encoding) Event {
	var name string
	switch p := g.rng.IntN(10); {
	case p < 6:
		name = ViewStarted
	case p < 9:
		name = BidPlaced
	default:
		name = OrderPaid
	}
	ev, err := g.NextOf(name, enc)
	if err != nil {
		panic(err) // unreachable: name is one of Names and the contract encodes its own messages
	}
	return ev
}

// NextOf is Next for one contract.
func (g *Generator) NextOf(name string, enc contract.Encoding) (Event, error) {
	kind := Valid
	if g.opts.InvalidRate > 0 && g.rng.Float64() < g.opts.InvalidRate {
		kind = Invalid
		if g.rng.IntN(2) == 0 {
			kind = Undecodable
		}
	}
	return g.Make(name, kind, enc)
}

// Make returns an event of the given contract and kind encoded in enc.
func (g *Generator) Make(name string, kind Kind, enc contract.Encoding) (Event, error) {
	c, err := g.Contract(name)
	if err != nil {
		return Event{}, err
	}
	ev := Event{Contract: name, Kind: kind}
	switch kind {
	case Valid:
		ev.Message = g.valid(name)
	case Invalid:
		ev.Message, ev.Rule = g.invalid(name)
	case Undecodable:
		valid, err := c.Encode(g.valid(name), enc, g.opts.SchemaID)
		if err != nil {
			return Event{}, err
		}
		ev.Payload, ev.Rule = g.corrupt(valid, enc)
		return ev, nil
	default:
		return Event{}, fmt.Errorf("event generator: unknown kind %d", int(kind))
	}
	ev.Payload, err = c.Encode(ev.Message, enc, g.opts.SchemaID)
	if err != nil {
		return Event{}, err
	}
	return ev, nil
}

// Valid returns a new valid message of the named contract.
func (g *Generator) Valid(name string) (*dynamicpb.Message, error) {
	if _, err := g.Contract(name); err != nil {
		return nil, err
	}
	return g.valid(name), nil
}

// Invalid returns a new message of the named contract that violates the returned rule
// id (and possibly others).
func (g *Generator) Invalid(name string) (*dynamicpb.Message, string, error) {
	if _, err := g.Contract(name); err != nil {
		return nil, "", err
	}
	m, rule := g.invalid(name)
	return m, rule, nil
}

func (g *Generator) valid(name string) *dynamicpb.Message {
	m := g.contracts[name].New()
	switch name {
	case ViewStarted:
		g.fillViewStarted(m)
	case BidPlaced:
		g.fillBidPlaced(m)
	case OrderPaid:
		g.fillOrderPaid(m)
	}
	return m
}

func (g *Generator) invalid(name string) (*dynamicpb.Message, string) {
	m := g.valid(name)
	var breakers []breaker
	switch name {
	case ViewStarted:
		breakers = viewStartedBreakers
	case BidPlaced:
		breakers = bidPlacedBreakers
	case OrderPaid:
		breakers = orderPaidBreakers
	}
	b := breakers[g.rng.IntN(len(breakers))]
	b.apply(g, m)
	return m, b.rule
}

// corrupt turns a valid payload into one that cannot be decoded in enc, returning the
// DecodeError reason to expect.
func (g *Generator) corrupt(valid []byte, enc contract.Encoding) ([]byte, string) {
	// A protobuf field with wire type 7 does not exist: no parser accepts it.
	badField := []byte{0x0f}
	switch enc {
	case contract.Confluent:
		switch g.rng.IntN(3) {
		case 0: // wrong magic byte
			out := append([]byte(nil), valid...)
			out[0] = 0x01
			return out, contract.ReasonFraming
		case 1: // truncated header
			return append([]byte(nil), valid[:g.rng.IntN(5)]...), contract.ReasonFraming
		default: // good header, broken body
			return append(append([]byte(nil), valid...), badField...), contract.ReasonProtobuf
		}
	case contract.Raw:
		if g.rng.IntN(2) == 0 {
			return append(append([]byte(nil), valid...), badField...), contract.ReasonProtobuf
		}
		// Field 1 (event_id, a proto3 string) holding invalid UTF-8.
		return append(append([]byte(nil), valid...), 0x0a, 0x02, 0xff, 0xfe), contract.ReasonProtobuf
	default:
		if g.rng.IntN(2) == 0 {
			return append([]byte(nil), valid[:len(valid)/2]...), contract.ReasonJSON // truncated
		}
		return []byte(`{"eventId": 42}`), contract.ReasonJSON // wrong type
	}
}

// tick advances the event clock: the simulated one, or Options.Clock minus a lateness.
func (g *Generator) tick() time.Time {
	if g.opts.Clock != nil {
		return g.opts.Clock().Add(-time.Duration(g.rng.Int64N(int64(MaxLateness))))
	}
	g.now = g.now.Add(time.Duration(g.rng.IntN(50_000)) * time.Microsecond)
	return g.now
}

// uuid returns a random (version 4) UUID from the generator's seeded source.
func (g *Generator) uuid() string {
	var b [16]byte
	hi, lo := g.rng.Uint64(), g.rng.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (8 * i))
		b[8+i] = byte(lo >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[c>>4], hex[c&0x0f])
	}
	return string(out)
}

func (g *Generator) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }

// field returns the descriptor of m's field name; a missing field is a bug in this
// package or in contracts/, so it panics with the name.
func field(m protoreflect.Message, name string) protoreflect.FieldDescriptor {
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		panic(fmt.Sprintf("eventgen: %s has no field %q", m.Descriptor().FullName(), name))
	}
	return fd
}

func set(m protoreflect.Message, name string, v protoreflect.Value) { m.Set(field(m, name), v) }

func setString(m protoreflect.Message, name, v string) { set(m, name, protoreflect.ValueOfString(v)) }

func sub(m protoreflect.Message, name string) protoreflect.Message {
	return m.Mutable(field(m, name)).Message()
}

func setEnum(m protoreflect.Message, name, value string) {
	fd := field(m, name)
	ev := fd.Enum().Values().ByName(protoreflect.Name(value))
	if ev == nil {
		panic(fmt.Sprintf("eventgen: enum %s has no value %s", fd.Enum().FullName(), value))
	}
	m.Set(fd, protoreflect.ValueOfEnum(ev.Number()))
}

func setTime(m protoreflect.Message, name string, t time.Time) {
	ts := sub(m, name)
	setInt64(ts, "seconds", t.Unix())
	set(ts, "nanos", protoreflect.ValueOfInt32(int32(t.Nanosecond())))
}

func setDuration(m protoreflect.Message, name string, d time.Duration) {
	pd := sub(m, name)
	setInt64(pd, "seconds", int64(d/time.Second))
	set(pd, "nanos", protoreflect.ValueOfInt32(int32(d%time.Second)))
}

func setInt64(m protoreflect.Message, name string, v int64) {
	set(m, name, protoreflect.ValueOfInt64(v))
}

// setMoney sets a common.v1.Money to cents/100 in currency.
func setMoney(m protoreflect.Message, name, currency string, cents int64) {
	mm := sub(m, name)
	setString(mm, "currency_code", currency)
	setInt64(mm, "units", cents/100)
	set(mm, "nanos", protoreflect.ValueOfInt32(int32(cents%100)*10_000_000))
}

func setWrapper(m protoreflect.Message, name string, v protoreflect.Value) {
	set(sub(m, name), "value", v)
}
