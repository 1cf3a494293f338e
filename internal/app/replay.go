package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/pipelines"
)

const replaySummary = `Re-land a range of a pipeline's source topics into ONE of its sinks; no other sink and no
consumer group offset is touched. The range starts at --from-time, --from-offsets or
--from-earliest and ends at --to-time (default: now), and never goes past the offsets the
sink's own lane (group <source.group>.<sink>) has committed: the lane lands the rest itself,
so replay can run while the daemon runs. Replay reads its partitions directly (no consumer
group) and writes with the records' original coordinates: clickhouse and bigquery
exactly_once sinks skip what they already hold; a kafka sink publishes every record again.
Records that fail to decode, validate or land are counted, not dead-lettered again.

Times are RFC 3339 (2026-12-01T10:00:00Z) or a duration ago (90m). A --from-offsets file
has one "topic partition offset" line per partition (# starts a comment), the format replay
prints when interrupted.

Exit status: 0 done, 1 error (configuration, Kafka, a sink write that failed after its
retries), 2 bad flags, 130 interrupted (Ctrl-C; the batch in flight finishes and the offsets
to resume from are printed).`

func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cf commonFlags
	fs := recoveryFlags("replay", replaySummary, stderr, &cf)
	pipeline := fs.String("pipeline", "", "`name` of the pipeline (required)")
	sink := fs.String("sink", "", "`name` of the one sink to re-land into (required)")
	fromTime := fs.String("from-time", "", "start at the first record at or after this `time`")
	fromOffsets := fs.String("from-offsets", "", "start at the offsets in this `file` (\"topic partition offset\" lines)")
	fromEarliest := fs.Bool("from-earliest", false, "start at the earliest offsets the topics still hold")
	toTime := fs.String("to-time", "", "end before the first record at or after this `time` (default: the end of each partition)")
	dryRun := fs.Bool("dry-run", false, "print the partitions, offset ranges and record counts, and exit")
	batchSize := fs.Int("batch", 2000, "records per write")
	if helpRequested(fs, args, stdout) {
		return exitOK
	}
	if code, ok := parse(fs, args); !ok {
		return code
	}
	starts := 0
	for _, set := range []bool{*fromTime != "", *fromOffsets != "", *fromEarliest} {
		if set {
			starts++
		}
	}
	if *pipeline == "" || *sink == "" || starts != 1 {
		fmt.Fprintln(stderr, "switchyard replay: --pipeline, --sink and exactly one of --from-time, --from-offsets, --from-earliest are required")
		return exitUsage
	}
	now := time.Now()
	var from, to time.Time
	var err error
	if *fromTime != "" {
		if from, err = parseWhen(*fromTime, now); err != nil {
			fmt.Fprintf(stderr, "switchyard replay: --from-time: %v\n", err)
			return exitUsage
		}
	}
	if *toTime != "" {
		if to, err = parseWhen(*toTime, now); err != nil {
			fmt.Fprintf(stderr, "switchyard replay: --to-time: %v\n", err)
			return exitUsage
		}
	}
	var fileOffsets map[tp]int64
	if *fromOffsets != "" {
		f, err := os.Open(*fromOffsets)
		if err != nil {
			fmt.Fprintf(stderr, "switchyard replay: %v\n", err)
			return exitUsage
		}
		fileOffsets, err = parseOffsets(f, *fromOffsets)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "switchyard replay: %v\n", err)
			return exitUsage
		}
	}
	c, ok := load(cf.config, stderr)
	if !ok {
		return exitError
	}
	cp, err := pipelineByName(c, *pipeline)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard replay: %v\n", err)
		return exitError
	}
	if !slices.ContainsFunc(cp.Config.Sinks, func(s config.Sink) bool { return s.Name == *sink }) {
		var names []string
		for _, s := range cp.Config.Sinks {
			names = append(names, s.Name)
		}
		fmt.Fprintf(stderr, "switchyard replay: pipeline %q has no sink %q (sinks: %s)\n", *pipeline, *sink, strings.Join(names, ", "))
		return exitError
	}

	cl, err := kafkaClient(c)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard replay: %v\n", err)
		return exitError
	}
	defer cl.Close()
	group := cp.LaneGroup(*sink)
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	ranges, err := planReplay(actx, kadm.NewClient(cl), cp.Config.Source.Topics, group, replayStart{from: from, offsets: fileOffsets, earliest: *fromEarliest}, to)
	cancel()
	if err != nil && ctx.Err() != nil {
		fmt.Fprintln(stdout, "interrupted before replaying anything")
		return exitInterrupted
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchyard replay: %v\n", err)
		return exitError
	}
	var total int64
	fmt.Fprintf(stdout, "replay pipeline %q sink %q (lane group %s):\n", *pipeline, *sink, group)
	for _, r := range ranges {
		total += r.Records()
		note := ""
		if r.Note != "" {
			note = "  (" + r.Note + ")"
		}
		fmt.Fprintf(stdout, "  %s  offsets [%d, %d)  %d records%s\n", r.tp, r.From, r.To, r.Records(), note)
	}
	fmt.Fprintf(stdout, "  total: %d records in %d partitions\n", total, len(ranges))
	if *dryRun {
		return exitOK
	}

	log := quietLogger(cf, stderr)
	octx, ocancel := context.WithTimeout(ctx, 2*time.Minute)
	shot, err := pipelines.NewOneShot(octx, c, *pipeline, []string{*sink}, pipelines.Options{Logger: log})
	ocancel()
	if err != nil && ctx.Err() != nil {
		fmt.Fprintln(stdout, "interrupted before replaying anything")
		return exitInterrupted
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchyard replay: %v\n", err)
		return exitError
	}
	var isolation []kgo.Opt
	if shot.ReadCommitted() {
		isolation = append(isolation, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	consumer, err := kafkaClient(c, isolation...)
	if err != nil {
		_ = shot.Close(context.Background())
		fmt.Fprintf(stderr, "switchyard replay: %v\n", err)
		return exitError
	}
	defer consumer.Close()
	bar := newProgress(stderr, "replay "+*pipeline+"/"+*sink, total)
	var tally tally
	writeErr := error(nil)
	// The batch in flight finishes even after Ctrl-C, so that what is reported as done is done.
	wctx := context.WithoutCancel(ctx)
	idleEnded := map[tp]int64{}
	next, err := readRanges(ctx, consumer, ranges, *batchSize, 5*time.Second, idleEnded, func(recs []*kgo.Record) error {
		outs, err := shot.Process(wctx, recs, nil)
		if err != nil {
			writeErr = err
			return err
		}
		tally.add(outs)
		bar.add(len(recs), "")
		return nil
	})
	bar.finish("")
	if cerr := shot.Close(context.Background()); cerr != nil && writeErr == nil {
		writeErr = cerr
	}
	fmt.Fprintf(stdout, "read %d records: %d landed in %s (written, or already there), %d not landed%s\n",
		tally.read, tally.landed, *sink, tally.failed, tally.reasons())
	for _, r := range ranges {
		if e, ok := idleEnded[r.tp]; ok {
			fmt.Fprintf(stdout, "  %s: no records arrived after offset %d (of %d): offsets without records (transaction markers, compaction)\n", r.tp, next[r.tp], e)
			next[r.tp] = e
		}
	}
	code := exitOK
	switch {
	case writeErr != nil:
		fmt.Fprintf(stderr, "switchyard replay: %v\n", writeErr)
		code = exitError
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		code = exitInterrupted
	case err != nil:
		fmt.Fprintf(stderr, "switchyard replay: %v\n", err)
		code = exitError
	}
	if code != exitOK {
		fmt.Fprintln(stdout, "stopped before the end; to resume, run again with --from-offsets FILE (and the same --to-time) holding:")
		for _, r := range ranges {
			if n := next[r.tp]; n < r.To {
				fmt.Fprintf(stdout, "%s %d %d\n", r.Topic, r.Partition, n)
			}
		}
	}
	return code
}

// tally counts outcomes of processed records.
type tally struct {
	read, landed, failed, unrouted int
	byReason                       map[string]int
}

func (t *tally) add(outs []pipelines.Outcome) {
	if t.byReason == nil {
		t.byReason = map[string]int{}
	}
	for _, o := range outs {
		t.read++
		switch {
		case o.Failed != "":
			t.failed++
			t.byReason[o.Failed]++
		case len(o.Landed) > 0:
			t.landed++
		default:
			t.unrouted++
		}
	}
}

// reasons renders the failure counts by reason: " (validate=3, decode=1)".
func (t *tally) reasons() string {
	if len(t.byReason) == 0 {
		return ""
	}
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(t.byReason)) {
		parts = append(parts, fmt.Sprintf("%s=%d", r, t.byReason[r]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// replayStart is where a replay starts: a time, offsets from a file, or the earliest.
type replayStart struct {
	from     time.Time
	offsets  map[tp]int64
	earliest bool
}

// offsetLister is the part of kadm.Client replay plans with.
type offsetLister interface {
	ListStartOffsets(ctx context.Context, topics ...string) (kadm.ListedOffsets, error)
	ListEndOffsets(ctx context.Context, topics ...string) (kadm.ListedOffsets, error)
	ListOffsetsAfterMilli(ctx context.Context, millisecond int64, topics ...string) (kadm.ListedOffsets, error)
	FetchOffsets(ctx context.Context, group string) (kadm.OffsetResponses, error)
}

// planReplay asks Kafka for the offsets of the range and the lane's committed offsets, and
// computes the ranges to replay (see replayRanges).
func planReplay(ctx context.Context, adm offsetLister, topics []string, group string, start replayStart, to time.Time) ([]partRange, error) {
	low, err := listed(adm.ListStartOffsets(ctx, topics...))
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %v: %w", topics, err)
	}
	var ends map[tp]int64
	if to.IsZero() {
		ends, err = listed(adm.ListEndOffsets(ctx, topics...))
	} else {
		ends, err = listed(adm.ListOffsetsAfterMilli(ctx, to.UnixMilli(), topics...))
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %v: %w", topics, err)
	}
	var starts map[tp]int64
	switch {
	case start.earliest:
		starts = low
	case start.offsets != nil:
		starts = start.offsets
	default:
		if starts, err = listed(adm.ListOffsetsAfterMilli(ctx, start.from.UnixMilli(), topics...)); err != nil {
			return nil, fmt.Errorf("list offsets of %v at %s: %w", topics, start.from.Format(time.RFC3339), err)
		}
	}
	resp, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("fetch committed offsets of group %s: %w", group, err)
	}
	committed := map[tp]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At >= 0 {
			committed[tp{o.Topic, o.Partition}] = o.At
		}
	})
	return replayRanges(starts, low, ends, committed), nil
}

