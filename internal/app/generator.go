package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/pipelines"
)

// generator produces sample events into every source topic of the dev pipelines whose
// contract is one of the sample contracts.
type generator struct {
	produced atomic.Int64
	cancel   context.CancelFunc
	done     sync.WaitGroup
	client   *kgo.Client
}

type genTarget struct {
	topic    string
	contract string
	enc      contract.Encoding
}

func startGenerator(ctx context.Context, c *pipelines.Compiled, brokers []string, rate int, invalid float64, log *slog.Logger) (*generator, error) {
	var targets []genTarget
	known := map[string]bool{}
	for _, n := range eventgen.Names() {
		known[n] = true
	}
	for _, p := range c.Pipelines {
		for _, topic := range p.Config.Source.Topics {
			name := p.Config.Contract.Topics[topic]
			if name == "" {
				name = p.Config.Contract.Message
			}
			if known[name] {
				targets = append(targets, genTarget{topic: topic, contract: name, enc: p.Encoding})
			}
		}
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("no source topic of the configuration carries a sample contract (%v)", eventgen.Names())
	}
	gen, err := eventgen.New(c.Registry, eventgen.Options{Seed: uint64(time.Now().UnixNano()), InvalidRate: invalid, Clock: time.Now})
	if err != nil {
		return nil, err
	}
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	g := &generator{cancel: cancel, client: client}
	g.done.Go(func() {
		const tick = 20 * time.Millisecond
		t := time.NewTicker(tick)
		defer t.Stop()
		perTick := float64(rate) * tick.Seconds()
		var owed float64
		i := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			owed += perTick
			for ; owed >= 1; owed-- {
				tg := targets[i%len(targets)]
				i++
				ev, err := gen.NextOf(tg.contract, tg.enc)
				if err != nil {
					log.Error("generate sample event", "error", err)
					return
				}
				client.Produce(ctx, &kgo.Record{Topic: tg.topic, Value: ev.Payload}, func(_ *kgo.Record, err error) {
					if err == nil {
						g.produced.Add(1)
					}
				})
			}
		}
	})
	return g, nil
}

// Produced is how many sample events the broker acknowledged.
func (g *generator) Produced() int64 { return g.produced.Load() }

// Stop stops producing and waits for outstanding records.
func (g *generator) Stop() {
	g.cancel()
	g.done.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = g.client.Flush(ctx)
	g.client.Close()
}
