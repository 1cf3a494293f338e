package contract

import (
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Proofs: protovalidate stays the validator, and the only source of violations. What it
// spends on a valid event is mostly the standard rules of plain fields (a regular expression
// per uuid and email field, 0.5 µs each on the benchmark machine), CEL evaluated through
// reflection, and the evaluator machinery around every rule. For each field and message
// (the contract's and every one nested in it) whose rules are all of the kinds below, the
// contract keeps a check that answers "certainly passes" or "not sure". protovalidate asks
// its Filter before it evaluates a field or a message's own rules; the checks answer, what
// they prove is skipped, and everything else is evaluated by protovalidate as before. When
// every rule of the contract is covered and all checks pass, protovalidate is not called.
//
// A check never decides that anything fails: what it cannot prove is handed to
// protovalidate, which reports the violation it finds. So a check that is too strict only
// costs time, and one that is too lax would be the only way to get a wrong verdict;
// TestProofs_agree_with_protovalidate and FuzzFormatChecks hold each check to the library's
// own verdict.
//
// Kinds proven (anything else on a field, including predefined rule extensions, repeated
// and map rules, and timestamp rules, leaves the field to protovalidate):
//   - required, and ignore (which only ever lets more values pass);
//   - string: uuid, tuuid, email, len/min_len/max_len, len_bytes/min_bytes/max_bytes, const,
//     prefix, suffix, contains, not_contains, in, not_in, pattern (also on
//     google.protobuf.StringValue);
//   - integers of every width and encoding: const, gt/gte/lt/lte, in, not_in (also on the
//     integer wrapper types);
//   - enum: const, defined_only, in, not_in;
//   - google.protobuf.Duration: const, gt/gte/lt/lte;
//   - CEL rules of fields and messages written in the subset of provecel.go;
//   - a message field whose type, and everything reachable from it, is proven whole (or has
//     no rules); skipping the field skips its message's rules too.

// fieldCheck reports whether value v of a field certainly passes the field's rules.
type fieldCheck func(v protoreflect.Value) bool

// fieldProof is the check of one field.
type fieldProof struct {
	fd       protoreflect.FieldDescriptor
	required bool
	presence bool // fd.HasPresence(), which protocompile's descriptors compute on each call
	message  bool // a singular message field
	// inner is the wrapper's "value" field when fd is a google.protobuf wrapper message; the
	// check then applies to it.
	inner protoreflect.FieldDescriptor
	check fieldCheck // nil: the field passes whenever the required rule does
}

// messageProof is what is proven of one message type.
type messageProof struct {
	// rules: the message-level rules are all CEL of the subset (provecel.go), compiled in
	// cel; false when there is any other (oneof rules, CEL outside the subset).
	rules bool
	cel   []fieldCheck
	// fields are the proofs of its fields that have rules, or whose message type has.
	fields []*fieldProof
	// whole: every rule of the message and of the messages reachable from it is in rules,
	// cel and fields, so a message passing all of them is valid without protovalidate.
	whole bool
}

// passesRules reports whether msg certainly passes its message-level rules.
func (m *messageProof) passesRules(msg protoreflect.Message) bool {
	if !m.rules {
		return false
	}
	v := protoreflect.ValueOfMessage(msg)
	for _, c := range m.cel {
		if !c(v) {
			return false
		}
	}
	return true
}

// passesWhole reports whether msg, of a whole type, is certainly valid.
func (m *messageProof) passesWhole(msg protoreflect.Message) bool {
	if !m.passesRules(msg) {
		return false
	}
	for _, f := range m.fields {
		if !f.passes(msg) {
			return false
		}
	}
	return true
}

// proofs are a contract's checks, built once; they are also the protovalidate Filter that
// skips what they prove, so one validation option serves every call.
type proofs struct {
	desc protoreflect.MessageDescriptor
	// byField and byMessage hold the proofs of every message type reachable from desc:
	// protovalidate asks the filter about each message and field it evaluates, at any depth.
	byField   map[protoreflect.FieldDescriptor]*fieldProof
	byMessage map[protoreflect.MessageDescriptor]*messageProof
	top       *messageProof
	opt       protovalidate.ValidationOption
}

// newProofs builds the checks of md and the messages reachable from it; nil when nothing
// can be proven.
func newProofs(md protoreflect.MessageDescriptor) *proofs {
	p := &proofs{
		desc:      md,
		byField:   make(map[protoreflect.FieldDescriptor]*fieldProof),
		byMessage: make(map[protoreflect.MessageDescriptor]*messageProof),
	}
	p.top = p.message(md)
	if len(p.byField) == 0 && !p.top.rules {
		return nil
	}
	p.opt = protovalidate.WithFilter(p)
	return p
}

// message builds (once) the proofs of md and of the messages reachable from it. A type met
// again while it is being built (a recursive message) counts as not whole there.
func (p *proofs) message(md protoreflect.MessageDescriptor) *messageProof {
	if m, ok := p.byMessage[md]; ok {
		return m
	}
	m := &messageProof{}
	p.byMessage[md] = m
	m.rules, m.cel = messageRules(md)
	whole := m.rules
	oneofs := md.Oneofs()
	for i := range oneofs.Len() {
		if r, err := protovalidate.ResolveOneofRules(oneofs.Get(i)); err != nil || r != nil {
			whole = false
		}
	}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		var sub *messageProof
		subRules := false
		if sd := elemMessage(fd); sd != nil {
			sub = p.message(sd)
			subRules = hasRules(sd, make(map[protoreflect.FullName]bool))
		}
		fr, err := protovalidate.ResolveFieldRules(fd)
		if err != nil {
			whole = false
			continue
		}
		if fr == nil && !subRules {
			continue // nothing for protovalidate to evaluate
		}
		proof, ok := proveField(fd, fr, sub, subRules)
		if !ok {
			whole = false
			continue
		}
		p.byField[fd] = &proof
		m.fields = append(m.fields, &proof)
	}
	m.whole = whole
	return m
}

