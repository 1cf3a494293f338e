package contract

import (
	"errors"
	"fmt"
	"slices"

	"buf.build/go/hyperpb"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Contract is one message type of a Registry with everything needed to handle its events,
// built once by Registry.Lookup: the hyperpb parser for binary payloads and, when the
// message has buf.validate rules, a protovalidate validator with every rule compiled.
//
// A Contract is immutable and safe for concurrent use; the per-goroutine state lives in
// Decoder.
type Contract struct {
	registry *Registry
	desc     protoreflect.MessageDescriptor
	hyper    *hyperpb.MessageType // nil when hyperpb cannot decode desc exactly (HyperpbExact)
	indexes  []int                // message-index path of desc within its file (Confluent framing)
	frame    *frameSchema         // what Confluent frames are checked against, without a registry
	wire     *wireShape

	// validator is nil when the message has no rules; Validate is then free.
	validator protovalidate.Validator
	// proofs skip protovalidate's evaluation of the fields they prove pass (prove.go); nil
	// when no field's rules can be proven.
	proofs *proofs
}

func newContract(r *Registry, md protoreflect.MessageDescriptor) (*Contract, error) {
	c := &Contract{
		registry: r,
		desc:     md,
		indexes:  messageIndexes(md),
		wire:     newWireShape(md, make(map[protoreflect.FullName]*wireShape)),
	}
	if HyperpbExact(md) {
		c.hyper = hyperpb.CompileMessageDescriptor(md, hyperpb.WithExtensionsFromFiles(r.files))
	}
	c.frame = localFrameSchema(c)
	if !hasRules(md, make(map[protoreflect.FullName]bool)) {
		return c, nil
	}
	v, err := protovalidate.New(
		protovalidate.WithMessageDescriptors(md), // compile every rule now, not on the first event
		protovalidate.WithExtensionTypeResolver(r.types),
	)
	if err != nil {
		return nil, fmt.Errorf("build validator for %s: %w", md.FullName(), err)
	}
	// Rule compilation errors (bad CEL, a rule on the wrong field type) are cached by the
	// validator and only returned by Validate; surface them now.
	var compileErr *protovalidate.CompilationError
	if err := v.Validate(dynamicpb.NewMessage(md)); errors.As(err, &compileErr) {
		return nil, fmt.Errorf("compile buf.validate rules of %s: %w", md.FullName(), err)
	}
	c.validator = v
	c.proofs = newProofs(md)
	return c, nil
}

// messageIndexes returns the path of md within its file as Confluent encodes it: the index
// of the top-level message, then of each nested message down to md.
func messageIndexes(md protoreflect.MessageDescriptor) []int {
	var path []int
	for d := protoreflect.Descriptor(md); ; d = d.Parent() {
		m, ok := d.(protoreflect.MessageDescriptor)
		if !ok {
			break
		}
		path = append(path, m.Index())
	}
	slices.Reverse(path)
	return path
}

// hasRules reports whether md, or any message reachable from its fields, carries a
// buf.validate rule. An option that cannot be resolved counts as a rule, so that
// validation runs and reports the problem instead of silently passing.
func hasRules(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[md.FullName()] {
		return false
	}
	seen[md.FullName()] = true
	if r, err := protovalidate.ResolveMessageRules(md); err != nil || r != nil {
		return true
	}
	oneofs := md.Oneofs()
	for i := range oneofs.Len() {
		if r, err := protovalidate.ResolveOneofRules(oneofs.Get(i)); err != nil || r != nil {
			return true
		}
	}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if r, err := protovalidate.ResolveFieldRules(fd); err != nil || r != nil {
			return true
		}
		if fd.IsMap() {
			fd = fd.MapValue()
		}
		if sub := fd.Message(); sub != nil && hasRules(sub, seen) {
			return true
		}
	}
	return false
}

// Name returns the full name of the message, e.g. "auctions.v1.BidPlaced".
func (c *Contract) Name() string { return string(c.desc.FullName()) }

// Descriptor returns the message descriptor.
func (c *Contract) Descriptor() protoreflect.MessageDescriptor { return c.desc }

// Registry returns the registry the contract was looked up in.
func (c *Contract) Registry() *Registry { return c.registry }

// HasRules reports whether the message, or any message reachable from it, declares
// buf.validate rules. When it is false Validate returns nil without looking at the
// message.
func (c *Contract) HasRules() bool { return c.validator != nil }

// MessageIndexes returns the Confluent message-index path of the message within its
// .proto file ([0] for the first top-level message), for FrameConfluent. The caller may
// modify the returned slice.
func (c *Contract) MessageIndexes() []int { return slices.Clone(c.indexes) }

// New returns an empty, mutable dynamicpb message of the contract's type, e.g. for tests
// and generators.
func (c *Contract) New() *dynamicpb.Message { return dynamicpb.NewMessage(c.desc) }

// Validate checks msg against the contract's buf.validate rules. msg must be of the
// contract's message type (as returned by a Decoder of this contract); it may be a
// read-only hyperpb message. Validate is safe for concurrent use.
//
// It returns nil when the message is valid or the contract has no rules, a
// *ValidationError listing the violated rules, or another error when a rule could not
// be evaluated against this message (a CEL runtime error such as an integer overflow).
// Every error is about this event only: dead-letter it, do not retry.
func (c *Contract) Validate(msg protoreflect.Message) error {
	if c.validator == nil {
		return nil
	}
	var err error
	if c.proofs != nil {
		err = c.proofs.validate(c.validator, msg)
	} else {
		err = c.validator.Validate(msg.Interface())
	}
	if err == nil {
		return nil
	}
	var verr *protovalidate.ValidationError
	if errors.As(err, &verr) {
		return newValidationError(c.desc.FullName(), verr)
	}
	return fmt.Errorf("evaluate buf.validate rules of %s: %w", c.desc.FullName(), err)
}

// Encode serializes msg in enc: protobuf binary (Raw), protobuf binary framed with
// schemaID and the contract's message indexes (Confluent), or protojson (JSON, resolving Any
// against the contract's registry). schemaID is ignored for Raw and JSON. It is
// c.Encoder(enc, schemaID).Encode(msg), and safe for concurrent use.
func (c *Contract) Encode(msg protoreflect.Message, enc Encoding, schemaID uint32) ([]byte, error) {
	e, err := c.Encoder(enc, schemaID)
	if err != nil {
		return nil, err
	}
	return e.Encode(msg)
}
