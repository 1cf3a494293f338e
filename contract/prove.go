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
// spends on a valid event is mostly the standard rules of plain fields: a regular expression
// per uuid and email field (0.5 µs each on the benchmark machine) and the evaluator machinery
// around every rule. For each field (of the message and of every message nested in it) whose
// rules are all of the kinds below, the contract keeps a check that answers "certainly
// passes" or "not sure". protovalidate asks its Filter before it evaluates a field; the
// checks answer, the fields they prove are skipped, and everything else (CEL, message and oneof rules, nested messages, every field not proven) is
// evaluated by protovalidate as before. A check never decides that a field fails: a field it
// cannot prove is handed to protovalidate, which reports the violation it finds. So a check
// that is too strict only costs time, and one that is too lax would be the only way to get a
// wrong verdict; TestProofs_agree_with_protovalidate and FuzzFormatChecks hold each check to the
// library's own verdict.
//
// Kinds proven (anything else on a field, including CEL, predefined rule extensions,
// repeated and map rules, and timestamp rules, leaves the field to protovalidate):
//   - required, and ignore (which only ever lets more values pass);
//   - string: uuid, tuuid, email, len/min_len/max_len, len_bytes/min_bytes/max_bytes, const,
//     prefix, suffix, contains, not_contains, in, not_in (also on google.protobuf.StringValue);
//   - integers of every width and encoding: const, gt/gte/lt/lte, in, not_in (also on the
//     integer wrapper types);
//   - enum: const, defined_only, in, not_in;
//   - google.protobuf.Duration: const, gt/gte/lt/lte;
//   - a message field with no rules of its own besides required, whose type has no rules.

// fieldCheck reports whether value v of a field certainly passes the field's rules.
type fieldCheck func(v protoreflect.Value) bool

// fieldProof is the check of one field.
type fieldProof struct {
	fd       protoreflect.FieldDescriptor
	required bool
	presence bool // fd.HasPresence(), which protocompile's descriptors compute on each call
	// inner is the wrapper's "value" field when fd is a google.protobuf wrapper message; the
	// check then applies to it.
	inner protoreflect.FieldDescriptor
	check fieldCheck // nil: the field passes whenever the required rule does
}

// proofs are a contract's checks, built once; they are also the protovalidate Filter that
// skips what they prove, so one validation option serves every call.
type proofs struct {
	desc protoreflect.MessageDescriptor
	// byField holds the proofs of every message type reachable from desc: protovalidate asks
	// the filter about each field of each message it evaluates, at any depth.
	byField map[protoreflect.FieldDescriptor]*fieldProof
	// top are the proofs of desc's own fields. whole: every rule reachable from desc is on
	// one of them, so when all of them pass protovalidate need not run at all.
	top   []*fieldProof
	whole bool
	opt   protovalidate.ValidationOption
}

// newProofs builds the checks of md and the messages reachable from it; nil when no field
// can be proven.
func newProofs(md protoreflect.MessageDescriptor) *proofs {
	p := &proofs{desc: md, byField: make(map[protoreflect.FieldDescriptor]*fieldProof)}
	p.top, p.whole = p.addMessage(md, make(map[protoreflect.FullName]bool))
	if len(p.byField) == 0 {
		return nil
	}
	p.opt = protovalidate.WithFilter(p)
	return p
}

// addMessage adds the proofs of md's fields, and of the messages reachable from it, and
// returns md's own and whether they cover every rule of md.
func (p *proofs) addMessage(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) ([]*fieldProof, bool) {
	seen[md.FullName()] = true
	whole := true
	if r, err := protovalidate.ResolveMessageRules(md); err != nil || r != nil {
		whole = false
	}
	oneofs := md.Oneofs()
	for i := range oneofs.Len() {
		if r, err := protovalidate.ResolveOneofRules(oneofs.Get(i)); err != nil || r != nil {
			whole = false
		}
	}
	var own []*fieldProof
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if sub := elemMessage(fd); sub != nil && !seen[sub.FullName()] {
			p.addMessage(sub, seen)
		}
		fr, err := protovalidate.ResolveFieldRules(fd)
		if err != nil {
			whole = false
			continue
		}
		if fr == nil {
			// No rules of its own; protovalidate still walks into messages with rules.
			if sub := elemMessage(fd); sub != nil && hasRules(sub, make(map[protoreflect.FullName]bool)) {
				whole = false
			}
			continue
		}
		proof, ok := proveField(fd, fr)
		if !ok {
			whole = false
			continue
		}
		p.byField[fd] = &proof
		own = append(own, &proof)
	}
	return own, whole
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
	if f.required || (f.presence && f.check != nil) {
		if !msg.Has(f.fd) {
			return !f.required
		}
	}
	if f.check == nil {
		return true
	}
	v := msg.Get(f.fd)
	if f.inner != nil {
		v = v.Message().Get(f.inner)
	}
	return f.check(v)
}

