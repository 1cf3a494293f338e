package producer_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard-dev/switchyard/client/producer"
	"github.com/switchyard-dev/switchyard/contract"
	auctionsv1 "github.com/switchyard-dev/switchyard/gen/go/auctions/v1"
	commonv1 "github.com/switchyard-dev/switchyard/gen/go/common/v1"
)

// bid returns a valid auctions.v1.BidPlaced.
func bid(eventID string) *auctionsv1.BidPlaced {
	return &auctionsv1.BidPlaced{
		EventId:     eventID,
		OccurredAt:  timestamppb.New(time.Date(2026, 12, 1, 20, 15, 0, 0, time.UTC)),
		AuctionId:   "7f0c1c6e-2b1e-4c1a-9a52-0d7a4f3e9b10",
		LotId:       "0a3c5e7f-1b2d-4e6f-8a9b-0c1d2e3f4a5b",
		BidderId:    "5d41402a-bc4b-4a76-b971-9d911017c592",
		BidderEmail: "ada@example.com",
		Amount:      &commonv1.Money{CurrencyCode: "EUR", Units: 42, Nanos: 500_000_000},
		Source:      auctionsv1.BidPlaced_SOURCE_LIVE_BUTTON,
		Sequence:    1,
		Quantity:    1,
	}
}

// Publish validates, frames (Confluent, schema id 7) and keys a bid by auction before sending
// it; an invalid bid is refused with the fields and rules it breaks, and nothing is sent.
func ExampleProducer_Publish() {
	cluster, _ := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "auctions.bids"))
	defer cluster.Close()

	p, err := producer.New(producer.Config{
		Brokers:  cluster.ListenAddrs(),
		Topic:    "auctions.bids",
		Encoding: contract.Confluent,
		SchemaID: 7,
		KeyField: "auction_id",
		Name:     "auction-service",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	ctx := context.Background()
	if err := p.Publish(ctx, bid("c0a80101-0000-4000-8000-000000000001")); err != nil {
		fmt.Println(err)
	}

	bad := bid("not-a-uuid")
	bad.Quantity = 0
	err = p.Publish(ctx, bid("c0a80101-0000-4000-8000-000000000002"), bad)
	var invalid *producer.InvalidError
	if errors.As(err, &invalid) {
		for _, ev := range invalid.Events {
			for _, v := range ev.Err.Violations {
				fmt.Printf("event %d: %s: %s\n", ev.Index, v.Field, v.Rule)
			}
		}
	}

	// Read back what reached the topic: one record.
	cl, _ := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("auctions.bids"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	fetchCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r := cl.PollRecords(fetchCtx, 10).Records()[0]
	id, indexes, _, _ := contract.SplitConfluent(r.Value)
	fmt.Printf("key %s, schema id %d, message indexes %v\n", r.Key, id, indexes)
	for _, h := range r.Headers[:3] {
		fmt.Printf("%s: %s\n", h.Key, h.Value)
	}
	// Output:
	// event 1: event_id: string.uuid
	// event 1: quantity: int32.gt_lte
	// key 7f0c1c6e-2b1e-4c1a-9a52-0d7a4f3e9b10, schema id 7, message indexes [0]
	// switchyard-contract: auctions.v1.BidPlaced
	// switchyard-event-time: 2026-12-01T20:15:00Z
	// switchyard-producer: auction-service
}