// messageRules compiles md's message-level rules; ok is true when there are none, or all
// are CEL of the subset.
func messageRules(md protoreflect.MessageDescriptor) (bool, []fieldCheck) {
	r, err := protovalidate.ResolveMessageRules(md)
	if err != nil {
		return false, nil
	}
	if r == nil {
		return true, nil
	}
	rest := proto.Clone(r).(*validate.MessageRules)
	rest.SetCel(nil)
	rest.SetCelExpression(nil)
	if !empty(rest) {
		return false, nil
	}
	cel, ok := compileRules(r.GetCel(), r.GetCelExpression(), messageRoot(md))
	return ok, cel
}

// compileRules compiles CEL rules with `this` typed as root.
func compileRules(rules []*validate.Rule, exprs []string, root celNode) ([]fieldCheck, bool) {
	var out []fieldCheck
	for _, r := range rules {
		exprs = append(exprs, r.GetExpression())
	}
	for _, e := range exprs {
		c, ok := compileCELProof(e, root)
		if !ok {
			return nil, false
		}
		out = append(out, c)
	}
	return out, true
}

func elemMessage(fd protoreflect.FieldDescriptor) protoreflect.MessageDescriptor {
	if fd.IsMap() {
		fd = fd.MapValue()
	}
	return fd.Message()
}

func (f *fieldProof) passes(msg protoreflect.Message) bool {
	// An unset field with presence is skipped by protovalidate unless required; an unset
	// implicit-presence scalar is its zero value, checked as any other (Get returns it).
	if f.message {
		// One look-up instead of Has and Get: an unset message field reads as an invalid
		// (empty, read-only) message.
		if !f.required && f.check == nil {
			return true
		}
		v := msg.Get(f.fd)
		if !v.Message().IsValid() {
			return !f.required
		}
		if f.check == nil {
			return true
		}
		if f.inner != nil {
			v = v.Message().Get(f.inner)
		}
		return f.check(v)
	}
	if f.required || (f.presence && f.check != nil) {
		if !msg.Has(f.fd) {
			return !f.required
		}
	}
	if f.check == nil {
		return true
	}
	return f.check(msg.Get(f.fd))
}

// ShouldValidate implements protovalidate.Filter: a field is evaluated unless its proof
// passes on msg, the message that holds it, and a message's own rules unless their proof
// passes.
func (p *proofs) ShouldValidate(msg protoreflect.Message, d protoreflect.Descriptor) bool {
	switch d := d.(type) {
	case protoreflect.FieldDescriptor:
		f := p.byField[d]
		return f == nil || !f.passes(msg)
	case protoreflect.MessageDescriptor:
		m := p.byMessage[d]
		return m == nil || len(m.cel) == 0 || !m.passesRules(msg)
	}
	return true // oneof rules
}

