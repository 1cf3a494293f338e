package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/bqemu"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/pipelines"
	bqsink "github.com/switchyard-dev/switchyard/sinks/bigquery"
	sinktable "github.com/switchyard-dev/switchyard/sinks/table"
)

// devBQEndpointEnv and devBQGRPCEnv name a BigQuery endpoint (an emulator) for dev's
// bigquery sink; when a user sets both, dev uses it instead of starting a bqemulator.
const (
	devBQEndpointEnv = "SWITCHYARD_BQ_ENDPOINT"
	devBQGRPCEnv     = "SWITCHYARD_BQ_GRPC_ENDPOINT"
	devBQDataset     = "dev"
)

// startBQEmulator starts the private emulator; tests replace it.
var startBQEmulator = bqemu.Start

// devBigQuery is the BigQuery emulator `switchyard dev` lands sample orders in.
type devBigQuery struct {
	srv        *bqemu.Server // nil when the user's endpoint is used, or none
	rest, grpc string        // "" when BigQuery lands are skipped
	dir        string        // temporary directory of srv's log
}

// startDevBigQuery provides the endpoint for dev's bigquery sinks: $SWITCHYARD_BQ_ENDPOINT
// and $SWITCHYARD_BQ_GRPC_ENDPOINT when set, else (when enabled and installed) a private
// bqemulator on free ports. It creates the dataset "dev", says on stdout what it did, and
// never fails: dev runs without BigQuery then. The caller must call stop.
func startDevBigQuery(ctx context.Context, enabled bool, stdout io.Writer) *devBigQuery {
	rest, grpc := os.Getenv(devBQEndpointEnv), os.Getenv(devBQGRPCEnv)
	d := &devBigQuery{}
	switch {
	case rest != "" && grpc != "":
		fmt.Fprintf(stdout, "bigquery: landing sample orders at %s and %s ($%s, $%s)\n", rest, grpc, devBQEndpointEnv, devBQGRPCEnv)
		d.rest, d.grpc = rest, grpc
	case !enabled:
		fmt.Fprintln(stdout, "bigquery: BigQuery lands are off (--bigquery=false)")
		return d
	case !bqemu.Installed():
		fmt.Fprintf(stdout, "bigquery: bqemulator is not installed, so BigQuery lands are skipped (everything else runs);\n"+
			"  to land sample orders in a local BigQuery emulator too, %s.\n", bqemu.InstallHint)
		return d
	default:
		dir, err := os.MkdirTemp("", "switchyard-dev-bqemulator-")
		if err != nil {
			fmt.Fprintf(stdout, "bigquery: BigQuery lands are skipped: %v\n", err)
			return d
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		started := time.Now()
		srv, err := startBQEmulator(sctx, dir)
		if err != nil {
			os.RemoveAll(dir)
			fmt.Fprintf(stdout, "bigquery: bqemulator did not start, so BigQuery lands are skipped: %v\n", err)
			return d
		}
		fmt.Fprintf(stdout, "bigquery: started bqemulator on %s and %s in %s\n", srv.RESTEndpoint(), srv.GRPCAddr(), time.Since(started).Round(time.Millisecond))
		d.srv, d.dir, d.rest, d.grpc = srv, dir, srv.RESTEndpoint(), srv.GRPCAddr()
	}
	if err := d.createDataset(ctx); err != nil {
		fmt.Fprintf(stdout, "bigquery: BigQuery lands are skipped: create dataset %s: %v\n", devBQDataset, err)
		d.stop()
		return &devBigQuery{}
	}
	return d
}

func (d *devBigQuery) client(ctx context.Context) (*bigquery.Client, error) {
	return bigquery.NewClient(ctx, bqemu.Project, option.WithEndpoint(d.rest), option.WithoutAuthentication())
}

func (d *devBigQuery) createDataset(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := d.client(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	err = cl.Dataset(devBQDataset).Create(ctx, &bigquery.DatasetMetadata{Location: "US"})
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Code == http.StatusConflict {
		return nil
	}
	return err
}

// enabled reports whether dev's bigquery sinks have an endpoint.
func (d *devBigQuery) enabled() bool { return d.rest != "" }

// stop stops the private emulator (its tables are in memory) and removes its directory.
func (d *devBigQuery) stop() {
	if d.srv == nil {
		return
	}
	d.srv.Stop()
	os.RemoveAll(d.dir)
}

// devBQPipeline is the pipeline of configs/dev.yaml that addSink lands in
// BigQuery, and devBQSink is that sink and its route, parsed as configuration so that every
// default applies. The emulator cannot store RECORD columns (docs/sinks.md): the route
// flattens the singular messages into columns (total -> total_units, ...) and drops the
// repeated ones. Few large appends: the emulator's cost is per request.
const (
	devBQPipeline = "orders-paid"
	devBQSink     = `
kafka: {brokers: ["127.0.0.1:9092"]}
contracts: {path: contracts}
pipelines:
  - name: orders-paid
    owner: {team: dev, contact: dev}
    source: {topics: [orders.paid]}
    contract: {message: orders.v1.OrderPaid}
    sinks:
      - name: warehouse
        batch: {max_rows: 10000, interval: 1s}
        bigquery:
          project: %s
          dataset: %s
          endpoint: %q
          grpc_endpoint: %q
          insecure: true
          create_table: true
    routes:
      - sink: warehouse
        transforms:
          - flatten: true
          - drop: [items, attributes]
    dead_letter: {topic: orders.paid.dlq}
`
)

// addSink adds the sink "warehouse" on the emulator, and its route, to the
// pipeline orders-paid of cfg, when cfg has that pipeline and it has no bigquery sink yet
// (configs/dev.yaml stays as it is, so the dashboards and alerts generated from it do not
// change). It returns the added sink as "pipeline/sink", or "".
func (d *devBigQuery) addSink(cfg *config.Config) (string, error) {
	if !d.enabled() {
		return "", nil
	}
	for i := range cfg.Pipelines {
		p := &cfg.Pipelines[i]
		if p.Name != devBQPipeline {
			continue
		}
		for _, sc := range p.Sinks {
			if _, ok := sc.Options.(*bqsink.Config); ok {
				return "", nil
			}
		}
		extra, err := config.Parse("switchyard dev (bigquery sink)", fmt.Appendf(nil, devBQSink, bqemu.Project, devBQDataset, d.rest, d.grpc))
		if err != nil {
			return "", err
		}
		ep := extra.Pipelines[0]
		p.Sinks = append(p.Sinks, ep.Sinks...)
		p.Routes = append(p.Routes, ep.Routes...)
		return p.Name + "/" + ep.Sinks[0].Name, nil
	}
	return "", nil
}

// bqTables returns `project.dataset.table` of every bigquery sink of c.
func bqTables(c *pipelines.Compiled) []string {
	var out []string
	for _, p := range c.Pipelines {
		for _, sc := range p.Config.Sinks {
			bq, ok := sc.Options.(*bqsink.Config)
			if !ok {
				continue
			}
			table := bq.Table
			if table == "" {
				table = sinktable.Name(protoreflect.FullName(p.Config.Contract.Message))
			}
			out = append(out, bq.Project+"."+bq.Dataset+"."+table)
		}
	}
	return out
}

// printHelp says how to query the tables of dev's bigquery sinks with SQL over REST.
func (d *devBigQuery) printHelp(stdout io.Writer, c *pipelines.Compiled) {
	if !d.enabled() {
		return
	}
	for _, t := range bqTables(c) {
		fmt.Fprintf(stdout, "bigquery: sample orders land in %s (flattened: total_units, payment_method, ...); query it with\n"+
			"  curl -s %sprojects/%s/queries -H 'Content-Type: application/json' \\\n"+
			"    -d '{\"useLegacySql\": false, \"query\": \"SELECT shipping_country, count(*) AS orders, sum(total_units) AS total_units FROM `%s` GROUP BY shipping_country ORDER BY orders DESC LIMIT 5\"}'\n",
			t, d.rest, bqemu.Project, t)
	}
}

// printSummary prints the row count of each table of dev's bigquery sinks, after the drain.
func (d *devBigQuery) printSummary(stdout io.Writer, c *pipelines.Compiled) {
	if !d.enabled() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := d.client(ctx)
	if err != nil {
		fmt.Fprintf(stdout, "bigquery: could not count the rows: %v\n", err)
		return
	}
	defer cl.Close()
	for _, t := range bqTables(c) {
		n, err := countRows(ctx, cl, "SELECT count(*) FROM `"+t+"`")
		if err != nil {
			fmt.Fprintf(stdout, "bigquery: could not count the rows of %s: %v\n", t, err)
			continue
		}
		fmt.Fprintf(stdout, "bigquery: %s holds %d rows\n", t, n)
	}
}

func countRows(ctx context.Context, cl *bigquery.Client, sql string) (int64, error) {
	it, err := cl.Query(sql).Read(ctx)
	if err != nil {
		return 0, err
	}
	var row []bigquery.Value
	if err := it.Next(&row); err != nil {
		if errors.Is(err, iterator.Done) {
			return 0, errors.New("no result row")
		}
		return 0, err
	}
	n, ok := row[0].(int64)
	if !ok {
		return 0, fmt.Errorf("count is %T", row[0])
	}
	return n, nil
}

// setUp fits cfg to the BigQuery dev has: with an endpoint, the orders land in it too
// (addSink); without one, the config's own bigquery sinks are left out. It says what it did.
func (d *devBigQuery) setUp(cfg *config.Config, stdout io.Writer) error {
	if !d.enabled() {
		if dropped := dropSinks[*bqsink.Config](cfg); len(dropped) > 0 {
			fmt.Fprintf(stdout, "bigquery: left out BigQuery sinks %v\n", dropped)
		}
		return nil
	}
	added, err := d.addSink(cfg)
	if err != nil {
		return fmt.Errorf("add the sink on the emulator: %w", err)
	}
	if added != "" {
		fmt.Fprintf(stdout, "bigquery: added sink %s (flattened orders into the emulator)\n", added)
	}
	return nil
}
