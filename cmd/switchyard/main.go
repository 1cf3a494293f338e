// Command switchyard routes Protobuf events from Kafka to Kafka, ClickHouse and BigQuery.
// See README.md; all logic lives in internal/app.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchyard-dev/switchyard/internal/app"
	_ "github.com/switchyard-dev/switchyard/sinks/all" // every sink kind Switchyard ships (app imports it too)
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(app.Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
