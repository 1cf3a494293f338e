package app

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/schollz/progressbar/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-dev/switchyard/client/producer"
	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/internal/kafkaconn"
	"github.com/switchyard-dev/switchyard/pipelines"
)

// stdin is what produce reads; tests replace it.
var stdin io.Reader = os.Stdin

// produceBatch is how many valid lines produce sends per Publish call.
const produceBatch = 500

const produceSummary = `Read events as JSON lines (protojson of the contract's message) from standard input, check
each against the contract's rules and send the valid ones to the topic, framed in the
encoding, with the standard switchyard-* headers (see docs/clients.md).

Each line that is not JSON of the message, or breaks a rule, is reported on stderr as
stdin:LINE: field: rule (field is empty for message-level rules) and is not sent; the others
are sent all the same. Exit status: 0 all sent, 1 some line failed or Kafka refused, 2 bad
flags or configuration. Progress is shown on stderr when it is a terminal.

switchyard produce --sample --config PATH [--rate N] [--invalid F] [--duration D] instead runs
the sample-event generator of switchyard dev against the configuration's Kafka (docker-compose.yml
runs it as the generator service); see switchyard produce --sample --help.`

// cmdProduce is `switchyard produce`.
func cmdProduce(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if i := slices.IndexFunc(args, func(a string) bool { return a == "--sample" || a == "-sample" }); i >= 0 {
		return cmdProduceSample(ctx, slices.Delete(slices.Clone(args), i, i+1), stdout, stderr)
	}
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	configPath := fs.String("config", "", "configuration `path`: its kafka section is used to connect, its contracts to validate")
	name := fs.String("contract", "", "full `name` of the events' message, e.g. auctions.v1.BidPlaced (required)")
	topic := fs.String("topic", "", "`topic` to write to (required)")
	encName := fs.String("encoding", "", "payload `encoding`: confluent, raw or json; default: the contract.encoding of the pipeline reading the topic, else confluent")
	key := fs.String("key", "", "`field` (dotted path) whose value keys each record; no key when empty")
	schemaID := fs.Uint("schema-id", 0, "Confluent schema `id` to frame with; default: the pipeline's first contract.schema_ids entry, else the latest version of TOPIC-value in contracts.schema_registry")
	producerName := fs.String("producer", "switchyard-produce", "value of the switchyard-producer header")
	if code, ok := parseHelp(fs, args, stdout, stderr, "produce --config PATH --contract NAME --topic T [flags] < events.jsonl", produceSummary); !ok {
		return code
	}
	if *name == "" || *topic == "" {
		fmt.Fprintln(stderr, "switchyard produce: --contract and --topic are required")
		return 2
	}
	c, ok := load(*configPath, stderr)
	if !ok {
		return 2
	}
	ct, err := c.Registry.Lookup(*name)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard produce: %v\n", err)
		return 2
	}
	reader := readerOf(c, *topic)
	enc := contract.Confluent
	if reader != nil {
		enc = reader.Encoding
	}
	if *encName != "" {
		if enc, err = contract.ParseEncoding(*encName); err != nil {
			fmt.Fprintf(stderr, "switchyard produce: --encoding: %v\n", err)
			return 2
		}
	}
	cfg := producer.Config{
		Brokers: c.Config.Kafka.Brokers, Topic: *topic, Encoding: enc, SchemaID: uint32(*schemaID),
		KeyField: *key, Name: *producerName,
	}
	if enc == contract.Confluent && cfg.SchemaID == 0 {
		switch {
		case reader != nil && len(reader.Config.Contract.SchemaIDs) > 0:
			cfg.SchemaID = uint32(reader.Config.Contract.SchemaIDs[0])
		case c.SchemaRegistry != nil:
			cfg.Registry = c.SchemaRegistry.Client()
		default:
			fmt.Fprintln(stderr, "switchyard produce: encoding confluent needs --schema-id (no pipeline reading the topic lists contract.schema_ids, and no contracts.schema_registry is configured)")
			return 2
		}
	}
	if *key != "" {
		if _, err := producer.KeyPath(ct.Descriptor(), *key); err != nil {
			fmt.Fprintf(stderr, "switchyard produce: --key: %v\n", err)
			return 2
		}
	}
	if cfg.Sarama, err = kafkaconn.SaramaConfig(c.Config.Kafka); err != nil {
		fmt.Fprintf(stderr, "switchyard produce: %v\n", err)
		return 2
	}
	p, err := producer.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard produce: %v\n", err)
		return 1
	}
	defer p.Close()

	var bar *progressbar.ProgressBar
	if isTerminal(stderr) {
		bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("producing to "+*topic),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("events"),
			progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100_000_000))
	}
	// report prints a problem with a line, above the progress bar.
	report := func(format string, args ...any) {
		if bar != nil {
			_ = bar.Clear()
		}
		fmt.Fprintf(stderr, format, args...)
	}
	sent, failed := 0, 0
	var batch []proto.Message
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := p.Publish(ctx, batch...); err != nil {
			return err
		}
		sent += len(batch)
		if bar != nil {
			_ = bar.Add(len(batch))
		}
		batch = batch[:0]
		return nil
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	line := 0
	unmarshal := protojson.UnmarshalOptions{Resolver: c.Registry.Types()}
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if len(trimSpace(text)) == 0 {
			continue
		}
		msg := ct.New()
		if err := unmarshal.Unmarshal(text, msg); err != nil {
			failed++
			report("stdin:%d: json: %s\n", line, contract.RedactJSONError(err))
			continue
		}
		if err := ct.Validate(msg); err != nil {
			failed++
			var verr *contract.ValidationError
			if !errors.As(err, &verr) {
				report("stdin:%d: %v\n", line, err)
				continue
			}
			for _, v := range verr.Violations {
				report("stdin:%d: %s: %s\n", line, v.Field, v.Rule)
			}
			continue
		}
		batch = append(batch, msg)
		if len(batch) == produceBatch {
			if err := flush(); err != nil {
				fmt.Fprintf(stderr, "switchyard produce: %v (%d events sent before line %d)\n", err, sent, line)
				return 1
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(stderr, "stdin:%d: %v\n", line+1, err)
		failed++
	}
	if err := flush(); err != nil {
		fmt.Fprintf(stderr, "switchyard produce: %v (%d events sent)\n", err, sent)
		return 1
	}
	if bar != nil {
		_ = bar.Finish()
	}
	fmt.Fprintf(stderr, "switchyard produce: %d events sent to %s (%s), %d lines failed\n", sent, *topic, enc, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// readerOf returns the pipeline that reads topic, if any.
func readerOf(c *pipelines.Compiled, topic string) *pipelines.CompiledPipeline {
	for _, p := range c.Pipelines {
		if slices.Contains(p.Config.Source.Topics, topic) {
			return p
		}
	}
	return nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// parseHelp parses a command's flags; -h and --help print the usage to stdout and exit 0,
// flag errors go to stderr with exit 2. ok is false when the command should return code.
func parseHelp(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, synopsis, summary string) (code int, ok bool) {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: switchyard %s\n\n%s\n\nFlags:\n", synopsis, summary)
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0, false
		}
		fmt.Fprintf(stderr, "switchyard %s: %v\n", fs.Name(), err)
		usage(stderr)
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "switchyard %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, false
	}
	return 0, true
}
