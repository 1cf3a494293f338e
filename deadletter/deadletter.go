// Package deadletter names the headers of Switchyard's dead letters: the router
// (pipelines), client/consumer and `switchyard tail` write or read the same ones. A dead
// letter is the original record (key, value, headers) plus these.
package deadletter

import "strings"

// Dead-letter headers added to the original record's headers.
const (
	HeaderClass     = "switchyard.error.class"
	HeaderMessage   = "switchyard.error.message"
	HeaderContract  = "switchyard.contract"
	HeaderPipeline  = "switchyard.pipeline"
	HeaderSink      = "switchyard.sink"
	HeaderRoute     = "switchyard.route"
	HeaderTopic     = "switchyard.source.topic"
	HeaderPartition = "switchyard.source.partition"
	HeaderOffset    = "switchyard.source.offset"
	HeaderAttempts  = "switchyard.attempts"
	// HeaderReason is the specific cause within the class: too_large, framing, or the class
	// itself when there is none finer. It is also the reason label of the dead-letter counter.
	HeaderReason = "switchyard.error.reason"
	// A dead letter too large for the dead-letter topic is written without its value; these
	// say what it was, so it can be found and replayed from the source coordinates.
	HeaderValueDropped = "switchyard.value.dropped"
	HeaderValueSize    = "switchyard.value.size"
	HeaderValueSHA256  = "switchyard.value.sha256"
)

// Classes, the values of HeaderClass.
const (
	ClassDecode    = "decode"    // the payload is not a message of its contract
	ClassFraming   = "framing"   // the Confluent frame is malformed or names another schema or message
	ClassValidate  = "validate"  // the message breaks its contract's rules
	ClassRoute     = "route"     // a route condition could not be evaluated
	ClassTransform = "transform" // a route's transforms could not be applied
	ClassSink      = "sink"      // the sink refused the event permanently
)

// IsHeader reports whether key is one of the switchyard.* headers of a dead letter.
func IsHeader(key string) bool { return strings.HasPrefix(key, "switchyard.") }
