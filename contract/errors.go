package contract

import (
	"strconv"
	"strings"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Decode failure reasons, the values of DecodeError.Reason.
const (
	// ReasonFraming: the Confluent wire-format header is missing or malformed.
	ReasonFraming = "framing"
	// ReasonProtobuf: the protobuf binary body does not parse as the contract's message.
	ReasonProtobuf = "protobuf"
	// ReasonJSON: the payload is not protojson for the contract's message.
	ReasonJSON = "json"
)

// DecodeError is returned by Decoder.Decode and SplitConfluent when a payload cannot be
// decoded. It is permanent for that payload: dead-letter it. Its message never contains
// payload bytes or field values.
type DecodeError struct {
	// Reason is one of ReasonFraming, ReasonProtobuf or ReasonJSON.
	Reason string
	// Err describes the failure.
	Err error
}

// Error implements error.
func (e *DecodeError) Error() string { return "decode " + e.Reason + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *DecodeError) Unwrap() error { return e.Err }

// Violation is one violated rule of a ValidationError.
type Violation struct {
	// Field is the path of the offending field, e.g. "items[2].unit_price.nanos"; map keys
	// are shown as [*] because they are data. It is empty for message-level rules.
	Field string
	// Rule is the rule id, e.g. "string.uuid" or "bid_placed.amount_positive".
	Rule string
}

// ValidationError is returned by Contract.Validate when a message violates its contract's
// buf.validate rules. Its message lists field paths and rule ids only, never field values,
// so it is safe to log and to put in dead-letter headers. Unwrap returns protovalidate's
// error, whose messages may quote values.
type ValidationError struct {
	// Message is the full name of the validated message.
	Message protoreflect.FullName
	// Violations lists every violated rule, in protovalidate's order.
	Violations []Violation

	err *protovalidate.ValidationError
}

func newValidationError(name protoreflect.FullName, err *protovalidate.ValidationError) *ValidationError {
	v := &ValidationError{Message: name, Violations: make([]Violation, 0, len(err.Violations)), err: err}
	for _, pv := range err.Violations {
		if pv == nil || pv.Proto == nil {
			continue
		}
		v.Violations = append(v.Violations, Violation{
			Field: fieldPath(pv.Proto.GetField()),
			Rule:  pv.Proto.GetRuleId(),
		})
	}
	return v
}

// Error implements error, e.g.
// "auctions.v1.BidPlaced violates 2 rules: event_id [string.uuid], [bid_placed.max_auto_bid_covers_amount]".
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Message))
	b.WriteString(" violates ")
	if len(e.Violations) == 1 {
		b.WriteString("1 rule: ")
	} else {
		b.WriteString(strconv.Itoa(len(e.Violations)))
		b.WriteString(" rules: ")
	}
	for i, v := range e.Violations {
		if i > 0 {
			b.WriteString(", ")
		}
		if v.Field != "" {
			b.WriteString(v.Field)
			b.WriteByte(' ')
		}
		b.WriteByte('[')
		b.WriteString(v.Rule)
		b.WriteByte(']')
	}
	return b.String()
}

// Unwrap returns the underlying *protovalidate.ValidationError.
func (e *ValidationError) Unwrap() error { return e.err }

// Rules returns the distinct rule ids violated, in order, e.g. for a metric label.
func (e *ValidationError) Rules() []string {
	out := make([]string, 0, len(e.Violations))
	for _, v := range e.Violations {
		dup := false
		for _, o := range out {
			if o == v.Rule {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, v.Rule)
		}
	}
	return out
}

// fieldPath renders a protovalidate field path without map keys (they are data).
func fieldPath(p *validate.FieldPath) string {
	var b strings.Builder
	for _, el := range p.GetElements() {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(el.GetFieldName())
		switch el.WhichSubscript() {
		case validate.FieldPathElement_Index_case:
			b.WriteByte('[')
			b.WriteString(strconv.FormatUint(el.GetIndex(), 10))
			b.WriteByte(']')
		case validate.FieldPathElement_BoolKey_case, validate.FieldPathElement_IntKey_case,
			validate.FieldPathElement_UintKey_case, validate.FieldPathElement_StringKey_case:
			b.WriteString("[*]")
		}
	}
	return b.String()
}
