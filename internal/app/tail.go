package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/deadletter"
	"github.com/switchyard-dev/switchyard/internal/kafkaconn"
	"github.com/switchyard-dev/switchyard/pipelines"
	"github.com/switchyard-dev/switchyard/transforms"
)

const tailSummary = `Print the records of a topic, one JSON line each: topic, partition, offset, timestamp, key,
headers, contract, encoding and the decoded event (protojson). Fields that the contract
marks debug_redact or (switchyard.field).pii are shown as "[redacted]" (strings) or left out
and listed under "redacted" (other types), unless --raw-pii. A record that does not decode
has "error" instead of "event". On a dead-letter topic, or for any record with switchyard.*
headers, those are shown under "dead_letter" (class, reason, message, source, ...).

The contract of a record is --contract, else its switchyard-contract header, else its
dead letter's switchyard.contract, else what the configuration's pipeline reading the topic
(or writing it as its dead-letter topic) says. The encoding is that pipeline's, else
recognized from the first byte.

Without --follow, tail stops at the end the topic had when it started.
Exit status: 0 done, 1 Kafka failed, 2 bad flags or configuration.`

// cmdTail is `switchyard tail`.
func cmdTail(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	configPath := fs.String("config", "", "configuration `path`: its kafka section is used to connect, its contracts to decode")
	topic := fs.String("topic", "", "`topic` to read (required)")
	name := fs.String("contract", "", "full `name` of the records' message; default: from headers or the configuration")
	from := fs.String("from", "", "where to start in each partition: earliest, latest or an RFC 3339 `time` (the first record at or after it); default: earliest, or the last N records of each partition with -n")
	n := fs.Int("n", 0, "print at most `N` records (with --from), or the last N of each partition (without); 0: no limit")
	follow := fs.Bool("follow", false, "keep waiting for new records until interrupted")
	rawPII := fs.Bool("raw-pii", false, "show personal-data fields as they are")
	if code, ok := parseHelp(fs, args, stdout, stderr, "tail --config PATH --topic T [flags]", tailSummary); !ok {
		return code
	}
	if *topic == "" {
		fmt.Fprintln(stderr, "switchyard tail: --topic is required")
		return 2
	}
	var since time.Time
	switch *from {
	case "", "earliest", "latest":
	default:
		t, err := time.Parse(time.RFC3339Nano, *from)
		if err != nil {
			fmt.Fprintf(stderr, "switchyard tail: --from %q: want earliest, latest or an RFC 3339 time such as 2026-12-01T20:15:00Z\n", *from)
			return 2
		}
		since = t
	}
	c, ok := load(*configPath, stderr)
	if !ok {
		return 2
	}
	pr := &printer{c: c, topic: *topic, rawPII: *rawPII, out: json.NewEncoder(stdout)}
	if *name != "" {
		ct, err := c.Registry.Lookup(*name)
		if err != nil {
			fmt.Fprintf(stderr, "switchyard tail: %v\n", err)
			return 2
		}
		pr.fixed = ct
	}
	opts, err := kafkaconn.FranzOpts(c.Config.Kafka)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard tail: %v\n", err)
		return 2
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard tail: %v\n", err)
		return 1
	}
	defer cl.Close()
	starts, ends, err := tailOffsets(ctx, kadm.NewClient(cl), *topic, *from, since, *n)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard tail: %v\n", err)
		return 1
	}
	limit := 0
	if *from != "" {
		limit = *n
	}
	// pending are the partitions still to read up to their end, without --follow.
	pending := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	for p, s := range starts {
		parts[p] = kgo.NewOffset().At(s)
		if s < ends[p] {
			pending[p] = ends[p]
		}
	}
	if !*follow && len(pending) == 0 {
		return 0
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{*topic: parts})
	printed := 0
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetch %s[%d]: %w", t, p, err) })
		if ferr != nil {
			fmt.Fprintf(stderr, "switchyard tail: %v\n", ferr)
			return 1
		}
		for _, r := range fetches.Records() {
			end, open := pending[r.Partition]
			if !*follow && !open {
				continue
			}
			if err := pr.print(r); err != nil {
				fmt.Fprintf(stderr, "switchyard tail: %v\n", err)
				return 1
			}
			printed++
			if limit > 0 && printed >= limit {
				return 0
			}
			if open && r.Offset+1 >= end {
				delete(pending, r.Partition)
			}
		}
		if !*follow && len(pending) == 0 {
			return 0
		}
	}
}

