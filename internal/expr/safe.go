package expr

import "strings"

// celSafe lists the CEL run-time error messages, or message prefixes, that hold no values
// from the event; SafeError keeps them.
var celSafe = []string{
	"division by zero",
	"modulus by zero",
	"integer overflow",
	"unsigned integer overflow",
	"no such overload",
	"no such key",
	"no such field",
	"no such attribute",
	"index out of range",
	"index out of bounds",
	"invalid RFC 3339 timestamp",
	"invalid index",
	"range error",
	"type conversion error",
	"timestamp overflow",
	"duration overflow",
	"operation cancelled",
	"operation interrupted",
}

// SafeError renders a CEL evaluation error for logs and dead-letter headers. CEL's text can
// quote data (a missing map key, a string that did not parse as a number), so only known
// kinds of failure are named, without their details; anything else becomes "evaluation
// failed". Route conditions and transform expressions both use it.
func SafeError(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	for _, s := range celSafe {
		if strings.HasPrefix(msg, s) {
			return s
		}
	}
	switch {
	case strings.Contains(msg, "cannot parse") || strings.Contains(msg, "parse error") || strings.Contains(msg, "invalid syntax"):
		return "type conversion error"
	case strings.Contains(msg, "out of range") || strings.Contains(msg, "overflow"):
		return "range error"
	}
	return "evaluation failed"
}
