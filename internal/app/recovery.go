package app

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/internal/kafkaconn"
	"github.com/switchyard-dev/switchyard/pipelines"
)

// Exit codes of replay and dlq (docs/recovery.md).
const (
	exitOK          = 0
	exitError       = 1   // bad configuration, Kafka or a sink unreachable, a write that failed after its retries
	exitUsage       = 2   // bad flags
	exitStillFailed = 3   // redrive: some selected dead letters still fail (they stay in the dead-letter topic)
	exitInterrupted = 130 // Ctrl-C or SIGTERM: stopped cleanly after the batch in flight, progress printed
)

// recoveryFlags builds the flag set of a recovery command, with the common flags. Its
// usage goes to stdout on --help (see helpRequested) and to stderr after a flag error.
func recoveryFlags(name, summary string, stderr io.Writer, cf *commonFlags) *flag.FlagSet {
	fs := newFlagSet(name, summary, stderr, cf, "")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: switchyard %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// helpRequested prints fs's usage to stdout if args ask for help.
func helpRequested(fs *flag.FlagSet, args []string, stdout io.Writer) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			fs.SetOutput(stdout)
			fs.Usage()
			return true
		}
	}
	return false
}

// tp is a topic partition.
type tp struct {
	Topic     string
	Partition int32
}

func (t tp) String() string { return fmt.Sprintf("%s/%d", t.Topic, t.Partition) }

// partRange is the half-open offset range [From, To) of one partition.
type partRange struct {
	tp
	From, To int64
	// Note says why the range is shorter than asked, if it is.
	Note string
}

// Records is how many records the range holds at most (transaction markers and compacted
// records take offsets too).
func (r partRange) Records() int64 { return max(r.To-r.From, 0) }

