package transforms_test

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/transforms"
)

// TestPII_hash_field_never_appears_raw runs generated auctions.v1.BidPlaced events, whose
// bidder_email is marked pii = HASH, through routes of every shape and checks that the raw
// email is nowhere a sink, the dead-letter headers or the logs could see it: not in any value
// of the output message, not in its protobuf, JSON or text encodings, not in the text of
// transform errors, and not in what Redact renders for logs.
func TestPII_hash_field_never_appears_raw(t *testing.T) {
	routes := map[string]string{
		"no transforms": ``,
		"flatten and drop": `transforms:
  - flatten: true
  - drop: [amount_nanos]`,
		"select the field": `transforms:
  - select: [event_id, bidder_email]`,
		"rename and cast": `transforms:
  - rename: {bidder_email: who}
  - cast: {who: bytes}`,
		"set testing presence": `transforms:
  - set: {has_email: "has(event.bidder_email)"}`,
		"filter reading it": `transforms:
  - filter: "event.bidder_email.endsWith('@example.com')"
  - select: [event_id, bidder_email]`,
	}
	// Routes that fail on every event, with CEL errors whose raw text quotes the email.
	failing := map[string]string{
		"bad conversion": `transforms:
  - filter: "int(event.bidder_email) > 0"`,
		"missing key": `transforms:
  - filter: "{'x': true}[event.bidder_email]"`,
		"bad regexp": `transforms:
  - filter: "'x'.matches(event.bidder_email + '(')"`,
	}
	c := lookup(t, eventgen.BidPlaced)
	gen, err := eventgen.New(registry(t), eventgen.Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	emailField := c.Descriptor().Fields().ByName("bidder_email")
	check := func(t *testing.T, where, text, email string) {
		t.Helper()
		local, _, _ := strings.Cut(email, "@")
		if strings.Contains(text, email) || strings.Contains(text, local) {
			t.Fatalf("%s shows the raw email %q:\n%s", where, email, text)
		}
	}
	const events = 200
	for name, route := range routes {
		t.Run(name, func(t *testing.T) {
			chain, errs := compile(t, configWith(t, eventgen.BidPlaced, route))
			if errs != nil {
				t.Fatal(errs)
			}
			if chain.Identity() {
				t.Fatal("a route over a contract with pii fields must not be the identity")
			}
			hashes := 0
			for range events {
				ev, err := gen.Make(eventgen.BidPlaced, eventgen.Valid, contract.Raw)
				if err != nil {
					t.Fatal(err)
				}
				email := ev.Message.Get(emailField).String()
				in, err := c.NewDecoder(contract.Raw).Decode(ev.Payload)
				if err != nil {
					t.Fatal(err)
				}
				out, err := chain.Apply(in, &event.Record{Topic: "auctions.bids"}, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range out {
					walkValues(m, func(s string) {
						check(t, "an output value", s, email)
						if s == transforms.Hash(testKey, email) {
							hashes++
						}
					})
					b, err := proto.Marshal(m.Interface())
					if err != nil {
						t.Fatal(err)
					}
					check(t, "the protobuf encoding", string(b), email)
					js, err := protojson.Marshal(m.Interface())
					if err != nil {
						t.Fatal(err)
					}
					check(t, "the JSON encoding", string(js), email)
					check(t, "the text encoding", prototext.Format(m.Interface()), email)
				}
				line := transforms.Redact(in)
				check(t, "Redact of the input", line, email)
				if !strings.Contains(line, "bidder_email:"+transforms.Redacted) {
					t.Fatalf("Redact does not mark the redacted field: %s", line)
				}
				log.Info("routed event", "event", line)
			}
			if hashes != events { // every route keeps the field, so its hash is there instead
				t.Errorf("found the keyed hash of the email %d times, want %d", hashes, events)
			}
		})
	}
	for name, route := range failing {
		t.Run(name, func(t *testing.T) {
			chain, errs := compile(t, configWith(t, eventgen.BidPlaced, route))
			if errs != nil {
				t.Fatal(errs)
			}
			for range 20 {
				ev, err := gen.Make(eventgen.BidPlaced, eventgen.Valid, contract.Raw)
				if err != nil {
					t.Fatal(err)
				}
				email := ev.Message.Get(emailField).String()
				in, err := c.NewDecoder(contract.Raw).Decode(ev.Payload)
				if err != nil {
					t.Fatal(err)
				}
				_, err = chain.Apply(in, nil, nil)
				var te *transforms.Error
				if !errors.As(err, &te) {
					t.Fatalf("Apply error = %v, want a *transforms.Error", err)
				}
				check(t, "the error (a dead-letter header)", err.Error(), email)
				log.Warn("dead-lettered event", "reason", "transform", "err", err)
			}
		})
	}
	if logs.Len() == 0 {
		t.Fatal("nothing was logged")
	}
}

// walkValues calls fn with every string value in m, and bytes values as strings.
func walkValues(m protoreflect.Message, fn func(string)) {
	var value func(fd protoreflect.FieldDescriptor, v protoreflect.Value)
	value = func(fd protoreflect.FieldDescriptor, v protoreflect.Value) {
		switch fd.Kind() {
		case protoreflect.StringKind:
			fn(v.String())
		case protoreflect.BytesKind:
			fn(string(v.Bytes()))
		case protoreflect.MessageKind, protoreflect.GroupKind:
			walkValues(v.Message(), fn)
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			for i := range v.List().Len() {
				value(fd, v.List().Get(i))
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				fn(k.String())
				value(fd.MapValue(), mv)
				return true
			})
		default:
			value(fd, v)
		}
		return true
	})
}

