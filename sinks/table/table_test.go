package table_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard-dev/switchyard/sinks/table"
)

func TestName(t *testing.T) {
	for in, want := range map[protoreflect.FullName]string{
		"auctions.v1.BidPlaced":     "auctions_v1_bid_placed",
		"livestream.v1.ViewStarted": "livestream_v1_view_started",
		"orders.v1.OrderPaid":       "orders_v1_order_paid",
		"a.HTTPRequest":             "a_http_request",
		"a.V2Event":                 "a_v2_event",
		"x.v2.Event":                "x_v2_event",
		"a.v1.Order_Paid":           "a_v1_order_paid", // BigQuery used to say a_v1_order__paid
		"a.v1.order_paid":           "a_v1_order_paid",
		"a.v1.ORDER_PAID":           "a_v1_order_paid",
		"a.v1.Order2Paid":           "a_v1_order2_paid",
	} {
		if got := table.Name(in); got != want {
			t.Errorf("Name(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestMetadata_order_and_names(t *testing.T) {
	var cols []string
	for _, m := range table.Metadata {
		cols = append(cols, m.Column())
		if m.Doc() == "" {
			t.Errorf("%s has no doc", m.Column())
		}
	}
	if got := strings.Join(cols, ","); got != "_topic,_partition,_offset,_event_time,_landed_at,_schema" {
		t.Errorf("metadata columns = %s", got)
	}
}

// message builds a message with the given Timestamp fields and one string field "note".
func message(t *testing.T, timestamps ...string) protoreflect.MessageDescriptor {
	t.Helper()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	msg := &descriptorpb.DescriptorProto{Name: proto.String("E"), Field: []*descriptorpb.FieldDescriptorProto{
		{Name: proto.String("note"), Number: proto.Int32(1), Label: opt, Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()},
		{Name: proto.String("occurred_at_text"), Number: proto.Int32(2), Label: opt, Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()},
	}}
	for i, name := range timestamps {
		msg.Field = append(msg.Field, &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(int32(10 + i)), Label: opt,
			Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), TypeName: proto.String(".google.protobuf.Timestamp")})
	}
	fdp := &descriptorpb.FileDescriptorProto{Name: proto.String("e.proto"), Package: proto.String("t"), Syntax: proto.String("proto3"),
		Dependency: []string{"google/protobuf/timestamp.proto"}, MessageType: []*descriptorpb.DescriptorProto{msg}}
	fd, err := protodesc.NewFile(fdp, resolver{})
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().Get(0)
}

type resolver struct{}

func (resolver) FindFileByPath(p string) (protoreflect.FileDescriptor, error) {
	return timestamppb.File_google_protobuf_timestamp_proto, nil
}

func (resolver) FindDescriptorByName(n protoreflect.FullName) (protoreflect.Descriptor, error) {
	return (&timestamppb.Timestamp{}).ProtoReflect().Descriptor(), nil
}

func TestEventTimeField(t *testing.T) {
	for _, tc := range []struct {
		fields     []string
		configured string
		want       string // "" for none
		err        bool
	}{
		{nil, "", "", false},
		{[]string{"event_time"}, "", "event_time", false},
		{[]string{"event_time", "occurred_at"}, "", "occurred_at", false},
		{[]string{"created"}, "", "", false},
		{[]string{"created", "occurred_at"}, "created", "created", false},
		{[]string{"created"}, "note", "", true},
		{nil, "missing", "", true},
	} {
		md := message(t, tc.fields...)
		fd, err := table.EventTimeField(md, tc.configured)
		if (err != nil) != tc.err {
			t.Errorf("%v %q: err = %v, want error %v", tc.fields, tc.configured, err, tc.err)
			continue
		}
		got := ""
		if fd != nil {
			got = string(fd.Name())
		}
		if got != tc.want {
			t.Errorf("%v %q: field %q, want %q", tc.fields, tc.configured, got, tc.want)
		}
	}
}
