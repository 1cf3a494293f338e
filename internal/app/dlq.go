package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/pipelines"
	"github.com/switchyard-dev/switchyard/transforms"
)

const dlqUsage = `Usage: switchyard dlq <inspect|redrive> [flags]

  inspect  group a pipeline's dead letters by class, reason, contract, sink and route
  redrive  send selected dead letters through the pipeline again after a fix

Run 'switchyard dlq <command> --help' for its flags.
`

func cmdDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return exitUsage
	}
	switch args[0] {
	case "inspect":
		return cmdDLQInspect(ctx, args[1:], stdout, stderr)
	case "redrive":
		return cmdDLQRedrive(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, dlqUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "switchyard dlq: unknown command %q\n\n%s", args[0], dlqUsage)
	return exitUsage
}

// dlqSelect is which dead letters a dlq command works on.
type dlqSelect struct {
	pipeline string
	class    string
	reason   string
	since    time.Duration
}

func (s *dlqSelect) flags(fs interface {
	StringVar(*string, string, string, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}) {
	fs.StringVar(&s.pipeline, "pipeline", "", "`name` of the pipeline (required)")
	fs.StringVar(&s.class, "class", "", "only dead letters of this `class` (switchyard.error.class: decode, framing, validate, route, transform, sink)")
	fs.StringVar(&s.reason, "reason", "", "only dead letters of this `reason` (switchyard.error.reason, e.g. too_large)")
	fs.DurationVar(&s.since, "since", 0, "only dead letters written in the last `duration` (default: all the topic holds)")
}

func (s *dlqSelect) matches(d *deadLetter) bool {
	return d.pipeline == s.pipeline && (s.class == "" || d.class == s.class) && (s.reason == "" || d.reason == s.reason)
}

// deadLetter is a record of the dead-letter topic, with the headers the router wrote
// (pipelines/deadletter.go).
type deadLetter struct {
	rec                                                     *kgo.Record
	class, reason, message, contract, pipeline, sink, route string
	src                                                     tp
	offset                                                  int64
	attempts                                                string
	dropped                                                 bool
	valueSize                                               int
}

// routerHeaders are the headers the router adds to a dead letter.
var routerHeaders = map[string]bool{
	pipelines.HeaderClass: true, pipelines.HeaderReason: true, pipelines.HeaderMessage: true,
	pipelines.HeaderContract: true, pipelines.HeaderPipeline: true, pipelines.HeaderSink: true,
	pipelines.HeaderRoute: true, pipelines.HeaderTopic: true, pipelines.HeaderPartition: true,
	pipelines.HeaderOffset: true, pipelines.HeaderAttempts: true, pipelines.HeaderValueDropped: true,
	pipelines.HeaderValueSize: true, pipelines.HeaderValueSHA256: true,
}

// parseDeadLetter reads the router's headers of r. ok is false when r is not a dead letter
// of the router (no source coordinates).
func parseDeadLetter(r *kgo.Record) (d deadLetter, ok bool) {
	d = deadLetter{rec: r, offset: -1, valueSize: len(r.Value)}
	var havePart, haveOff bool
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case pipelines.HeaderClass:
			d.class = v
		case pipelines.HeaderReason:
			d.reason = v
		case pipelines.HeaderMessage:
			d.message = v
		case pipelines.HeaderContract:
			d.contract = v
		case pipelines.HeaderPipeline:
			d.pipeline = v
		case pipelines.HeaderSink:
			d.sink = v
		case pipelines.HeaderRoute:
			d.route = v
		case pipelines.HeaderTopic:
			d.src.Topic = v
		case pipelines.HeaderPartition:
			p, err := strconv.ParseInt(v, 10, 32)
			d.src.Partition, havePart = int32(p), err == nil
		case pipelines.HeaderOffset:
			o, err := strconv.ParseInt(v, 10, 64)
			d.offset, haveOff = o, err == nil
		case pipelines.HeaderAttempts:
			d.attempts = v
		case pipelines.HeaderValueDropped:
			d.dropped = v == "true"
		case pipelines.HeaderValueSize:
			if n, err := strconv.Atoi(v); err == nil {
				d.valueSize = n
			}
		}
	}
	if d.reason == "" {
		d.reason = d.class
	}
	return d, d.src.Topic != "" && havePart && haveOff
}