// TestSafeCELError keeps the kind of failure and drops the data CEL quotes.
func TestSafeCELError(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"no such key: alice@example.com", "no such key"},
		{"division by zero", "division by zero"},
		{`type conversion error from 'string' to 'int'`, "type conversion error"},
		{`strconv.ParseInt: parsing "alice": invalid syntax`, "type conversion error"},
		{"error parsing regexp: missing closing ): `alice(`", "evaluation failed"},
		{"index out of range: 7", "index out of range"},
		{"something new: alice", "evaluation failed"},
	} {
		if got := transforms.SafeCELError(errors.New(tc.in)); got != tc.want {
			t.Errorf("SafeCELError(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestRedact renders nested, repeated and mapped sensitive fields as [redacted].
func TestRedact(t *testing.T) {
	c := lookup(t, "test.v1.Profile")
	_, in := decodeJSON(t, c, []byte(`{"userId":"u1","email":"alice@example.com","nickname":"ally","address":{"street":"Main St 1","city":"Berlin"},"contacts":[{"name":"Bob","email":"bob@example.com"}],"byRole":{"admin":{"name":"Carol","email":"carol@example.com"}},"createdAt":"2025-06-01T00:00:00Z"}`))
	got := transforms.Redact(in)
	want := `user_id:"u1" email:[redacted] address:{street:[redacted] city:"Berlin"} contacts:[{name:"Bob" email:[redacted]}] nickname:[redacted] created_at:{seconds:1748736000} by_role:{"admin":{name:"Carol" email:[redacted]}}`
	if got != want {
		t.Errorf("Redact =\n %s\nwant\n %s", got, want)
	}
}

// TestHashKey reads the key inline or from a file, and the configuration never echoes it.
func TestHashKey(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/key"
	if err := os.WriteFile(file, []byte("from-file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := dir + "/empty"
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, pii, want, err string
	}{
		{name: "inline", pii: `{hash_key: inline-secret}`, want: "inline-secret"},
		{name: "file without its newline", pii: `{hash_key_file: ` + file + `}`, want: "from-file-secret"},
		{name: "none", pii: `{}`, want: ""},
		{name: "empty file", pii: `{hash_key_file: ` + empty + `}`, err: "read pii.hash_key_file: the file is empty"},
		{name: "missing file", pii: `{hash_key_file: ` + dir + `/nope}`, err: "read pii.hash_key_file: open " + dir + "/nope: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("c.yaml", []byte("kafka: {brokers: [\"localhost:9092\"]}\npii: "+tc.pii+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			key, err := transforms.HashKey(cfg.PII)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("HashKey error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || string(key) != tc.want {
				t.Fatalf("HashKey = %q, %v; want %q", key, err, tc.want)
			}
			out, err := cfg.Redacted()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(out), "inline-secret") {
				t.Errorf("the echoed configuration shows the hash key:\n%s", out)
			}
		})
	}
	if _, err := config.Parse("c.yaml", []byte("kafka: {brokers: [\"localhost:9092\"]}\npii: {hash_key: a, hash_key_file: "+file+"}\n")); err == nil {
		t.Error("hash_key and hash_key_file together load")
	}
}