// sortedRanges returns the ranges of m by topic and partition.
func sortedRanges(m map[tp]partRange) []partRange {
	out := slices.Collect(maps.Values(m))
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// progress reports records done of a total: a progress bar (records, rate, ETA) on a
// terminal, a plain line every few seconds otherwise.
type progress struct {
	w       io.Writer
	bar     *progressbar.ProgressBar
	label   string
	total   int64
	done    int64
	start   time.Time
	lastOut time.Time
}

func newProgress(w io.Writer, label string, total int64) *progress {
	p := &progress{w: w, label: label, total: total, start: time.Now(), lastOut: time.Now()}
	if isTerminal(w) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("records"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return p
}

// add counts n more records done; detail (e.g. partitions done) shows next to the bar.
func (p *progress) add(n int, detail string) {
	p.done += int64(n)
	if p.bar != nil {
		if detail != "" {
			p.bar.Describe(p.label + " " + detail)
		}
		_ = p.bar.Add(n)
		return
	}
	if time.Since(p.lastOut) >= 2*time.Second {
		p.lastOut = time.Now()
		p.line(detail)
	}
}

func (p *progress) line(detail string) {
	el := time.Since(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.done) / el
	}
	eta := "?"
	if rate > 0 && p.total >= p.done {
		eta = (time.Duration(float64(p.total-p.done)/rate) * time.Second).Round(time.Second).String()
	}
	pct := 100.0
	if p.total > 0 {
		pct = float64(p.done) * 100 / float64(p.total)
	}
	if detail != "" {
		detail = ", " + detail
	}
	fmt.Fprintf(p.w, "%s: %d of %d records (%.0f%%), %.0f records/s, eta %s%s\n", p.label, p.done, p.total, pct, rate, eta, detail)
}

// finish ends the bar, or prints a last plain line.
func (p *progress) finish(detail string) {
	if p.bar != nil {
		if p.done < p.total { // a complete bar ended its line itself (OptionOnCompletion)
			_ = p.bar.Exit()
			fmt.Fprintln(p.w)
		}
		return
	}
	p.line(detail)
}

// adminFor connects a Kafka admin client with the configuration's connection settings.
func kafkaClient(c *pipelines.Compiled, opts ...kgo.Opt) (*kgo.Client, error) {
	franz, err := kafkaconn.FranzOpts(c.Config.Kafka)
	if err != nil {
		return nil, err
	}
	return kgo.NewClient(append(franz, opts...)...)
}

// pipelineByName returns the compiled pipeline named name.
func pipelineByName(c *pipelines.Compiled, name string) (*pipelines.CompiledPipeline, error) {
	var names []string
	for _, p := range c.Pipelines {
		if p.Config.Name == name {
			return p, nil
		}
		names = append(names, p.Config.Name)
	}
	return nil, fmt.Errorf("no pipeline %q in the configuration (pipelines: %s)", name, strings.Join(names, ", "))
}

// listed turns listed offsets into a map, failing on any partition's error.
func listed(lo kadm.ListedOffsets, err error) (map[tp]int64, error) {
	if err != nil {
		return nil, err
	}
	if err := lo.Error(); err != nil {
		return nil, err
	}
	out := map[tp]int64{}
	lo.Each(func(o kadm.ListedOffset) { out[tp{o.Topic, o.Partition}] = o.Offset })
	return out, nil
}

// readRanges reads each range of ranges (no consumer group: the partitions are assigned
// directly) and calls batch with the records read, at most max at a time, in offset order
// per partition. A partition is done when a record at or past its end arrives, or when no
// record arrived for idle while the others wait (offsets taken by transaction markers or
// compaction at the end of a range); idleEnded holds those partitions and their ends. It
// returns the offset each partition got to (the next one to read) and ctx's error if it was
// interrupted.
func readRanges(ctx context.Context, cl *kgo.Client, ranges []partRange, max int, idle time.Duration, idleEnded map[tp]int64,
	batch func([]*kgo.Record) error) (map[tp]int64, error) {
	next := map[tp]int64{}
	end := map[tp]int64{}
	assign := map[string]map[int32]kgo.Offset{}
	for _, r := range ranges {
		next[r.tp] = r.From
		if r.Records() == 0 {
			continue
		}
		end[r.tp] = r.To
		if assign[r.Topic] == nil {
			assign[r.Topic] = map[int32]kgo.Offset{}
		}
		assign[r.Topic][r.Partition] = kgo.NewOffset().At(r.From)
	}
	if len(end) == 0 {
		return next, nil
	}
	cl.AddConsumePartitions(assign)
	var buf []*kgo.Record
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		err := batch(buf)
		buf = buf[:0]
		return err
	}
	lastRecord, seenAny := time.Now(), false
	for len(end) > 0 {
		if err := ctx.Err(); err != nil {
			return next, err
		}
		pctx, cancel := context.WithTimeout(ctx, idle)
		fs := cl.PollRecords(pctx, max)
		cancel()
		if ctx.Err() != nil {
			return next, ctx.Err()
		}
		if err := fatalFetchError(fs); err != nil {
			return next, err
		}
		got := 0
		var finished []tp
		fs.EachRecord(func(r *kgo.Record) {
			k := tp{r.Topic, r.Partition}
			e, ok := end[k]
			if !ok || r.Offset < next[k] {
				return
			}
			if r.Offset >= e {
				next[k] = e
				delete(end, k)
				finished = append(finished, k)
				return
			}
			buf = append(buf, r)
			got++
			next[k] = r.Offset + 1
			if next[k] >= e {
				delete(end, k)
				finished = append(finished, k)
			}
		})
		if len(finished) > 0 {
			pause := map[string][]int32{}
			for _, k := range finished {
				pause[k.Topic] = append(pause[k.Topic], k.Partition)
			}
			cl.PauseFetchPartitions(pause)
		}
		if err := flush(); err != nil {
			return next, err
		}
		if got > 0 || len(finished) > 0 {
			lastRecord, seenAny = time.Now(), true
			continue
		}
		// Nothing more arrives below the ends: what is left are offsets without records
		// (transaction markers, compaction). Before the first record, wait longer: the
		// first fetch of a busy cluster can be slow.
		wait := idle
		if !seenAny {
			wait = 6 * idle
		}
		if time.Since(lastRecord) >= wait {
			for k, e := range end {
				idleEnded[k] = e
			}
			end = nil
		}
	}
	return next, nil
}

// fatalFetchError returns the first fetch error that is not a timeout or cancellation.
func fatalFetchError(fs kgo.Fetches) error {
	var err error
	fs.EachError(func(_ string, _ int32, e error) {
		if err == nil && !isCtxErr(e) {
			err = e
		}
	})
	return err
}

func isCtxErr(err error) bool {
	return err == context.Canceled || err == context.DeadlineExceeded || strings.Contains(err.Error(), "context deadline exceeded") || strings.Contains(err.Error(), "context canceled")
}

// quietLogger logs warnings and errors of the sinks to w, as text.
func quietLogger(cf commonFlags, w io.Writer) *slog.Logger {
	level := slog.LevelWarn
	if cf.logLevel != "" {
		_ = level.UnmarshalText([]byte(strings.ToUpper(cf.logLevel)))
	}
	if cf.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
