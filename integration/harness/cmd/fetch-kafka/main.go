// Command fetch-kafka downloads the Apache Kafka broker jars that the
// integration harness runs into its cache ($SWITCHYARD_CACHE, else the user
// cache directory + "/switchyard") and formats the KRaft storage template, so
// tests do not spend their time budget on Maven. It is idempotent: a filled
// cache returns at once. It prints the jar directory.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/switchyard-dev/switchyard/integration/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	libs, err := harness.EnsureKafkaJars(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fetch-kafka: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("kafka %s jars in %s\n", harness.KafkaVersion, libs)
}