// coord renders the source coordinates: topic/partition@offset.
func (d *deadLetter) coord() string {
	return fmt.Sprintf("%s/%d@%d", d.src.Topic, d.src.Partition, d.offset)
}

// original is the source record as it was consumed: its coordinates, key, value and
// headers, without the router's. Its timestamp is the dead letter's (the source's is not
// kept).
func (d *deadLetter) original() *kgo.Record {
	var hs []kgo.RecordHeader
	for _, h := range d.rec.Headers {
		if !routerHeaders[h.Key] {
			hs = append(hs, h)
		}
	}
	return &kgo.Record{Topic: d.src.Topic, Partition: d.src.Partition, Offset: d.offset,
		Key: d.rec.Key, Value: d.rec.Value, Headers: hs, Timestamp: d.rec.Timestamp}
}

// dlqGroup is the dead letters of one class, reason, contract, sink and route.
type dlqGroup struct {
	Class, Reason, Contract, Sink, Route string
	Count                                int
	First, Last                          string // source coordinates, in dead-letter order
	FirstAt, LastAt                      time.Time
	Example                              string // one error message (names fields and rules, never values)
}

// groupDeadLetters groups dls, largest groups first.
func groupDeadLetters(dls []deadLetter) []*dlqGroup {
	type key struct{ class, reason, contract, sink, route string }
	m := map[key]*dlqGroup{}
	for i := range dls {
		d := &dls[i]
		k := key{d.class, d.reason, d.contract, d.sink, d.route}
		g := m[k]
		if g == nil {
			g = &dlqGroup{Class: d.class, Reason: d.reason, Contract: d.contract, Sink: d.sink, Route: d.route,
				First: d.coord(), FirstAt: d.rec.Timestamp, Example: d.message}
			m[k] = g
		}
		g.Count++
		g.Last, g.LastAt = d.coord(), d.rec.Timestamp
	}
	out := slices.Collect(maps.Values(m))
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return fmt.Sprint(*a) < fmt.Sprint(*b)
	})
	return out
}

// readDeadLetters reads the pipeline's dead-letter topic, read_committed, from --since ago
// (or its start) to its end as of now, and returns the dead letters sel selects.
func readDeadLetters(ctx context.Context, c *pipelines.Compiled, cp *pipelines.CompiledPipeline, sel *dlqSelect) ([]deadLetter, int, error) {
	topic := cp.Config.DeadLetter.Topic
	cl, err := kafkaClient(c, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return nil, 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var starts map[tp]int64
	if sel.since > 0 {
		starts, err = listed(adm.ListOffsetsAfterMilli(actx, time.Now().Add(-sel.since).UnixMilli(), topic))
	} else {
		starts, err = listed(adm.ListStartOffsets(actx, topic))
	}
	if err != nil {
		return nil, 0, fmt.Errorf("list offsets of dead-letter topic %s: %w", topic, err)
	}
	ends, err := listed(adm.ListCommittedOffsets(actx, topic))
	if err != nil {
		return nil, 0, fmt.Errorf("list end offsets of dead-letter topic %s: %w", topic, err)
	}
	var ranges []partRange
	for k, e := range ends {
		ranges = append(ranges, partRange{tp: k, From: min(starts[k], e), To: e})
	}
	var out []deadLetter
	read := 0
	_, err = readRanges(ctx, cl, ranges, 5000, 3*time.Second, map[tp]int64{}, func(recs []*kgo.Record) error {
		for _, r := range recs {
			read++
			if d, ok := parseDeadLetter(r); ok && sel.matches(&d) {
				out = append(out, d)
			}
		}
		return nil
	})
	// Dead-letter order: by the time they were written, then by position.
	sort.SliceStable(out, func(i, j int) bool { return out[i].rec.Timestamp.Before(out[j].rec.Timestamp) })
	return out, read, err
}

const inspectSummary = `Read a pipeline's dead-letter topic and group its dead letters by class, reason, contract,
sink and route, with counts and the first and last source coordinates (topic/partition@offset).
--show N prints N records' headers. Payload values are never printed unless --payload is
given, and then the values of fields the contract marks PII or debug_redact read [redacted];
a payload that does not decode is shown as its size and SHA-256 only.

Exit status: 0 done, 1 error, 2 bad flags, 130 interrupted.`

func cmdDLQInspect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cf commonFlags
	var sel dlqSelect
	fs := recoveryFlags("dlq inspect", inspectSummary, stderr, &cf)
	sel.flags(fs)
	show := fs.Int("show", 0, "also print the headers of the first `N` selected dead letters")
	payload := fs.Bool("payload", false, "with --show, also print keys and decoded payloads (PII and debug_redact fields redacted)")
	if helpRequested(fs, args, stdout) {
		return exitOK
	}
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if sel.pipeline == "" {
		fmt.Fprintln(stderr, "switchyard dlq inspect: --pipeline is required")
		return exitUsage
	}
	c, ok := load(cf.config, stderr)
	if !ok {
		return exitError
	}
	cp, err := pipelineByName(c, sel.pipeline)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard dlq inspect: %v\n", err)
		return exitError
	}
	dls, read, err := readDeadLetters(ctx, c, cp, &sel)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "switchyard dlq inspect: %v\n", err)
		return exitError
	}
	since := "all it holds"
	if sel.since > 0 {
		since = "last " + sel.since.String()
	}
	fmt.Fprintf(stdout, "%d dead letters of pipeline %q in %s (%s; %d records read)\n", len(dls), sel.pipeline, cp.Config.DeadLetter.Topic, since, read)
	writeGroups(stdout, groupDeadLetters(dls))
	for i := range min(*show, len(dls)) {
		fmt.Fprintln(stdout)
		showDeadLetter(stdout, cp, &dls[i], *payload)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stdout, "interrupted: the counts above are partial")
		return exitInterrupted
	}
	return exitOK
}

