package sinktest

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard-dev/switchyard/internal/event"
)

// Schema is the message the suite writes: sinktest.v1.Event {string id = 1; int64 seq = 2;
// google.protobuf.Timestamp occurred_at = 3; Kind kind = 4; double amount = 5;
// repeated string tags = 6;}. Every sink must be able to land it.
var Schema = buildSchema()

func buildSchema() protoreflect.MessageDescriptor {
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	typ := func(t descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto_Type {
		return t.Enum()
	}
	fd := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("sinktest/v1/event.proto"),
		Package:    proto.String("sinktest.v1"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/timestamp.proto"},
		EnumType: []*descriptorpb.EnumDescriptorProto{{
			Name: proto.String("Kind"),
			Value: []*descriptorpb.EnumValueDescriptorProto{
				{Name: proto.String("KIND_UNSPECIFIED"), Number: proto.Int32(0)},
				{Name: proto.String("KIND_VIEW"), Number: proto.Int32(1)},
				{Name: proto.String("KIND_BID"), Number: proto.Int32(2)},
			},
		}},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Event"),
			Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("id"), JsonName: proto.String("id"), Number: proto.Int32(1), Label: opt, Type: typ(descriptorpb.FieldDescriptorProto_TYPE_STRING)},
				{Name: proto.String("seq"), JsonName: proto.String("seq"), Number: proto.Int32(2), Label: opt, Type: typ(descriptorpb.FieldDescriptorProto_TYPE_INT64)},
				{Name: proto.String("occurred_at"), JsonName: proto.String("occurredAt"), Number: proto.Int32(3), Label: opt, Type: typ(descriptorpb.FieldDescriptorProto_TYPE_MESSAGE), TypeName: proto.String(".google.protobuf.Timestamp")},
				{Name: proto.String("kind"), JsonName: proto.String("kind"), Number: proto.Int32(4), Label: opt, Type: typ(descriptorpb.FieldDescriptorProto_TYPE_ENUM), TypeName: proto.String(".sinktest.v1.Kind")},
				{Name: proto.String("amount"), JsonName: proto.String("amount"), Number: proto.Int32(5), Label: opt, Type: typ(descriptorpb.FieldDescriptorProto_TYPE_DOUBLE)},
				{Name: proto.String("tags"), JsonName: proto.String("tags"), Number: proto.Int32(6), Label: rep, Type: typ(descriptorpb.FieldDescriptorProto_TYPE_STRING)},
			},
		}},
	}
	f, err := protodesc.NewFile(fd, protoregistry.GlobalFiles)
	if err != nil {
		panic(fmt.Sprintf("sinktest: build schema: %v", err))
	}
	return f.Messages().ByName("Event")
}

// Records returns n records of Schema with unique ids "<prefix>-<i>", spread over the given
// number of partitions of topic, offsets counting from 0 per partition.
func Records(topic, prefix string, n, partitions int) []*event.Record {
	fields := Schema.Fields()
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	out := make([]*event.Record, n)
	next := make([]int64, partitions)
	for i := range n {
		m := dynamicpb.NewMessage(Schema)
		id := fmt.Sprintf("%s-%d", prefix, i)
		m.Set(fields.ByName("id"), protoreflect.ValueOfString(id))
		m.Set(fields.ByName("seq"), protoreflect.ValueOfInt64(int64(i)))
		ts := base.Add(time.Duration(i) * time.Millisecond)
		m.Set(fields.ByName("occurred_at"), protoreflect.ValueOfMessage(timestamppb.New(ts).ProtoReflect()))
		m.Set(fields.ByName("kind"), protoreflect.ValueOfEnum(protoreflect.EnumNumber(1+i%2)))
		m.Set(fields.ByName("amount"), protoreflect.ValueOfFloat64(float64(i)/4))
		tags := m.Mutable(fields.ByName("tags")).List()
		tags.Append(protoreflect.ValueOfString("t" + fmt.Sprint(i%3)))
		value, err := proto.Marshal(m)
		if err != nil {
			panic(err)
		}
		p := i % partitions
		out[i] = &event.Record{
			Topic:     topic,
			Partition: int32(p),
			Offset:    next[p],
			Timestamp: ts,
			Key:       []byte(id),
			Value:     value,
			Headers:   []event.Header{{Key: "trace-id", Value: []byte(id)}},
			Message:   m,
			Contract:  string(Schema.FullName()),
		}
		next[p]++
	}
	return out
}

// ID returns the id field of a record written by Records.
func ID(r *event.Record) string {
	return r.Message.Get(Schema.Fields().ByName("id")).String()
}
