// Package table holds the rules every table sink (ClickHouse, BigQuery) shares, so a
// contract lands under the same table name, with the same metadata columns and the same
// _event_time, whichever store it goes to. Column types and value encodings stay with each
// sink.
package table

import (
	"fmt"
	"strings"
	"unicode"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Name is the default table of a contract: its full name in snake case, dots becoming
// underscores. An upper-case letter starts a new word, preceded by one underscore, when it
// follows a lower-case letter or a digit, or ends a run of capitals before a lower-case letter;
// it never doubles an underscore already in the name:
//
//	auctions.v1.BidPlaced -> auctions_v1_bid_placed
//	a.HTTPRequest         -> a_http_request
//	a.V2Event             -> a_v2_event
//	a.v1.Order_Paid       -> a_v1_order_paid
func Name(contract protoreflect.FullName) string {
	var b strings.Builder
	rs := []rune(string(contract))
	for i, r := range rs {
		switch {
		case r == '.':
			b.WriteByte('_')
		case unicode.IsUpper(r):
			afterWord := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			endsCaps := i > 0 && unicode.IsUpper(rs[i-1]) && i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if afterWord || endsCaps {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Metadata column names. Every row of a table sink carries them after the contract's fields.
const (
	ColTopic     = "_topic"      // source Kafka topic
	ColPartition = "_partition"  // source partition
	ColOffset    = "_offset"     // source offset
	ColEventTime = "_event_time" // see EventTimeField
	ColLandedAt  = "_landed_at"  // when the sink serialized the row
	ColSchema    = "_schema"     // full name of the contract the event was decoded with
)

// Meta is one metadata column.
type Meta int

// The metadata columns, in the order tables declare them.
const (
	Topic Meta = iota
	Partition
	Offset
	EventTime
	LandedAt
	Schema
)

// Metadata lists the metadata columns in table order.
var Metadata = [...]Meta{Topic, Partition, Offset, EventTime, LandedAt, Schema}

var metaInfo = [...]struct{ col, doc string }{
	Topic:     {ColTopic, "source topic"},
	Partition: {ColPartition, "source partition"},
	Offset:    {ColOffset, "source offset"},
	EventTime: {ColEventTime, "event time"},
	LandedAt:  {ColLandedAt, "landing time"},
	Schema:    {ColSchema, "contract name"},
}

// Column is the column name of m.
func (m Meta) Column() string { return metaInfo[m].col }

// Doc says in a few words what the column holds, for error messages.
func (m Meta) Doc() string { return metaInfo[m].doc }

// DefaultEventTimeFields are the top-level fields _event_time is taken from when no
// event_time_field is configured, in order of preference.
var DefaultEventTimeFields = []protoreflect.Name{"occurred_at", "event_time"}

// EventTimeField returns the top-level google.protobuf.Timestamp field of md that fills
// _event_time: the configured one (event_time_field), else the first of
// DefaultEventTimeFields that md has as a Timestamp, else nil. A configured field that is not
// such a field is an error. For an event where the field is unset (or nil), _event_time is
// the Kafka record timestamp, and where that is unset too, the landing time.
func EventTimeField(md protoreflect.MessageDescriptor, configured string) (protoreflect.FieldDescriptor, error) {
	if configured != "" {
		fd := md.Fields().ByName(protoreflect.Name(configured))
		if fd == nil || !IsTimestamp(fd) {
			return nil, fmt.Errorf("event_time_field %q is not a top-level google.protobuf.Timestamp field of %s", configured, md.FullName())
		}
		return fd, nil
	}
	for _, name := range DefaultEventTimeFields {
		if fd := md.Fields().ByName(name); fd != nil && IsTimestamp(fd) {
			return fd, nil
		}
	}
	return nil, nil
}

// IsTimestamp reports whether fd is a singular google.protobuf.Timestamp field.
func IsTimestamp(fd protoreflect.FieldDescriptor) bool {
	return !fd.IsList() && !fd.IsMap() && fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() == "google.protobuf.Timestamp"
}