// ShouldValidate implements protovalidate.Filter: a field is evaluated unless its proof
// passes on msg, the message that holds it.
func (p *proofs) ShouldValidate(msg protoreflect.Message, d protoreflect.Descriptor) bool {
	fd, ok := d.(protoreflect.FieldDescriptor)
	if !ok {
		return true // message and oneof rules
	}
	f := p.byField[fd]
	return f == nil || !f.passes(msg)
}

// validate runs v on msg with the proven fields skipped.
func (p *proofs) validate(v protovalidate.Validator, msg protoreflect.Message) error {
	if msg.Descriptor() != p.desc {
		// Another descriptor of the same message (a generated Go type in the producer):
		// the proofs' field descriptors are not its own.
		return v.Validate(msg.Interface())
	}
	if p.whole && p.provesAll(msg) {
		return nil
	}
	return v.Validate(msg.Interface(), p.opt)
}

func (p *proofs) provesAll(msg protoreflect.Message) bool {
	for _, f := range p.top {
		if !f.passes(msg) {
			return false
		}
	}
	return true
}

// proveField builds the proof of fd from its resolved rules; ok is false when some rule is
// of a kind not proven here.
func proveField(fd protoreflect.FieldDescriptor, fr *validate.FieldRules) (fieldProof, bool) {
	proof := fieldProof{fd: fd, required: fr.GetRequired(), presence: fd.HasPresence()}
	if fd.IsList() || fd.IsMap() || fd.IsExtension() || fr.GetIgnore() == validate.Ignore_IGNORE_ALWAYS {
		return proof, false
	}
	rest := proto.Clone(fr).(*validate.FieldRules)
	rest.ClearRequired()
	rest.ClearIgnore()
	typ := rest.ProtoReflect().WhichOneof(rest.ProtoReflect().Descriptor().Oneofs().ByName("type"))
	if typ != nil {
		rest.ProtoReflect().Clear(typ)
	}
	if !empty(rest) {
		return proof, false // cel, or a rule this version of the proofs does not know
	}
	target := fd
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		if typ == nil {
			// required at most; the message's own type must have no rules to skip it.
			return proof, !hasRules(fd.Message(), make(map[protoreflect.FullName]bool))
		}
		switch fd.Message().FullName() {
		case "google.protobuf.Duration":
			if typ.Name() != "duration" {
				return proof, false
			}
			check, ok := durationCheck(fr.GetDuration(), fd.Message())
			proof.check = check
			return proof, ok
		case "google.protobuf.StringValue", "google.protobuf.Int32Value", "google.protobuf.Int64Value",
			"google.protobuf.UInt32Value", "google.protobuf.UInt64Value":
			target = fd.Message().Fields().ByName("value")
			proof.inner = target
		default:
			return proof, false
		}
	} else if typ == nil {
		return proof, true // required at most
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
	proof.check = check
	return proof, ok
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
		"min_bytes", "max_bytes", "const", "prefix", "suffix", "contains", "not_contains", "in", "not_in", "example") {
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
	return allHex(s[:8]) && allHex(s[9:13]) && allHex(s[14:18]) && allHex(s[19:23]) && allHex(s[24:])
}

// isTrimmedUUID is protovalidate's ^[0-9a-fA-F]{32}$.
func isTrimmedUUID(s string) bool { return len(s) == 32 && allHex(s) }

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if charClass[s[i]]&classHex == 0 {
			return false
		}
	}
	return true
}

const (
	classHex = 1 << iota
	classAlnum
	classLocal // the local part of an email address
)

var charClass = func() (t [256]uint8) {
	for c := range 256 {
		b := byte(c)
		if '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F' {
			t[c] |= classHex
		}
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
