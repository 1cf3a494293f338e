package contract

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Standard headers of events written by Switchyard's producers (client/producer and
// `switchyard produce`); client/consumer and `switchyard tail` show them. A pipeline can pick
// its contract by HeaderContract with `contract.header.name: switchyard-contract`.
const (
	// HeaderContract is the full name of the event's message, e.g. "auctions.v1.BidPlaced".
	HeaderContract = "switchyard-contract"
	// HeaderEventTime is when the event happened (its EventTimeField), RFC 3339 in UTC with
	// nanoseconds; absent when the message has no such field set.
	HeaderEventTime = "switchyard-event-time"
	// HeaderProducer names the producing service.
	HeaderProducer = "switchyard-producer"
)

// EventTimeFields are the top-level google.protobuf.Timestamp fields an event's time is taken
// from when nothing names one, in order of preference.
var EventTimeFields = []protoreflect.Name{"occurred_at", "event_time"}

// EventTimeField returns the first of EventTimeFields that md has as a top-level
// google.protobuf.Timestamp, or nil.
func EventTimeField(md protoreflect.MessageDescriptor) protoreflect.FieldDescriptor {
	for _, name := range EventTimeFields {
		if fd := md.Fields().ByName(name); fd != nil && IsTimestamp(fd) {
			return fd
		}
	}
	return nil
}

// IsTimestamp reports whether fd is a singular google.protobuf.Timestamp field.
func IsTimestamp(fd protoreflect.FieldDescriptor) bool {
	return !fd.IsList() && !fd.IsMap() && fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() == "google.protobuf.Timestamp"
}

// TimestampOf returns the time held by the Timestamp field fd of msg, and false when the
// field is unset or out of range (negative nanos, before 1970).
func TimestampOf(msg protoreflect.Message, fd protoreflect.FieldDescriptor) (time.Time, bool) {
	if fd == nil || !msg.Has(fd) {
		return time.Time{}, false
	}
	m := msg.Get(fd).Message()
	fields := fd.Message().Fields()
	sec, nanos := m.Get(fields.ByNumber(1)).Int(), m.Get(fields.ByNumber(2)).Int()
	if nanos < 0 || nanos >= 1e9 || sec <= 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, nanos), true
}

// TimestampField reads one google.protobuf.Timestamp field with its descriptors looked up
// once, for messages a Decoder made. The zero TimestampField reads nothing.
type TimestampField struct{ fd, sec, nanos protoreflect.FieldDescriptor }

// NewTimestampField returns the reader of Timestamp field fd (nil: the zero TimestampField).
func NewTimestampField(fd protoreflect.FieldDescriptor) TimestampField {
	if fd == nil {
		return TimestampField{}
	}
	f := fd.Message().Fields()
	return TimestampField{fd: fd, sec: f.ByNumber(1), nanos: f.ByNumber(2)}
}

// Field is the field f reads, nil for the zero TimestampField.
func (f TimestampField) Field() protoreflect.FieldDescriptor { return f.fd }

// Of is TimestampOf(msg, f.Field()) for a message decoded by a Decoder of the field's
// contract, whose Timestamp values have the field's own descriptor.
func (f TimestampField) Of(msg protoreflect.Message) (time.Time, bool) {
	if f.fd == nil {
		return time.Time{}, false
	}
	// One Get: an unset message field reads as an invalid message.
	m := msg.Get(f.fd).Message()
	if !m.IsValid() {
		return time.Time{}, false
	}
	sec, nanos := m.Get(f.sec).Int(), m.Get(f.nanos).Int()
	if nanos < 0 || nanos >= 1e9 || sec <= 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, nanos), true
}

// ForMessage returns the contract of md, a message compiled into the program, such as the
// descriptor of a generated Go type (gen/go): a registry of md's file and everything it
// imports, looked up by md's full name. Validate and Encoder accept the generated messages.
func ForMessage(md protoreflect.MessageDescriptor) (*Contract, error) {
	files := new(protoregistry.Files)
	if err := registerWithImports(files, md.ParentFile()); err != nil {
		return nil, fmt.Errorf("contract of %s: %w", md.FullName(), err)
	}
	r, err := newRegistry("Go type "+string(md.FullName()), files)
	if err != nil {
		return nil, err
	}
	return r.Lookup(string(md.FullName()))
}
