package transforms

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/config"
)

// ExtensionNumber is the field number of the (switchyard.v1.field) extension of
// google.protobuf.FieldOptions declared in contracts/switchyard/v1/options.proto. It lies in
// the 50000-99999 range protobuf leaves for in-house options.
const ExtensionNumber protowire.Number = 57292

// LegacyExtensionNumber is the field number of the deprecated (switchyard.field) extension
// declared in switchyard/options.proto (package switchyard). Its FieldOptions message and PII
// enum have the same numbers as switchyard.v1's, so both read the same way; a field marked
// with both uses the switchyard.v1 mark.
const LegacyExtensionNumber protowire.Number = 57291

// piiMode mirrors the switchyard.v1.PII enum (and the deprecated switchyard.PII).
type piiMode int32

const (
	piiNone piiMode = 0
	piiHash piiMode = 1
	piiMask piiMode = 2
	piiDrop piiMode = 3
)

func (m piiMode) String() string {
	switch m {
	case piiHash:
		return "HASH"
	case piiMask:
		return "MASK"
	case piiDrop:
		return "DROP"
	}
	return "NONE"
}

// fieldOptions reads (switchyard.v1.field).pii, the deprecated (switchyard.field).pii and
// debug_redact from fd's options. The options
// are read from their wire form, so the result does not depend on whether the extension was
// resolved when the contracts were compiled.
func fieldOptions(fd protoreflect.FieldDescriptor) (mode piiMode, debugRedact bool) {
	opts := fd.Options()
	if opts == nil {
		return piiNone, false
	}
	var legacy piiMode
	var v1 bool
	defer func() {
		if !v1 {
			mode = legacy
		}
	}()
	raw, err := proto.MarshalOptions{AllowPartial: true}.Marshal(opts)
	if err != nil {
		return piiNone, false
	}
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			break
		}
		raw = raw[n:]
		switch {
		case num == 16 && typ == protowire.VarintType: // debug_redact
			v, n := protowire.ConsumeVarint(raw)
			if n < 0 {
				return mode, debugRedact
			}
			debugRedact = v != 0
			raw = raw[n:]
			continue
		case (num == ExtensionNumber || num == LegacyExtensionNumber) && typ == protowire.BytesType:
			msg, n := protowire.ConsumeBytes(raw)
			if n < 0 {
				return mode, debugRedact
			}
			if m, ok := piiField(msg); ok {
				if num == ExtensionNumber {
					mode, v1 = m, true
				} else {
					legacy = m
				}
			}
			raw = raw[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, raw)
		if n < 0 {
			break
		}
		raw = raw[n:]
	}
	return mode, debugRedact
}

// piiField reads field 1 (pii) of a switchyard.v1.FieldOptions (or switchyard.FieldOptions) message.
func piiField(b []byte) (piiMode, bool) {
	mode, found := piiNone, false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				break
			}
			mode, found = piiMode(v), true
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			break
		}
		b = b[n:]
	}
	return mode, found
}

// IsSensitive reports whether fd's values must never be logged or put in dead-letter
// headers: it is marked debug_redact or (switchyard.v1.field).pii.
func IsSensitive(fd protoreflect.FieldDescriptor) bool {
	if v, ok := sensitive.Load(fd); ok {
		return v.(bool)
	}
	mode, redact := fieldOptions(fd)
	s := redact || mode != piiNone
	sensitive.Store(fd, s)
	return s
}

// sensitive caches IsSensitive by field descriptor; descriptors live as long as the
// contracts, which are loaded once.
var sensitive sync.Map

// piiOf returns the PII option of fd (memoized).
func (b *builder) piiOf(fd protoreflect.FieldDescriptor) piiMode {
	if m, ok := b.piiMemo[fd]; ok {
		return m
	}
	m, _ := fieldOptions(fd)
	if m < piiNone || m > piiDrop {
		m = piiDrop // an option value this build does not know: fail closed
	}
	b.piiMemo[fd] = m
	return m
}

// containsPII reports whether md, or a message it holds, has a field marked pii.
func (b *builder) containsPII(md protoreflect.MessageDescriptor) bool {
	if v, ok := b.containsMemo[md.FullName()]; ok {
		return v
	}
	b.containsMemo[md.FullName()] = false // recursion: assume not while looking
	found := false
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if b.piiOf(fd) != piiNone {
			found = true
			break
		}
		if fd.IsMap() {
			fd = fd.MapValue()
		}
		if m := fd.Message(); m != nil && b.containsPII(m) {
			found = true
			break
		}
	}
	b.containsMemo[md.FullName()] = found
	return found
}

// piiNames is the set of names of fields marked pii in the messages the input reaches.
func (b *builder) piiNames() map[string]bool {
	if b.piiNameSet != nil {
		return b.piiNameSet
	}
	b.piiNameSet = map[string]bool{}
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if b.piiOf(fd) != piiNone {
				b.piiNameSet[string(fd.Name())] = true
			}
			if fd.IsMap() {
				fd = fd.MapValue()
			}
			if m := fd.Message(); m != nil {
				walk(m)
			}
		}
	}
	walk(b.input)
	return b.piiNameSet
}