// validate runs v on msg with the proven fields skipped.
func (p *proofs) validate(v protovalidate.Validator, msg protoreflect.Message) error {
	if msg.Descriptor() != p.desc {
		// Another descriptor of the same message (a generated Go type in the producer):
		// the proofs' field descriptors are not its own.
		return v.Validate(msg.Interface())
	}
	if p.top.whole && p.top.passesWhole(msg) {
		return nil
	}
	return v.Validate(msg.Interface(), p.opt)
}

// proveField builds the proof of fd from its resolved rules (nil when it has none of its
// own) and the proof of its message type (sub, whose subtree has rules when subRules); ok
// is false when some rule is of a kind not proven here.
func proveField(fd protoreflect.FieldDescriptor, fr *validate.FieldRules, sub *messageProof, subRules bool) (fieldProof, bool) {
	if fr == nil {
		fr = &validate.FieldRules{}
	}
	proof := fieldProof{fd: fd, required: fr.GetRequired(), presence: fd.HasPresence(), message: fd.Message() != nil && !fd.IsList() && !fd.IsMap()}
	if fd.IsList() || fd.IsMap() || fd.IsExtension() || fr.GetIgnore() == validate.Ignore_IGNORE_ALWAYS {
		return proof, false
	}
	rest := proto.Clone(fr).(*validate.FieldRules)
	rest.ClearRequired()
	rest.ClearIgnore()
	rest.SetCel(nil)
	rest.SetCelExpression(nil)
	typ := rest.ProtoReflect().WhichOneof(rest.ProtoReflect().Descriptor().Oneofs().ByName("type"))
	if typ != nil {
		rest.ProtoReflect().Clear(typ)
	}
	if !empty(rest) {
		return proof, false // a rule this version of the proofs does not know
	}
	var checks []fieldCheck
	if len(fr.GetCel()) > 0 || len(fr.GetCelExpression()) > 0 {
		root, ok := celRoot(fd)
		if !ok {
			return proof, false
		}
		cel, ok := compileRules(fr.GetCel(), fr.GetCelExpression(), root)
		if !ok {
			return proof, false
		}
		checks = append(checks, cel...)
	}
	target := fd
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		if subRules {
			// Skipping the field skips its message's rules too: they must all be proven.
			if typ != nil || !sub.whole {
				return proof, false
			}
			checks = append(checks, func(v protoreflect.Value) bool { return sub.passesWhole(v.Message()) })
			proof.check = allOf(checks)
			return proof, true
		}
		if typ == nil {
			proof.check = allOf(checks)
			return proof, true // required and CEL at most, on a type without rules
		}
		switch fd.Message().FullName() {
		case "google.protobuf.Duration":
			if typ.Name() != "duration" {
				return proof, false
			}
			check, ok := durationCheck(fr.GetDuration(), fd.Message())
			proof.check = allOf(append(checks, check))
			return proof, ok
		case "google.protobuf.StringValue", "google.protobuf.Int32Value", "google.protobuf.Int64Value",
			"google.protobuf.UInt32Value", "google.protobuf.UInt64Value":
			if len(checks) > 0 {
				return proof, false // CEL sees the unwrapped value; not proven here
			}
			target = fd.Message().Fields().ByName("value")
			proof.inner = target
		default:
			return proof, false
		}
	} else if typ == nil {
		proof.check = allOf(checks)
		return proof, true // required and CEL at most
	}
	rules := fr.ProtoReflect().Get(typ).Message()
	var check fieldCheck
	var ok bool
	switch target.Kind() {
	case protoreflect.StringKind:
		if typ.Name() == "string" {
			check, ok = stringCheck(fr.GetString())
		}
	case protoreflect.EnumKind:
		if typ.Name() == "enum" {
			check, ok = enumCheck(fr.GetEnum(), target.Enum())
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		check, ok = intCheck(rules, typ.Name(), target.Kind())
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		check, ok = uintCheck(rules, typ.Name(), target.Kind())
	}
	proof.check = allOf(append(checks, check))
	return proof, ok
}

// allOf is the check passing when every one of checks does; nil when there are none.
func allOf(checks []fieldCheck) fieldCheck {
	switch len(checks) {
	case 0:
		return nil
	case 1:
		return checks[0]
	case 2:
		a, b := checks[0], checks[1]
		return func(v protoreflect.Value) bool { return a(v) && b(v) }
	}
	return func(v protoreflect.Value) bool {
		for _, c := range checks {
			if !c(v) {
				return false
			}
		}
		return true
	}
}

// empty reports whether m has no field set and no unknown fields (predefined rules are
// extensions, which protovalidate resolves from unknown bytes).
func empty(m proto.Message) bool {
	r := m.ProtoReflect()
	has := len(r.GetUnknown()) > 0
	r.Range(func(protoreflect.FieldDescriptor, protoreflect.Value) bool { has = true; return false })
	return !has
}

