package app

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

const produceSampleSummary = `With --sample: produce sample events (the generator of switchyard dev: realistic
livestream, auction and order events, about 1% invalid, event times at the wall clock) into the source topics of a
configuration's pipelines whose contract is a sample contract, on the configuration's Kafka
cluster (kafka.brokers, or --brokers; plaintext). Runs until SIGINT or SIGTERM, or for
--duration, then prints how many events the brokers acknowledged. docker-compose.yml runs it
as the generator service.`

// cmdProduceSample is `switchyard produce --sample`: the generator of switchyard dev.
func cmdProduceSample(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cf commonFlags
	fs := newFlagSet("produce --sample", produceSampleSummary, stderr, &cf, "")
	brokers := fs.String("brokers", "", "comma-separated `host:port` list of Kafka brokers (default: the configuration's kafka.brokers)")
	rate := fs.Int("rate", 200, "sample events per second, over all topics")
	invalid := fs.Float64("invalid", 0.01, "fraction of sample events that are invalid")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until SIGINT or SIGTERM)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	c, ok := load(cf.config, stderr)
	if !ok {
		return 1
	}
	seeds := c.Config.Kafka.Brokers
	if *brokers != "" {
		seeds = strings.Split(*brokers, ",")
	}
	log := newLogger(c.Config.Logging, cf, stderr)
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	gen, err := startGenerator(ctx, c, seeds, *rate, *invalid, log)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard produce: %v\n", err)
		return 1
	}
	log.Info("producing sample events", "brokers", strings.Join(seeds, ","), "rate", *rate, "invalid", *invalid)
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
			log.Info("sample events produced", "produced", gen.Produced())
		}
	}
	gen.Stop()
	fmt.Fprintf(stdout, "produced %d sample events\n", gen.Produced())
	return 0
}
