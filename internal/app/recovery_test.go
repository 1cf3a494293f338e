package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/pipelines"
)

func TestReplayRanges(t *testing.T) {
	a0, a1, a2 := tp{"a", 0}, tp{"a", 1}, tp{"a", 2}
	tests := []struct {
		name                         string
		starts, low, ends, committed map[tp]int64
		want                         []partRange
	}{
		{
			name:      "from earliest, lane caught up",
			starts:    map[tp]int64{a0: 0, a1: 5},
			low:       map[tp]int64{a0: 0, a1: 5},
			ends:      map[tp]int64{a0: 100, a1: 50},
			committed: map[tp]int64{a0: 100, a1: 50},
			want:      []partRange{{tp: a0, From: 0, To: 100}, {tp: a1, From: 5, To: 50}},
		},
		{
			name:      "capped at the lane's committed offset",
			starts:    map[tp]int64{a0: 10},
			low:       map[tp]int64{a0: 0},
			ends:      map[tp]int64{a0: 100},
			committed: map[tp]int64{a0: 60},
			want:      []partRange{{tp: a0, From: 10, To: 60, Note: "capped at the lane's committed offset; the lane lands offsets from 60 itself"}},
		},
		{
			name:      "start before retention, lane committed nothing, start missing, start past the cap",
			starts:    map[tp]int64{a0: 3, a1: 70},
			low:       map[tp]int64{a0: 20},
			ends:      map[tp]int64{a0: 100, a1: 100, a2: 100},
			committed: map[tp]int64{a0: 100, a1: 40, a2: 100},
			want: []partRange{
				{tp: a0, From: 20, To: 100, Note: "offsets before 20 are gone (retention)"},
				{tp: a1, From: 70, To: 70, Note: "capped at the lane's committed offset; the lane lands offsets from 40 itself"},
				{tp: a2, From: 100, To: 100, Note: "no start offset given"},
			},
		},
		{
			name:      "lane never committed",
			starts:    map[tp]int64{a0: 0},
			low:       map[tp]int64{a0: 0},
			ends:      map[tp]int64{a0: 100},
			committed: map[tp]int64{},
			want:      []partRange{{tp: a0, From: 0, To: 0, Note: "the lane has committed nothing here yet: it lands this partition itself"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := replayRanges(tt.starts, tt.low, tt.ends, tt.committed)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("replayRanges:\n got %+v\nwant %+v", got, tt.want)
			}
			for _, r := range got {
				if r.Records() < 0 || r.To < r.From {
					t.Fatalf("range %+v is negative", r)
				}
			}
		})
	}
}

func TestParseOffsets(t *testing.T) {
	got, err := parseOffsets(strings.NewReader("# resume\nbids 0 17\n\nbids 3 4 # tail\n"), "f")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[tp]int64{{"bids", 0}: 17, {"bids", 3}: 4}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for in, want := range map[string]string{
		"bids 0\n":          `f:1: want "topic partition offset", got "bids 0"`,
		"bids 0 1\nb x 2\n": `f:2: partition and offset must be non-negative integers, got "b x 2"`,
		"b 0 -1\n":          `f:1: partition and offset must be non-negative integers, got "b 0 -1"`,
		"# nothing\n":       "f: no offsets",
	} {
		if _, err := parseOffsets(strings.NewReader(in), "f"); err == nil || err.Error() != want {
			t.Errorf("parseOffsets(%q) = %v, want %s", in, err, want)
		}
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-12-01T08:30:00Z": time.Date(2026, 12, 1, 8, 30, 0, 0, time.UTC),
		"90m":                  now.Add(-90 * time.Minute),
	} {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"yesterday", "-5m", "2026-12-01"} {
		if _, err := parseWhen(in, now); err == nil {
			t.Errorf("parseWhen(%q) accepted it", in)
		}
	}
}