// tailOffsets returns, per partition of topic, the offset to start at and the end offset now.
func tailOffsets(ctx context.Context, adm *kadm.Client, topic, from string, since time.Time, n int) (starts, ends map[int32]int64, err error) {
	listed := func(l kadm.ListedOffsets, err error) (map[int32]int64, error) {
		if err != nil {
			return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
		}
		if err := l.Error(); err != nil {
			return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
		}
		out := map[int32]int64{}
		l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
		if len(out) == 0 {
			return nil, fmt.Errorf("topic %s not found", topic)
		}
		return out, nil
	}
	if ends, err = listed(adm.ListEndOffsets(ctx, topic)); err != nil {
		return nil, nil, err
	}
	switch {
	case from == "latest":
		starts = ends
	case !since.IsZero():
		starts, err = listed(adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), topic))
	default:
		starts, err = listed(adm.ListStartOffsets(ctx, topic))
		if err == nil && from == "" && n > 0 {
			for p, s := range starts {
				starts[p] = max(s, ends[p]-int64(n))
			}
		}
	}
	return starts, ends, err
}

// printer renders records as tail's JSON lines.
type printer struct {
	c      *pipelines.Compiled
	topic  string
	fixed  *contract.Contract
	rawPII bool
	out    *json.Encoder
}

