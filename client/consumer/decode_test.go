package consumer

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard-dev/switchyard/contract"
	auctionsv1 "github.com/switchyard-dev/switchyard/gen/go/auctions/v1"
	commonv1 "github.com/switchyard-dev/switchyard/gen/go/common/v1"
)

func TestDecode_framings_and_failures(t *testing.T) {
	b := &auctionsv1.BidPlaced{
		EventId: "c0a80101-0000-4000-8000-000000000001", OccurredAt: timestamppb.New(time.Unix(1764620100, 0)),
		AuctionId: "7f0c1c6e-2b1e-4c1a-9a52-0d7a4f3e9b10", LotId: "0a3c5e7f-1b2d-4e6f-8a9b-0c1d2e3f4a5b",
		BidderId: "5d41402a-bc4b-4a76-b971-9d911017c592", BidderEmail: "ada@example.com",
		Amount: &commonv1.Money{CurrencyCode: "EUR", Units: 1}, Source: auctionsv1.BidPlaced_SOURCE_API, Sequence: 1, Quantity: 1,
	}
	raw, _ := proto.Marshal(b)
	js, _ := protojson.Marshal(b)
	invalid := proto.Clone(b).(*auctionsv1.BidPlaced)
	invalid.Quantity = 0
	rawInvalid, _ := proto.Marshal(invalid)
	c, err := contract.ForMessage(b.ProtoReflect().Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	d := &decoder{c: c, indexes: c.MessageIndexes()}
	for _, tc := range []struct {
		name    string
		payload []byte
		enc     contract.Encoding
		class   string
	}{
		{"confluent", contract.FrameConfluent(nil, 9, []int{0}, raw), contract.Confluent, ""},
		{"raw", raw, contract.Raw, ""},
		{"json", js, contract.JSON, ""},
		{"json with leading space and unknown key", append([]byte(" {\"zzz\": 1,"), js[1:]...), contract.JSON, ""},
		{"confluent for another message", contract.FrameConfluent(nil, 9, []int{1}, raw), contract.Confluent, "framing"},
		{"short frame", []byte{0, 1}, contract.Confluent, "framing"},
		{"not protobuf", []byte{0xff, 0xff, 0xff}, contract.Raw, "decode"},
		{"not json", []byte("{nope"), contract.JSON, "decode"},
		{"invalid", rawInvalid, contract.Raw, "validate"},
	} {
		var got auctionsv1.BidPlaced
		var m Meta
		class, err := d.decode(tc.payload, &got, &m)
		if class != tc.class || m.Encoding != tc.enc {
			t.Errorf("%s: class %q, encoding %v (%v); want %q, %v", tc.name, class, m.Encoding, err, tc.class, tc.enc)
		}
		if tc.class == "" && !proto.Equal(&got, b) {
			t.Errorf("%s: decoded %v", tc.name, &got)
		}
	}
}