// without returns a copy of rules with the named fields cleared, and whether nothing else
// is left.
func without(rules protoreflect.Message, names ...protoreflect.Name) bool {
	rest := proto.Clone(rules.Interface())
	fields := rest.ProtoReflect().Descriptor().Fields()
	for _, n := range names {
		if fd := fields.ByName(n); fd != nil {
			rest.ProtoReflect().Clear(fd)
		}
	}
	return empty(rest)
}

func stringCheck(r *validate.StringRules) (fieldCheck, bool) {
	if !without(r.ProtoReflect(), "uuid", "tuuid", "email", "len", "min_len", "max_len", "len_bytes",
		"min_bytes", "max_bytes", "const", "prefix", "suffix", "contains", "not_contains", "in", "not_in", "example", "pattern") {
		return nil, false
	}
	// A well-known rule set to false is no rule; keep it simple and leave it to protovalidate.
	if (r.HasUuid() && !r.GetUuid()) || (r.HasTuuid() && !r.GetTuuid()) || (r.HasEmail() && !r.GetEmail()) {
		return nil, false
	}
	var checks []func(string) bool
	switch {
	case r.GetUuid():
		checks = append(checks, isUUID)
	case r.GetTuuid():
		checks = append(checks, isTrimmedUUID)
	case r.GetEmail():
		checks = append(checks, isEmail)
	}
	if r.HasLen() || r.HasMinLen() || r.HasMaxLen() {
		hasLen, n := r.HasLen(), r.GetLen()
		hasMin, lo := r.HasMinLen(), r.GetMinLen()
		hasMax, hi := r.HasMaxLen(), r.GetMaxLen()
		checks = append(checks, func(s string) bool {
			c := uint64(utf8.RuneCountInString(s))
			return (!hasLen || c == n) && (!hasMin || c >= lo) && (!hasMax || c <= hi)
		})
	}
	if r.HasLenBytes() || r.HasMinBytes() || r.HasMaxBytes() {
		hasLen, n := r.HasLenBytes(), r.GetLenBytes()
		hasMin, lo := r.HasMinBytes(), r.GetMinBytes()
		hasMax, hi := r.HasMaxBytes(), r.GetMaxBytes()
		checks = append(checks, func(s string) bool {
			c := uint64(len(s))
			return (!hasLen || c == n) && (!hasMin || c >= lo) && (!hasMax || c <= hi)
		})
	}
	if r.HasPattern() {
		// The same RE2 pattern protovalidate compiles; proven so that a message with one
		// can still be skipped whole.
		match, ok := compilePattern(r.GetPattern())
		if !ok {
			return nil, false
		}
		checks = append(checks, match)
	}
	if r.HasConst() {
		want := r.GetConst()
		checks = append(checks, func(s string) bool { return s == want })
	}
	if r.HasPrefix() {
		p := r.GetPrefix()
		checks = append(checks, func(s string) bool { return strings.HasPrefix(s, p) })
	}
	if r.HasSuffix() {
		p := r.GetSuffix()
		checks = append(checks, func(s string) bool { return strings.HasSuffix(s, p) })
	}
	if r.HasContains() {
		p := r.GetContains()
		checks = append(checks, func(s string) bool { return strings.Contains(s, p) })
	}
	if r.HasNotContains() {
		p := r.GetNotContains()
		checks = append(checks, func(s string) bool { return !strings.Contains(s, p) })
	}
	if in := r.GetIn(); len(in) > 0 {
		checks = append(checks, func(s string) bool { return slices.Contains(in, s) })
	}
	if notIn := r.GetNotIn(); len(notIn) > 0 {
		checks = append(checks, func(s string) bool { return !slices.Contains(notIn, s) })
	}
	return func(v protoreflect.Value) bool {
		s := v.String()
		for _, c := range checks {
			if !c(s) {
				return false
			}
		}
		return true
	}, true
}

func enumCheck(r *validate.EnumRules, ed protoreflect.EnumDescriptor) (fieldCheck, bool) {
	if !without(r.ProtoReflect(), "const", "defined_only", "in", "not_in", "example") {
		return nil, false
	}
	hasConst, want := r.HasConst(), r.GetConst()
	defined, values := r.GetDefinedOnly(), ed.Values()
	in, notIn := r.GetIn(), r.GetNotIn()
	return func(v protoreflect.Value) bool {
		n := int32(v.Enum())
		return (!hasConst || n == want) &&
			(!defined || values.ByNumber(protoreflect.EnumNumber(n)) != nil) &&
			(len(in) == 0 || slices.Contains(in, n)) &&
			!slices.Contains(notIn, n)
	}, true
}