func writeGroups(w io.Writer, groups []*dlqGroup) {
	if len(groups) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COUNT\tCLASS\tREASON\tCONTRACT\tSINK\tROUTE\tFIRST\tLAST\tEXAMPLE")
	for _, g := range groups {
		ex := g.Example
		if len(ex) > 120 {
			ex = ex[:120] + "…"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Count, dash(g.Class), dash(g.Reason), dash(g.Contract), dash(g.Sink), dash(g.Route),
			g.First+" "+g.FirstAt.UTC().Format(time.RFC3339), g.Last+" "+g.LastAt.UTC().Format(time.RFC3339), ex)
	}
	_ = tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// showDeadLetter prints one dead letter's headers: the router's in full, the original
// record's by name and size. With payload, also the key and the decoded payload, PII and
// debug_redact fields redacted.
func showDeadLetter(w io.Writer, cp *pipelines.CompiledPipeline, d *deadLetter, payload bool) {
	r := d.rec
	fmt.Fprintf(w, "%s/%d@%d written %s, source %s\n", r.Topic, r.Partition, r.Offset, r.Timestamp.UTC().Format(time.RFC3339Nano), d.coord())
	for _, h := range r.Headers {
		if routerHeaders[h.Key] {
			fmt.Fprintf(w, "  %s: %s\n", h.Key, h.Value)
		}
	}
	for _, h := range r.Headers {
		if !routerHeaders[h.Key] {
			if payload {
				fmt.Fprintf(w, "  header %s: %q\n", h.Key, h.Value)
			} else {
				fmt.Fprintf(w, "  header %s: (%d bytes)\n", h.Key, len(h.Value))
			}
		}
	}
	if !payload {
		fmt.Fprintf(w, "  key: %d bytes, payload: %d bytes (--payload prints them, PII redacted)\n", len(r.Key), d.valueSize)
		return
	}
	fmt.Fprintf(w, "  key: %q\n", r.Key)
	fmt.Fprintf(w, "  payload: %s\n", renderPayload(cp, d))
}

// renderPayload decodes d's value with the pipeline's contract and renders it with
// transforms.Redact; what does not decode is shown by size and SHA-256, never byte by byte.
func renderPayload(cp *pipelines.CompiledPipeline, d *deadLetter) string {
	if d.dropped {
		return fmt.Sprintf("dropped by the router (%d bytes); replay it from %s", d.valueSize, d.coord())
	}
	sum := sha256.Sum256(d.rec.Value)
	opaque := fmt.Sprintf("%d bytes, sha256 %s", len(d.rec.Value), hex.EncodeToString(sum[:]))
	ct := cp.Contract(d.original())
	if ct == nil {
		return opaque + " (no contract for it)"
	}
	dec := cp.NewDecoder(ct)
	defer dec.Release()
	msg, err := dec.Decode(d.rec.Value)
	if err != nil {
		return opaque + " (does not decode as " + string(ct.Descriptor().FullName()) + ")"
	}
	return string(ct.Descriptor().FullName()) + " {" + transforms.Redact(msg) + "}"
}

const redriveSummary = `After a contract or configuration fix, send selected dead letters of a pipeline through it
again: decode, validate, route, transform and land, with their ORIGINAL source coordinates,
so clickhouse and bigquery exactly_once sinks skip what they already hold. A dead letter of
one sink (its switchyard.sink header is set) goes to that sink only; one that failed before
any sink (decode, framing, validate) goes to every sink its routes select. Records that
still fail stay in the dead-letter topic and are NOT dead-lettered again; an interrupted
redrive can be run again: nothing lands twice in exactly-once sinks (a kafka sink publishes
again what it had already published in the interrupted run).

Exit status: 0 every selected dead letter landed (or matched no route), 1 error, 2 bad flags,
3 some still fail (the summary says why), 130 interrupted.`

func cmdDLQRedrive(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cf commonFlags
	var sel dlqSelect
	fs := recoveryFlags("dlq redrive", redriveSummary, stderr, &cf)
	sel.flags(fs)
	batchSize := fs.Int("batch", 2000, "records per write")
	dryRun := fs.Bool("dry-run", false, "print what would be redriven (grouped as dlq inspect does), and exit")
	if helpRequested(fs, args, stdout) {
		return exitOK
	}
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if sel.pipeline == "" {
		fmt.Fprintln(stderr, "switchyard dlq redrive: --pipeline is required")
		return exitUsage
	}
	c, ok := load(cf.config, stderr)
	if !ok {
		return exitError
	}
	cp, err := pipelineByName(c, sel.pipeline)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard dlq redrive: %v\n", err)
		return exitError
	}
	dls, _, err := readDeadLetters(ctx, c, cp, &sel)
	if ctx.Err() != nil {
		fmt.Fprintln(stdout, "interrupted while reading the dead letters: nothing was redriven")
		return exitInterrupted
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchyard dlq redrive: %v\n", err)
		return exitError
	}
	var sinkNames []string
	for _, s := range cp.Config.Sinks {
		sinkNames = append(sinkNames, s.Name)
	}
	items, dropped, gone := redriveItems(dls, sinkNames)
	fmt.Fprintf(stdout, "redrive %d dead letters of pipeline %q (%d source records)\n", len(dls), sel.pipeline, len(items)+dropped+gone)
	if *dryRun {
		writeGroups(stdout, groupDeadLetters(dls))
		return exitOK
	}
	var need []string
	for _, it := range items {
		for _, s := range it.sinks {
			if !slices.Contains(need, s) {
				need = append(need, s)
			}
		}
	}
	var t tally
	t.byReason = map[string]int{}
	examples := map[string]string{}
	if dropped > 0 {
		t.read += dropped
		t.failed += dropped
		t.byReason["value_dropped"] += dropped
		examples["value_dropped"] = "the dead letter has no value (too large for the dead-letter topic): replay it from its source coordinates"
	}
	if gone > 0 {
		t.read += gone
		t.failed += gone
		t.byReason["sink_removed"] += gone
		examples["sink_removed"] = "its switchyard.sink is no longer a sink of the pipeline"
	}
	code := exitOK
	if len(items) > 0 {
		log := quietLogger(cf, stderr)
		octx, ocancel := context.WithTimeout(ctx, 2*time.Minute)
		shot, err := pipelines.NewOneShot(octx, c, sel.pipeline, need, pipelines.Options{Logger: log})
		ocancel()
		if err != nil {
			fmt.Fprintf(stderr, "switchyard dlq redrive: %v\n", err)
			return exitError
		}
		bar := newProgress(stderr, "redrive "+sel.pipeline, int64(len(items)))
		wctx := context.WithoutCancel(ctx) // a batch in flight finishes after Ctrl-C
		done := 0
		for _, b := range redriveBatches(items, *batchSize) {
			if ctx.Err() != nil {
				code = exitInterrupted
				break
			}
			recs := make([]*kgo.Record, len(b.items))
			for i, it := range b.items {
				recs[i] = it.rec
			}
			outs, err := shot.Process(wctx, recs, b.sinks)
			if err != nil {
				fmt.Fprintf(stderr, "switchyard dlq redrive: %v\n", err)
				code = exitError
				break
			}
			t.add(outs)
			for _, o := range outs {
				if o.Failed != "" && examples[o.Failed] == "" {
					examples[o.Failed] = o.Error
				}
			}
			done += len(b.items)
			bar.add(len(b.items), "")
		}
		bar.finish("")
		if err := shot.Close(context.Background()); err != nil && code == exitOK {
			fmt.Fprintf(stderr, "switchyard dlq redrive: %v\n", err)
			code = exitError
		}
		if code != exitOK {
			fmt.Fprintf(stdout, "stopped after %d of %d records; run the same command again: exactly-once sinks skip what already landed\n", done, len(items))
		}
	}
	fmt.Fprintf(stdout, "landed: %d\n", t.landed)
	if t.unrouted > 0 {
		fmt.Fprintf(stdout, "matched no route now: %d\n", t.unrouted)
	}
	fmt.Fprintf(stdout, "still failing: %d (they stay in %s, not dead-lettered again)\n", t.failed, cp.Config.DeadLetter.Topic)
	for _, r := range slices.Sorted(maps.Keys(t.byReason)) {
		fmt.Fprintf(stdout, "  %s: %d  e.g. %s\n", r, t.byReason[r], examples[r])
	}
	if code == exitOK && t.failed > 0 {
		code = exitStillFailed
	}
	return code
}

