package contract

import (
	"errors"
	"fmt"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// SetRegistryClock replaces the clock the registry's cache expiry reads, for tests.
func SetRegistryClock(r *SchemaRegistry, now func() time.Time) { r.now = now }

// ValidateWithoutProofs is Validate with every rule evaluated by protovalidate.
func ValidateWithoutProofs(c *Contract, msg protoreflect.Message) error {
	if c.validator == nil {
		return nil
	}
	err := c.validator.Validate(msg.Interface())
	var verr *protovalidate.ValidationError
	if errors.As(err, &verr) {
		return newValidationError(c.desc.FullName(), verr)
	}
	if err != nil {
		return fmt.Errorf("evaluate buf.validate rules of %s: %w", c.desc.FullName(), err)
	}
	return nil
}

// ProvenFields returns the names of the fields of c's message that have a proof.
func ProvenFields(c *Contract) []string {
	if c.proofs == nil {
		return nil
	}
	var names []string
	for _, f := range c.proofs.top.fields {
		names = append(names, string(f.fd.Name()))
	}
	return names
}

// Proven returns how many fields of msg the proofs of c prove.
func Proven(c *Contract, msg protoreflect.Message) int {
	if c.proofs == nil {
		return 0
	}
	n := 0
	for _, f := range c.proofs.top.fields {
		if f.passes(msg) {
			n++
		}
	}
	return n
}

// ProvesWhole reports whether c's proofs cover every rule of its message.
func ProvesWhole(c *Contract) bool { return c.proofs != nil && c.proofs.top.whole }

// FastJSON reports whether c's JSON encoder is compiled (not protojson).
func FastJSON(c *Contract) bool {
	_, ok := compileJSON(c.desc, make(map[protoreflect.FullName]*jsonMsg))
	return ok
}
