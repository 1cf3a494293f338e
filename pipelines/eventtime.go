package pipelines

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/config"
)

// eventTimeField returns the field of md that holds the event time: configured when set
// (an error if md has no such top-level google.protobuf.Timestamp field), else the first of
// contract.EventTimeFields md has, else nil (the Kafka record timestamp is used).
func eventTimeField(md protoreflect.MessageDescriptor, configured string) (protoreflect.FieldDescriptor, error) {
	if configured != "" {
		fd := md.Fields().ByName(protoreflect.Name(configured))
		if fd == nil || !contract.IsTimestamp(fd) {
			return nil, fmt.Errorf("event_time_field %q is not a top-level google.protobuf.Timestamp field of %s", configured, md.FullName())
		}
		return fd, nil
	}
	return contract.EventTimeField(md), nil
}

// compileEventTimes resolves the event-time field of every contract message of cp.
func (cp *CompiledPipeline) compileEventTimes(pos func(string) config.Position) config.Errors {
	var errs config.Errors
	slo := cp.Config.SLO
	if slo.Freshness.Objective == 0 || slo.Completeness.Objective == 0 || slo.Window == 0 || slo.Freshness.Threshold == 0 {
		errs = append(errs, config.Error{Pos: pos(cp.Config.Path + ".slo"), Msg: fmt.Sprintf("pipeline %q: slo objectives, threshold and window must not be empty", cp.Config.Name)})
	}
	cp.eventTimes = map[protoreflect.FullName]protoreflect.FieldDescriptor{}
	for _, md := range cp.messages() {
		fd, err := eventTimeField(md, cp.Config.EventTimeField)
		if err != nil {
			errs = append(errs, config.Error{Pos: pos(cp.Config.Path + ".event_time_field"), Msg: fmt.Sprintf("pipeline %q: %v", cp.Config.Name, err)})
			continue
		}
		if fd != nil {
			cp.eventTimes[md.FullName()] = fd
		}
	}
	cp.timeFields = map[*contract.Contract]contract.TimestampField{}
	for _, ct := range cp.contracts() {
		cp.timeFields[ct] = contract.NewTimestampField(cp.eventTimes[ct.Descriptor().FullName()])
	}
	return errs
}

// contracts returns every contract the pipeline selects records with.
func (cp *CompiledPipeline) contracts() []*contract.Contract {
	var out []*contract.Contract
	if cp.fallback != nil {
		out = append(out, cp.fallback)
	}
	for _, ct := range cp.byTopic {
		out = append(out, ct)
	}
	for _, ct := range cp.byHeader {
		out = append(out, ct)
	}
	return out
}

// eventTimeOf is the time of event msg, a message of ct a Decoder made: its event-time
// field when set and valid, else the Kafka record timestamp ts.
func (cp *CompiledPipeline) eventTimeOf(ct *contract.Contract, msg protoreflect.Message, ts time.Time) time.Time {
	if t, ok := cp.timeFields[ct].Of(msg); ok {
		return t
	}
	return ts
}

// EventTimeSource says where the pipeline's event times come from, per contract message,
// for `switchyard validate`: e.g. "event time occurred_at" or "event time Kafka record
// timestamp".
func (cp *CompiledPipeline) EventTimeSource() string {
	var parts []string
	seen := map[string]bool{}
	for _, md := range cp.messages() {
		s := "Kafka record timestamp"
		if fd := cp.eventTimes[md.FullName()]; fd != nil {
			s = string(fd.Name()) + " (else Kafka record timestamp)"
		}
		if !seen[s] {
			seen[s] = true
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "event time Kafka record timestamp"
	}
	return "event time " + strings.Join(parts, " / ")
}