// numericRuleNames are the rules proven on integers (and durations).
var numericRuleNames = []protoreflect.Name{"const", "lt", "lte", "gt", "gte", "in", "not_in", "example"}

// bounds are the numeric rules of an integer field as ranges over int64 or uint64.
type bounds[T int64 | uint64] struct {
	hasConst, hasLt, hasLte, hasGt, hasGte bool
	konst, lt, lte, gt, gte                T
	in, notIn                              []T
}

// passes reports whether x satisfies every bound at once. protovalidate reads gt > lt as an
// exclusive range (x > gt or x < lt); no x satisfies both there, so such a field is never
// proven and stays protovalidate's.
func (b *bounds[T]) passes(x T) bool {
	return (!b.hasConst || x == b.konst) &&
		(!b.hasLt || x < b.lt) && (!b.hasLte || x <= b.lte) &&
		(!b.hasGt || x > b.gt) && (!b.hasGte || x >= b.gte) &&
		(len(b.in) == 0 || slices.Contains(b.in, x)) && !slices.Contains(b.notIn, x)
}

func readBounds[T int64 | uint64](rules protoreflect.Message, conv func(protoreflect.Value) T) bounds[T] {
	fields := rules.Descriptor().Fields()
	get := func(name protoreflect.Name) (T, bool) {
		fd := fields.ByName(name)
		if fd == nil || !rules.Has(fd) {
			return 0, false
		}
		return conv(rules.Get(fd)), true
	}
	list := func(name protoreflect.Name) []T {
		fd := fields.ByName(name)
		if fd == nil {
			return nil
		}
		l := rules.Get(fd).List()
		out := make([]T, l.Len())
		for i := range out {
			out[i] = conv(l.Get(i))
		}
		return out
	}
	var b bounds[T]
	b.konst, b.hasConst = get("const")
	b.lt, b.hasLt = get("lt")
	b.lte, b.hasLte = get("lte")
	b.gt, b.hasGt = get("gt")
	b.gte, b.hasGte = get("gte")
	b.in, b.notIn = list("in"), list("not_in")
	return b
}

// intRules maps a signed integer field kind to the FieldRules type it takes.
var intRules = map[protoreflect.Kind]protoreflect.Name{
	protoreflect.Int32Kind: "int32", protoreflect.Sint32Kind: "sint32", protoreflect.Sfixed32Kind: "sfixed32",
	protoreflect.Int64Kind: "int64", protoreflect.Sint64Kind: "sint64", protoreflect.Sfixed64Kind: "sfixed64",
	protoreflect.Uint32Kind: "uint32", protoreflect.Fixed32Kind: "fixed32",
	protoreflect.Uint64Kind: "uint64", protoreflect.Fixed64Kind: "fixed64",
}

func intCheck(rules protoreflect.Message, typ protoreflect.Name, kind protoreflect.Kind) (fieldCheck, bool) {
	if intRules[kind] != typ || !without(rules, numericRuleNames...) {
		return nil, false
	}
	b := readBounds(rules, protoreflect.Value.Int)
	return func(v protoreflect.Value) bool { return b.passes(v.Int()) }, true
}

func uintCheck(rules protoreflect.Message, typ protoreflect.Name, kind protoreflect.Kind) (fieldCheck, bool) {
	if intRules[kind] != typ || !without(rules, numericRuleNames...) {
		return nil, false
	}
	b := readBounds(rules, protoreflect.Value.Uint)
	return func(v protoreflect.Value) bool { return b.passes(v.Uint()) }, true
}

// maxExactSeconds bounds the durations proven: within it, seconds and nanos convert to a
// time.Duration exactly, which is what protovalidate's CEL rules compare.
const maxExactSeconds = math.MaxInt64/int64(time.Second) - 1

