// Package event is the vocabulary every stage of a pipeline shares: the record read from
// Kafka, decoded, routed, transformed and handed to a sink. It depends on no stage, so the
// source, routing, transforms, the engine and the sinks can all import it.
package event

import (
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one event on its way to a sink. Records are read-only for sinks: the engine may
// hand the same Record to several routes.
type Record struct {
	// Source coordinates.
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time // Kafka record timestamp
	Key       []byte
	Value     []byte // the payload exactly as it was read from Kafka
	Headers   []Header

	// Message is the decoded event. Its descriptor is the sink's Schema (sinks.Deps.Schema).
	// It is read-only: it may be backed by an immutable fast-path message type.
	Message protoreflect.Message
	// Contract is the full name of the contract message the event was decoded with.
	Contract string
	// Transformed is set when a route's transforms (or PII guardrails) derived Message from
	// the decoded event: Value still holds the original payload, so it must not be written
	// in place of Message.
	Transformed bool
	// Target is the route-specific destination (for the kafka sink, the topic), or "" for the
	// sink's default.
	Target string
	// Route is the name of the route that sent the record to its sink (routing.Route.Name),
	// set by the engine so that a failure the sink reports can name it in the dead letter.
	Route string
}

// TopicPartition names one source partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}
