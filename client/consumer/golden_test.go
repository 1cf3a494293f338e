package consumer

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/switchyard-dev/switchyard/contract"
	auctionsv1 "github.com/switchyard-dev/switchyard/gen/go/auctions/v1"
)

// TestDecode_golden_vectors decodes, offline, the frames captured in
// integration/testdata/interop: written by confluent-kafka-python's ProtobufSerializer, by
// client/producer and by switchyard produce (integration/interop_test.go refreshes them).
func TestDecode_golden_vectors(t *testing.T) {
	c, err := contract.ForMessage((&auctionsv1.BidPlaced{}).ProtoReflect().Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	d := &decoder{c: c, indexes: c.MessageIndexes()}
	// The ids are what the mock registry of interop.py gave the two topics' subjects.
	for name, v := range map[string]struct {
		eventID  string
		schemaID uint32
	}{
		"python_auctions.bin": {"c0a80101-0000-4000-8000-0000000000aa", 5},
		"go_producer.bin":     {"c0a80101-0000-4000-8000-000000000001", 4},
		"go_produce.bin":      {"c0a80101-0000-4000-8000-000000000002", 4},
	} {
		eventID := v.eventID
		b, err := os.ReadFile(filepath.Join("..", "..", "integration", "testdata", "interop", name))
		if err != nil {
			t.Fatal(err)
		}
		var got auctionsv1.BidPlaced
		var m Meta
		if class, err := d.decode(b, &got, &m); err != nil {
			t.Errorf("%s: %s: %v", name, class, err)
			continue
		}
		want := &auctionsv1.BidPlaced{EventId: eventID, BidderEmail: "ada@example.com", Quantity: 2, Sequence: 3, Source: auctionsv1.BidPlaced_SOURCE_AUTO_BID}
		if got.EventId != want.EventId || got.BidderEmail != want.BidderEmail || got.Quantity != want.Quantity ||
			got.Sequence != want.Sequence || got.Source != want.Source || got.PromoCode.GetValue() != "SPRING" ||
			got.TimeRemaining.AsDuration().Milliseconds() != 12500 || m.Encoding != contract.Confluent || m.SchemaID != v.schemaID {
			t.Errorf("%s: decoded %v (schema id %d)", name, &got, m.SchemaID)
		}
	}
	// Python and Go serialize the same event to the same body.
	py, _ := os.ReadFile(filepath.Join("..", "..", "integration", "testdata", "interop", "python_auctions.bin"))
	var a, b auctionsv1.BidPlaced
	if err := proto.Unmarshal(py[6:], &a); err != nil {
		t.Fatal(err)
	}
	goFrame, _ := os.ReadFile(filepath.Join("..", "..", "integration", "testdata", "interop", "go_producer.bin"))
	if err := proto.Unmarshal(goFrame[6:], &b); err != nil {
		t.Fatal(err)
	}
	b.EventId = a.EventId
	if !proto.Equal(&a, &b) {
		t.Errorf("python and client/producer framed different events:\n%v\n%v", &a, &b)
	}
}