// redriveItem is one source record to redrive and the sinks it goes to.
type redriveItem struct {
	rec   *kgo.Record
	sinks []string
}

// redriveItems turns dead letters into source records, one per source coordinate (a record
// dead-lettered by two sinks goes to both), in dead-letter order. A dead letter with a sink
// goes to that sink; one without (it failed before any sink) to every sink. Dead letters
// whose value was dropped cannot be redriven and are counted, as are those of a sink the
// configuration no longer has.
func redriveItems(dls []deadLetter, allSinks []string) (items []*redriveItem, dropped, gone int) {
	byCoord := map[string]*redriveItem{}
	droppedAt, goneAt := map[string]bool{}, map[string]bool{}
	for i := range dls {
		d := &dls[i]
		k := d.coord()
		if d.dropped {
			if !droppedAt[k] {
				droppedAt[k] = true
				dropped++
			}
			continue
		}
		targets := allSinks
		if d.sink != "" {
			targets = []string{d.sink}
			if !slices.Contains(allSinks, d.sink) {
				// The sink is no longer in the configuration: nothing to redrive it to.
				if !goneAt[k] {
					goneAt[k] = true
					gone++
				}
				continue
			}
		}
		it := byCoord[k]
		if it == nil {
			it = &redriveItem{rec: d.original()}
			byCoord[k] = it
			items = append(items, it)
		}
		for _, s := range targets {
			if !slices.Contains(it.sinks, s) {
				it.sinks = append(it.sinks, s)
			}
		}
	}
	for _, it := range items {
		slices.Sort(it.sinks)
	}
	return items, dropped, gone
}

// redriveBatch is records that go to the same sinks.
type redriveBatch struct {
	sinks []string
	items []*redriveItem
}

// redriveBatches cuts items into batches of at most n records with equal sinks, keeping the
// order of items within each set of sinks.
func redriveBatches(items []*redriveItem, n int) []redriveBatch {
	n = max(n, 1)
	var out []redriveBatch
	open := map[string]int{} // sinks key -> index in out of the batch being filled
	for _, it := range items {
		k := strings.Join(it.sinks, "\x00")
		i, ok := open[k]
		if !ok || len(out[i].items) >= n {
			out = append(out, redriveBatch{sinks: it.sinks})
			i = len(out) - 1
			open[k] = i
		}
		out[i].items = append(out[i].items, it)
	}
	return out
}