// replayRanges computes the range of every partition of ends: from its start (raised to the
// partition's earliest offset low), to its end, capped at the lane's committed offset. A
// partition the lane has committed nothing for is not replayed: the lane lands it itself
// (and a running daemon may be landing it right now).
func replayRanges(starts, low, ends, committed map[tp]int64) []partRange {
	out := map[tp]partRange{}
	for k, end := range ends {
		r := partRange{tp: k, To: end}
		from, ok := starts[k]
		switch {
		case !ok:
			r.From, r.To, r.Note = end, end, "no start offset given"
			out[k] = r
			continue
		case from < low[k]:
			r.From, r.Note = low[k], fmt.Sprintf("offsets before %d are gone (retention)", low[k])
		default:
			r.From = from
		}
		c, ok := committed[k]
		switch {
		case !ok:
			r.To, r.Note = r.From, "the lane has committed nothing here yet: it lands this partition itself"
		case c < r.To:
			r.To, r.Note = c, fmt.Sprintf("capped at the lane's committed offset; the lane lands offsets from %d itself", c)
		}
		if r.To < r.From {
			r.To = r.From
		}
		out[k] = r
	}
	return sortedRanges(out)
}

// parseWhen reads an RFC 3339 time, or a duration meaning that long before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-12-01T10:00:00Z) nor a duration ago (90m)", s)
}

// parseOffsets reads "topic partition offset" lines; # starts a comment.
func parseOffsets(r io.Reader, name string) (map[tp]int64, error) {
	out := map[tp]int64{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("%s:%d: want \"topic partition offset\", got %q", name, line, strings.TrimSpace(text))
		}
		p, err1 := strconv.ParseInt(f[1], 10, 32)
		o, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || p < 0 || o < 0 {
			return nil, fmt.Errorf("%s:%d: partition and offset must be non-negative integers, got %q", name, line, strings.TrimSpace(text))
		}
		out[tp{f[0], int32(p)}] = o
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no offsets", name)
	}
	return out, nil
}
