package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard-dev/switchyard/client/consumer"
	"github.com/switchyard-dev/switchyard/client/producer"
	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/deadletter"
	auctionsv1 "github.com/switchyard-dev/switchyard/gen/go/auctions/v1"
	commonv1 "github.com/switchyard-dev/switchyard/gen/go/common/v1"
)

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

// Handle gets typed events, whatever their framing; a record that is not a BidPlaced goes to
// the dead-letter topic with the router's switchyard.* headers instead.
func ExampleHandle() {
	cluster, _ := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "auctions.bids", "auctions.bids.dlq"))
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Two bids, one Confluent-framed and one protojson, then a record that is neither.
	for _, enc := range []contract.Encoding{contract.Confluent, contract.JSON} {
		p, _ := producer.New(producer.Config{Brokers: brokers, Topic: "auctions.bids", Encoding: enc, SchemaID: 7, Name: "auction-service"})
		_ = p.Publish(ctx, bid(fmt.Sprintf("c0a80101-0000-4000-8000-00000000000%d", enc)))
		p.Close()
	}
	raw, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
	raw.ProduceSync(ctx, &kgo.Record{Topic: "auctions.bids", Key: []byte("k"), Value: []byte{0, 0, 0, 0, 7, 2, 2, 8}})
	raw.Close()

	r, err := consumer.NewRouter(consumer.Config{Brokers: brokers, Group: "fraud", DeadLetterTopic: "auctions.bids.dlq"})
	if err != nil {
		fmt.Println(err)
		return
	}
	got := make(chan string)
	consumer.Handle(r, "auctions.bids", func(ctx context.Context, b *auctionsv1.BidPlaced, m consumer.Meta) error {
		got <- fmt.Sprintf("offset %d (%s, from %s): bid %s of %d.%02d %s", m.Offset, m.Encoding, m.Producer, b.EventId, b.Amount.Units, b.Amount.Nanos/1e7, b.Amount.CurrencyCode)
		return nil
	})
	go r.Run(ctx)
	defer r.Close()
	fmt.Println(<-got)
	fmt.Println(<-got)

	dlq, _ := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("auctions.bids.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer dlq.Close()
	var dl *kgo.Record
	for dl == nil && ctx.Err() == nil {
		if rs := dlq.PollFetches(ctx).Records(); len(rs) > 0 {
			dl = rs[0]
		}
	}
	fmt.Printf("dead letter, key %s:\n", dl.Key)
	slices.SortFunc(dl.Headers, func(a, b kgo.RecordHeader) int { return compare(a.Key, b.Key) })
	for _, h := range dl.Headers {
		if deadletter.IsHeader(h.Key) && len(h.Value) > 0 { // route and sink are empty here
			fmt.Printf("  %s: %s\n", h.Key, h.Value)
		}
	}
	// Output:
	// offset 0 (confluent, from auction-service): bid c0a80101-0000-4000-8000-000000000001 of 42.50 EUR
	// offset 1 (json, from auction-service): bid c0a80101-0000-4000-8000-000000000003 of 42.50 EUR
	// dead letter, key k:
	//   switchyard.attempts: 1
	//   switchyard.contract: auctions.v1.BidPlaced
	//   switchyard.error.class: framing
	//   switchyard.error.message: decode framing: frame names message index [1], auctions.v1.BidPlaced is [0]
	//   switchyard.error.reason: framing
	//   switchyard.pipeline: fraud
	//   switchyard.source.offset: 2
	//   switchyard.source.partition: 0
	//   switchyard.source.topic: auctions.bids
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