// dl builds a dead letter as the router writes it (pipelines/deadletter.go).
func dl(class, reason, sink, route string, part int32, off int64, at time.Time, extra ...kgo.RecordHeader) *kgo.Record {
	h := append([]kgo.RecordHeader{}, extra...)
	add := func(k, v string) { h = append(h, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(pipelines.HeaderClass, class)
	add(pipelines.HeaderReason, reason)
	add(pipelines.HeaderMessage, "auctions.v1.BidPlaced violates 1 rule: quantity [int32.gt_lte]")
	add(pipelines.HeaderContract, "auctions.v1.BidPlaced")
	add(pipelines.HeaderPipeline, "bids")
	add(pipelines.HeaderSink, sink)
	add(pipelines.HeaderRoute, route)
	add(pipelines.HeaderTopic, "bids")
	add(pipelines.HeaderPartition, strconv.Itoa(int(part)))
	add(pipelines.HeaderOffset, strconv.FormatInt(off, 10))
	add(pipelines.HeaderAttempts, "1")
	return &kgo.Record{Topic: "bids-dlq", Key: []byte("k"), Value: []byte("v"), Headers: h, Timestamp: at}
}

func parsed(t *testing.T, recs ...*kgo.Record) []deadLetter {
	t.Helper()
	var out []deadLetter
	for _, r := range recs {
		d, ok := parseDeadLetter(r)
		if !ok {
			t.Fatalf("not a dead letter: %v", r.Headers)
		}
		out = append(out, d)
	}
	return out
}

func TestGroupDeadLetters(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	dls := parsed(t,
		dl("validate", "validate", "", "", 1, 10, t0),
		dl("sink", "too_large", "olap", "all", 0, 3, t0.Add(time.Second)),
		dl("validate", "validate", "", "", 0, 7, t0.Add(2*time.Second)),
		dl("validate", "validate", "", "", 2, 1, t0.Add(3*time.Second)),
	)
	got := groupDeadLetters(dls)
	if len(got) != 2 {
		t.Fatalf("%d groups, want 2: %+v", len(got), got)
	}
	v, s := got[0], got[1]
	if v.Class != "validate" || v.Count != 3 || v.First != "bids/1@10" || v.Last != "bids/2@1" || !v.FirstAt.Equal(t0) || !v.LastAt.Equal(t0.Add(3*time.Second)) {
		t.Errorf("validate group: %+v", v)
	}
	if s.Class != "sink" || s.Reason != "too_large" || s.Sink != "olap" || s.Route != "all" || s.Count != 1 || s.First != "bids/0@3" || s.Last != "bids/0@3" {
		t.Errorf("sink group: %+v", s)
	}
	var out bytes.Buffer
	writeGroups(&out, got)
	if !strings.Contains(out.String(), "3      validate  validate   auctions.v1.BidPlaced  -     -") {
		t.Errorf("table:\n%s", out.String())
	}
}

func TestDeadLetter_original_drops_router_headers(t *testing.T) {
	r := dl("validate", "validate", "", "", 2, 41, time.Now(), kgo.RecordHeader{Key: "trace", Value: []byte("t1")})
	d := parsed(t, r)[0]
	o := d.original()
	if o.Topic != "bids" || o.Partition != 2 || o.Offset != 41 || string(o.Key) != "k" || string(o.Value) != "v" {
		t.Fatalf("original = %+v", o)
	}
	if len(o.Headers) != 1 || o.Headers[0].Key != "trace" {
		t.Fatalf("original headers = %v, want only the source's", o.Headers)
	}
	if _, ok := parseDeadLetter(&kgo.Record{Value: []byte("x")}); ok {
		t.Fatal("a record without source coordinates parsed as a dead letter")
	}
}

func TestRedriveItems(t *testing.T) {
	now := time.Now()
	dropped := dl("sink", "too_large", "olap", "", 0, 9, now, kgo.RecordHeader{Key: pipelines.HeaderValueDropped, Value: []byte("true")})
	dls := parsed(t,
		dl("validate", "validate", "", "", 0, 1, now),       // failed before any sink: every sink
		dl("sink", "sink", "olap", "r", 0, 2, now),          // one sink
		dl("transform", "transform", "bus", "r", 0, 2, now), // same record, another sink
		dl("validate", "validate", "", "", 0, 1, now),       // a repeat of the first
		dropped,
	)
	items, nDropped, nGone := redriveItems(dls, []string{"bus", "olap"})
	if nDropped != 1 || nGone != 0 || len(items) != 2 {
		t.Fatalf("%d items, %d dropped, %d of removed sinks; want 2, 1 and 0", len(items), nDropped, nGone)
	}
	if items[0].rec.Offset != 1 || !reflect.DeepEqual(items[0].sinks, []string{"bus", "olap"}) {
		t.Errorf("item 0: offset %d sinks %v", items[0].rec.Offset, items[0].sinks)
	}
	if items[1].rec.Offset != 2 || !reflect.DeepEqual(items[1].sinks, []string{"bus", "olap"}) {
		t.Errorf("item 1: offset %d sinks %v", items[1].rec.Offset, items[1].sinks)
	}
	one := parsed(t, dl("sink", "sink", "olap", "r", 0, 5, now), dl("sink", "sink", "old", "r", 0, 6, now))
	items, _, nGone = redriveItems(one, []string{"bus", "olap"})
	if len(items) != 1 || !reflect.DeepEqual(items[0].sinks, []string{"olap"}) || nGone != 1 {
		t.Errorf("got %d items (first to %v), %d of removed sinks; want one to olap only, and one of a removed sink", len(items), items[0].sinks, nGone)
	}
}

func TestRedriveBatches(t *testing.T) {
	var items []*redriveItem
	for i := range 7 {
		sinks := []string{"olap"}
		if i%3 == 0 {
			sinks = []string{"bus", "olap"}
		}
		items = append(items, &redriveItem{rec: &kgo.Record{Offset: int64(i)}, sinks: sinks})
	}
	var got []string
	for _, b := range redriveBatches(items, 2) {
		var offs []string
		for _, it := range b.items {
			offs = append(offs, strconv.FormatInt(it.rec.Offset, 10))
		}
		got = append(got, strings.Join(b.sinks, "+")+":"+strings.Join(offs, ","))
	}
	want := []string{"bus+olap:0,3", "olap:1,2", "olap:4,5", "bus+olap:6"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("batches %v, want %v", got, want)
	}
}

// TestShowDeadLetter_never_prints_values_unless_asked_and_never_PII shows a dead letter of a
// real BidPlaced: without --payload no key, header or payload value appears; with it, the
// payload is decoded and bidder_email (pii, debug_redact) reads [redacted].
func TestShowDeadLetter_never_prints_values_unless_asked_and_never_PII(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	contracts := filepath.Join(filepath.Dir(file), "..", "..", "contracts")
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	yaml := fmt.Sprintf(`kafka: {brokers: ["127.0.0.1:1"]}
contracts: {path: %s}
pii: {hash_key: k}
pipelines:
  - name: bids
    owner: {team: t, contact: c}
    source: {topics: [bids]}
    contract: {encoding: confluent, message: auctions.v1.BidPlaced}
    sinks:
      - name: bus
        kafka: {topic: out}
    routes:
      - sink: bus
    dead_letter: {topic: bids-dlq}
`, contracts)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	c, ok := load(cfg, &stderr)
	if !ok {
		t.Fatal(stderr.String())
	}
	gen, err := eventgen.New(c.Registry, eventgen.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := gen.Make(eventgen.BidPlaced, eventgen.Valid, contract.Confluent)
	if err != nil {
		t.Fatal(err)
	}
	email := ev.Message.Get(ev.Message.Descriptor().Fields().ByName("bidder_email")).String()
	eventID := ev.Message.Get(ev.Message.Descriptor().Fields().ByName("event_id")).String()
	r := dl("validate", "validate", "", "", 0, 1, time.Now(), kgo.RecordHeader{Key: "x-user", Value: []byte("secret-header")})
	r.Key, r.Value = []byte("secret-key"), ev.Payload
	d := parsed(t, r)[0]
	cp := c.Pipelines[0]

	var out bytes.Buffer
	showDeadLetter(&out, cp, &d, false)
	for _, v := range []string{email, eventID, "secret-key", "secret-header"} {
		if strings.Contains(out.String(), v) {
			t.Errorf("without --payload the output holds %q:\n%s", v, out.String())
		}
	}
	if !strings.Contains(out.String(), "switchyard.error.class: validate") || !strings.Contains(out.String(), "header x-user: (13 bytes)") {
		t.Errorf("headers missing:\n%s", out.String())
	}

	out.Reset()
	showDeadLetter(&out, cp, &d, true)
	if strings.Contains(out.String(), email) || !strings.Contains(out.String(), "bidder_email:[redacted]") || !strings.Contains(out.String(), eventID) {
		t.Errorf("with --payload, want the event decoded with bidder_email redacted:\n%s", out.String())
	}

	r.Value = []byte("\x00\x00\x00\x00\x01not protobuf " + email)
	d = parsed(t, r)[0]
	out.Reset()
	showDeadLetter(&out, cp, &d, true)
	if strings.Contains(out.String(), email) || !strings.Contains(out.String(), "sha256") {
		t.Errorf("an undecodable payload must show as size and SHA-256 only:\n%s", out.String())
	}
}

func TestRecoveryCommands_flags(t *testing.T) {
	for _, args := range [][]string{{"replay", "--help"}, {"dlq", "inspect", "-h"}, {"dlq", "redrive", "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), args, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "Exit status:") || stderr.Len() > 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want usage with exit codes on stdout", args, code, stdout.String(), stderr.String())
		}
	}
	for _, args := range [][]string{
		{"replay", "--config", "x", "--pipeline", "p", "--sink", "s"},
		{"replay", "--config", "x", "--pipeline", "p", "--sink", "s", "--from-earliest", "--from-time", "1h"},
		{"replay", "--config", "x", "--pipeline", "p", "--sink", "s", "--from-time", "yesterday"},
		{"dlq", "inspect", "--config", "x"},
		{"dlq", "purge"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), args, &stdout, &stderr); code != 2 || stderr.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, stderr.String())
		}
	}
}
