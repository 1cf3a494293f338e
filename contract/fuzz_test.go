package contract_test

import (
	"errors"
	"testing"

	"github.com/switchyard-dev/switchyard/contract"
	"github.com/switchyard-dev/switchyard/contract/eventgen"
)

// The fuzz targets run their seed corpus (f.Add below plus testdata/fuzz/<Name>/) under
// plain `go test`; explore further with e.g.
//
//	go test ./contract -run '^$' -fuzz FuzzDecodeConfluent -fuzztime 60s

func FuzzDecodeConfluent(f *testing.F) { fuzzDecode(f, contract.Confluent) }

func FuzzDecodeRaw(f *testing.F) { fuzzDecode(f, contract.Raw) }

func FuzzDecodeJSON(f *testing.F) { fuzzDecode(f, contract.JSON) }

// fuzzDecode checks that any payload either fails to decode with a *DecodeError, or
// decodes into a message that validates to nil or a *ValidationError and re-encodes;
// nothing panics. One Decoder serves every input, as in the engine, so arena reuse is
// fuzzed too.
func fuzzDecode(f *testing.F, enc contract.Encoding) {
	reg := load(f)
	g, err := eventgen.New(reg, eventgen.Options{Seed: 1})
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range eventgen.Names() {
		for _, kind := range []eventgen.Kind{eventgen.Valid, eventgen.Invalid, eventgen.Undecodable} {
			for range 2 {
				ev, err := g.Make(name, kind, enc)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(name, ev.Payload)
			}
		}
	}
	f.Add(eventgen.BidPlaced, []byte{})
	f.Add(eventgen.OrderPaid, []byte{0})

	contracts := map[string]*contract.Contract{}
	decoders := map[string]*contract.Decoder{}
	for _, name := range eventgen.Names() {
		contracts[name] = lookup(f, reg, name)
		decoders[name] = contracts[name].NewDecoder(enc)
	}
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		c, ok := contracts[name]
		if !ok {
			name = eventgen.BidPlaced
			c = contracts[name]
		}
		dec := decoders[name]
		defer dec.Release()
		msg, err := dec.Decode(payload)
		if err != nil {
			var de *contract.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error %T is not a *DecodeError: %v", err, err)
			}
			switch de.Reason {
			case contract.ReasonFraming, contract.ReasonProtobuf, contract.ReasonJSON:
			default:
				t.Fatalf("unknown decode reason %q", de.Reason)
			}
			if msg != nil {
				t.Fatal("Decode returned a message along with an error")
			}
			return
		}
		if err := c.Validate(msg); err != nil {
			var ve *contract.ValidationError
			if !errors.As(err, &ve) || len(ve.Violations) == 0 {
				t.Fatalf("Validate error %T is not a *ValidationError with violations: %v", err, err)
			}
		}
		if _, err := contract.MarshalBinary(msg); err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
		_, _ = contract.MarshalJSON(msg) // may legitimately fail (e.g. out-of-range Timestamp); must not panic
	})
}