// piiConv returns the conversion of a field marked HASH or MASK, and the kind of its output,
// or a problem when the option does not apply to the field's kind.
func (b *builder) piiConv(fd protoreflect.FieldDescriptor, mode piiMode) (conv, protoreflect.Kind, string) {
	kind := fd.Kind()
	step := fmt.Sprintf("pii %s of %s", mode, fd.FullName())
	if fd.IsMap() {
		return conv{}, 0, fmt.Sprintf("%s is a map marked pii = %s; HASH and MASK apply to string, bytes and integer fields (mark maps DROP)", fd.FullName(), mode)
	}
	switch mode {
	case piiHash:
		switch kind {
		case protoreflect.StringKind, protoreflect.BytesKind,
			protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
			protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
			protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			return conv{step: step, hash: true, fn: b.hasher.conv(kind)}, protoreflect.StringKind, ""
		}
		return conv{}, 0, fmt.Sprintf("%s is %s field marked pii = HASH; HASH applies to string, bytes and integer fields (mark it DROP)", fd.FullName(), article(kindName(kind)))
	case piiMask:
		if kind == protoreflect.StringKind {
			return conv{step: step, fn: maskValue}, protoreflect.StringKind, ""
		}
		return conv{}, 0, fmt.Sprintf("%s is %s field marked pii = MASK; MASK applies to string fields (mark it HASH or DROP)", fd.FullName(), article(kindName(kind)))
	}
	return conv{}, 0, fmt.Sprintf("%s has an unknown pii option %d", fd.FullName(), int32(mode))
}

// Mask is what MASK leaves of a value: "***" and, for values longer than 8 characters, the
// last 4 characters. Empty values stay empty.
func Mask(s string) string {
	if s == "" {
		return ""
	}
	if utf8.RuneCountInString(s) <= 8 {
		return "***"
	}
	i := len(s)
	for range 4 {
		_, n := utf8.DecodeLastRuneInString(s[:i])
		i -= n
	}
	return "***" + strings.ToValidUTF8(s[i:], "\uFFFD")
}

func maskValue(v protoreflect.Value) (protoreflect.Value, error) {
	return protoreflect.ValueOfString(Mask(v.String())), nil
}

// hasher computes HASH values: lowercase hex HMAC-SHA256 under the chain's key. It pools
// the keyed HMAC states, so hashing allocates only the resulting string.
type hasher struct {
	pool sync.Pool // hash.Hash
}

func newHasher(key []byte) *hasher {
	key = bytes.Clone(key)
	return &hasher{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// sum returns the hex HMAC of b; empty input stays empty.
func (h *hasher) sum(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	mac := h.pool.Get().(hash.Hash)
	mac.Reset()
	mac.Write(b)
	var sum [sha256.Size]byte
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], mac.Sum(sum[:0]))
	h.pool.Put(mac)
	return string(out[:])
}

func (h *hasher) conv(kind protoreflect.Kind) func(protoreflect.Value) (protoreflect.Value, error) {
	switch kind {
	case protoreflect.StringKind:
		return func(v protoreflect.Value) (protoreflect.Value, error) {
			s := v.String()
			// The HMAC only reads the bytes; a copy would be an allocation per event.
			return protoreflect.ValueOfString(h.sum(unsafe.Slice(unsafe.StringData(s), len(s)))), nil
		}
	case protoreflect.BytesKind:
		return func(v protoreflect.Value) (protoreflect.Value, error) {
			return protoreflect.ValueOfString(h.sum(v.Bytes())), nil
		}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return func(v protoreflect.Value) (protoreflect.Value, error) {
			var buf [20]byte
			return protoreflect.ValueOfString(h.sum(strconv.AppendUint(buf[:0], v.Uint(), 10))), nil
		}
	default: // signed integers
		return func(v protoreflect.Value) (protoreflect.Value, error) {
			var buf [20]byte
			return protoreflect.ValueOfString(h.sum(strconv.AppendInt(buf[:0], v.Int(), 10))), nil
		}
	}
}

// Hash returns the HASH value of s under key, as a chain computes it: the lowercase hex
// HMAC-SHA256, or "" for "". Use it to look up hashed values (e.g. a user's rows).
func Hash(key []byte, s string) string {
	return newHasher(key).sum([]byte(s))
}

// HashKey returns the HMAC key the configuration holds: pii.hash_key, or the contents of
// pii.hash_key_file without a trailing newline. It returns nil when neither is set; Compile
// then refuses routes that output a HASH field.
func HashKey(p config.PII) ([]byte, error) {
	if p.HashKeyFile != "" {
		data, err := os.ReadFile(p.HashKeyFile)
		if err != nil {
			return nil, fmt.Errorf("read pii.hash_key_file: %w", err)
		}
		data = bytes.TrimSuffix(bytes.TrimSuffix(data, []byte("\n")), []byte("\r"))
		if len(data) == 0 {
			return nil, errors.New("read pii.hash_key_file: the file is empty")
		}
		return data, nil
	}
	if p.HashKey == "" {
		return nil, nil
	}
	return []byte(p.HashKey), nil
}