// tailLine is one line of tail's output.
type tailLine struct {
	Topic      string            `json:"topic"`
	Partition  int32             `json:"partition"`
	Offset     int64             `json:"offset"`
	Timestamp  string            `json:"timestamp"`
	Key        *string           `json:"key,omitempty"`
	KeyBase64  []byte            `json:"key_base64,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
	DeadLetter map[string]string `json:"dead_letter,omitempty"`
	Contract   string            `json:"contract,omitempty"`
	Encoding   string            `json:"encoding,omitempty"`
	SchemaID   uint32            `json:"schema_id,omitempty"`
	Event      json.RawMessage   `json:"event,omitempty"`
	Redacted   []string          `json:"redacted,omitempty"`
	Error      string            `json:"error,omitempty"`
}

func (pr *printer) print(r *kgo.Record) error {
	l := tailLine{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UTC().Format(time.RFC3339Nano)}
	if r.Key != nil {
		if utf8.Valid(r.Key) {
			k := string(r.Key)
			l.Key = &k
		} else {
			l.KeyBase64 = r.Key
		}
	}
	for _, h := range r.Headers {
		m := &l.Headers
		key := h.Key
		if deadletter.IsHeader(h.Key) {
			m, key = &l.DeadLetter, strings.TrimPrefix(h.Key, "switchyard.")
		}
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[key] = string(h.Value)
	}
	ct, enc, err := pr.contractOf(r, l.DeadLetter)
	if err != nil {
		l.Error = err.Error()
		return pr.out.Encode(&l)
	}
	if enc == 0 {
		enc = contract.DetectEncoding(r.Value)
	}
	l.Contract, l.Encoding = ct.Name(), enc.String()
	msg, id, err := decodeDynamic(ct, enc, r.Value)
	l.SchemaID = id
	if err != nil {
		l.Error = err.Error()
		return pr.out.Encode(&l)
	}
	if !pr.rawPII {
		l.Redacted = redactInPlace(msg.ProtoReflect(), "", nil)
	}
	if l.Event, err = (protojson.MarshalOptions{Resolver: pr.c.Registry.Types()}).Marshal(msg); err != nil {
		l.Event, l.Error = nil, err.Error()
	}
	return pr.out.Encode(&l)
}

// contractOf picks the contract and encoding (0: recognize it) of record r.
func (pr *printer) contractOf(r *kgo.Record, dl map[string]string) (*contract.Contract, contract.Encoding, error) {
	header := func(k string) string {
		for i := len(r.Headers) - 1; i >= 0; i-- {
			if r.Headers[i].Key == k {
				return string(r.Headers[i].Value)
			}
		}
		return ""
	}
	// The pipeline reading the topic, or, for a dead letter, the record's source topic.
	source := r.Topic
	for _, p := range pr.c.Pipelines {
		if p.Config.DeadLetter.Topic == r.Topic && dl["source.topic"] != "" {
			source = dl["source.topic"]
		}
	}
	reader := readerOf(pr.c, source)
	var enc contract.Encoding
	if reader != nil {
		enc = reader.Encoding
	}
	name := ""
	switch {
	case pr.fixed != nil:
		return pr.fixed, enc, nil
	case header(contract.HeaderContract) != "":
		name = header(contract.HeaderContract)
	case dl["contract"] != "":
		name = dl["contract"]
	case reader != nil:
		cc := reader.Config.Contract
		if cc.Header.Name != "" {
			name = cc.Header.Values[header(cc.Header.Name)]
		}
		if name == "" {
			name = cc.Topics[source]
		}
		if name == "" {
			name = cc.Message
		}
	}
	if name == "" {
		return nil, 0, errors.New("no contract for this record: pass --contract")
	}
	ct, err := pr.c.Registry.Lookup(name)
	return ct, enc, err
}

// decodeDynamic decodes payload as a mutable message of ct, checking a Confluent frame's
// message-index path; it returns the frame's schema id.
func decodeDynamic(ct *contract.Contract, enc contract.Encoding, payload []byte) (proto.Message, uint32, error) {
	msg := ct.New()
	types := ct.Registry().Types()
	switch enc {
	case contract.JSON:
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true, Resolver: types}).Unmarshal(payload, msg); err != nil {
			return nil, 0, &contract.DecodeError{Reason: contract.ReasonJSON, Err: errors.New(contract.RedactJSONError(err))}
		}
		return msg, 0, nil
	case contract.Confluent:
		id, idx, body, err := contract.SplitConfluent(payload)
		if err != nil {
			return nil, 0, err
		}
		if want := ct.MessageIndexes(); !slices.Equal(idx, want) {
			return nil, id, &contract.DecodeError{Reason: contract.ReasonFraming, Err: fmt.Errorf("frame names message index %v, %s is %v", idx, ct.Name(), want)}
		}
		if err := (proto.UnmarshalOptions{Resolver: types}).Unmarshal(body, msg); err != nil {
			return nil, id, &contract.DecodeError{Reason: contract.ReasonProtobuf, Err: fmt.Errorf("payload is not a %s", ct.Name())}
		}
		return msg, id, nil
	}
	if err := (proto.UnmarshalOptions{Resolver: types}).Unmarshal(payload, msg); err != nil {
		return nil, 0, &contract.DecodeError{Reason: contract.ReasonProtobuf, Err: fmt.Errorf("payload is not a %s", ct.Name())}
	}
	return msg, 0, nil
}

// redactInPlace replaces the value of every sensitive field (transforms.IsSensitive) of m,
// at any depth: strings become transforms.Redacted, other values are cleared and their paths
// returned.
func redactInPlace(m protoreflect.Message, prefix string, cleared []string) []string {
	// Collect first: m may not be changed while Range runs.
	type set struct {
		fd protoreflect.FieldDescriptor
		v  protoreflect.Value
	}
	var fields []set
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		fields = append(fields, set{fd, v})
		return true
	})
	for _, f := range fields {
		fd, v := f.fd, f.v
		path := prefix + fd.JSONName()
		if transforms.IsSensitive(fd) {
			switch {
			case fd.IsList() && fd.Kind() == protoreflect.StringKind:
				l := v.List()
				for i := range l.Len() {
					l.Set(i, protoreflect.ValueOfString(transforms.Redacted))
				}
			case fd.IsMap() && fd.MapValue().Kind() == protoreflect.StringKind:
				mp := v.Map()
				var keys []protoreflect.MapKey
				mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
					keys = append(keys, k)
					return true
				})
				for _, k := range keys {
					mp.Set(k, protoreflect.ValueOfString(transforms.Redacted))
				}
			case !fd.IsList() && !fd.IsMap() && fd.Kind() == protoreflect.StringKind:
				m.Set(fd, protoreflect.ValueOfString(transforms.Redacted))
			default:
				m.Clear(fd)
				cleared = append(cleared, path)
			}
			continue
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := range l.Len() {
				cleared = redactInPlace(l.Get(i).Message(), fmt.Sprintf("%s[%d].", path, i), cleared)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				cleared = redactInPlace(mv.Message(), path+"[*].", cleared)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			cleared = redactInPlace(v.Message(), path+".", cleared)
		}
	}
	return cleared
}