func durationCheck(r *validate.DurationRules, md protoreflect.MessageDescriptor) (fieldCheck, bool) {
	if r == nil || !without(r.ProtoReflect(), numericRuleNames...) || len(r.GetIn()) > 0 || len(r.GetNotIn()) > 0 {
		return nil, false
	}
	var b bounds[int64]
	for _, bound := range []struct {
		has bool
		d   interface {
			GetSeconds() int64
			GetNanos() int32
		}
		dst  *int64
		flag *bool
	}{
		{r.HasConst(), r.GetConst(), &b.konst, &b.hasConst},
		{r.HasLt(), r.GetLt(), &b.lt, &b.hasLt},
		{r.HasLte(), r.GetLte(), &b.lte, &b.hasLte},
		{r.HasGt(), r.GetGt(), &b.gt, &b.hasGt},
		{r.HasGte(), r.GetGte(), &b.gte, &b.hasGte},
	} {
		if !bound.has {
			continue
		}
		ns, ok := exactDuration(bound.d.GetSeconds(), bound.d.GetNanos())
		if !ok {
			return nil, false
		}
		*bound.dst, *bound.flag = ns, true
	}
	secs, nanos := md.Fields().ByName("seconds"), md.Fields().ByName("nanos")
	return func(v protoreflect.Value) bool {
		m := v.Message()
		ns, ok := exactDuration(m.Get(secs).Int(), int32(m.Get(nanos).Int()))
		return ok && b.passes(ns)
	}, true
}

// exactDuration returns the duration in nanoseconds when seconds and nanos are a valid
// google.protobuf.Duration well within time.Duration's range.
func exactDuration(seconds int64, nanos int32) (int64, bool) {
	if seconds > maxExactSeconds || seconds < -maxExactSeconds || nanos <= -1e9 || nanos >= 1e9 ||
		(seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0) {
		return 0, false
	}
	return seconds*int64(time.Second) + int64(nanos), true
}

// isUUID is protovalidate's ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$.
func isUUID(s string) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	// Eight bytes at a time, the four dashes (checked above) read as '0'. Bytes 8 and 13 are
	// bytes 0 and 5 of the second word, 18 and 23 bytes 2 and 7 of the third.
	const (
		dash1 = 0xff | 0xff<<40
		zero1 = '0' | '0'<<40
		dash2 = 0xff<<16 | 0xff<<56
		zero2 = '0'<<16 | '0'<<56
	)
	return hex8(le64(s[0:]))&hex8(le64(s[8:])&^dash1|zero1)&hex8(le64(s[16:])&^dash2|zero2)&
		hex8(le64(s[24:]))&hex8(le64(s[28:])) != 0
}

// isTrimmedUUID is protovalidate's ^[0-9a-fA-F]{32}$.
func isTrimmedUUID(s string) bool {
	return len(s) == 32 && hex8(le64(s[0:]))&hex8(le64(s[8:]))&hex8(le64(s[16:]))&hex8(le64(s[24:])) != 0
}

// le64 is the first eight bytes of s, little-endian (one load).
func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// hex8 is non-zero when all eight bytes of w are ASCII hex digits ([0-9a-fA-F]).
func hex8(w uint64) uint64 {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	if w&high != 0 {
		return 0
	}
	// For bytes below 0x80, b+(0x80-lo) has its high bit set when b >= lo, and b+(0x7f-hi)
	// when b > hi; neither sum carries into the next byte.
	inRange := func(w uint64, lo, hi byte) uint64 {
		return (w + (0x80-uint64(lo))*ones) &^ (w + (0x7f-uint64(hi))*ones) & high
	}
	if inRange(w, '0', '9')|inRange(w|0x20*ones, 'a', 'f') != high {
		return 0
	}
	return 1
}

const (
	classAlnum = 1 << iota
	classLocal // the local part of an email address
)

var charClass = func() (t [256]uint8) {
	for c := range 256 {
		b := byte(c)
		if '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' {
			t[c] |= classAlnum | classLocal
		}
		if strings.IndexByte(".!#$%&'*+/=?^_`{|}~-", b) >= 0 {
			t[c] |= classLocal
		}
	}
	return t
}()

func isAlnum(c byte) bool { return charClass[c]&classAlnum != 0 }

// isEmail is protovalidate's (the WHATWG HTML form's) address pattern:
// ^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$
func isEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at < 1 {
		return false
	}
	for i := 0; i < at; i++ {
		if charClass[s[i]]&classLocal == 0 {
			return false
		}
	}
	domain := s[at+1:]
	for {
		label := domain
		dot := strings.IndexByte(domain, '.')
		if dot >= 0 {
			label = domain[:dot]
		}
		if len(label) == 0 || len(label) > 63 || !isAlnum(label[0]) || !isAlnum(label[len(label)-1]) {
			return false
		}
		for i := 1; i < len(label)-1; i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return false
			}
		}
		if dot < 0 {
			return true
		}
		domain = domain[dot+1:]
	}
}
