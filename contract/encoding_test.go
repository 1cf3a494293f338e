package contract_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/contract"
)

func TestFrameConfluent_and_SplitConfluent(t *testing.T) {
	body := []byte{0x0a, 0x01, 'x'}
	for _, tc := range []struct {
		name     string
		id       uint32
		indexes  []int
		header   []byte
		wantIdxs []int
	}{
		{"first message", 1, []int{0}, []byte{0, 0, 0, 0, 1, 0}, []int{0}},
		{"nil indexes mean first message", 1, nil, []byte{0, 0, 0, 0, 1, 0}, []int{0}},
		{"second message", 258, []int{1}, []byte{0, 0, 0, 1, 2, 2, 2}, []int{1}},
		{"nested", 7, []int{0, 2, 2}, []byte{0, 0, 0, 0, 7, 6, 0, 4, 4}, []int{0, 2, 2}},
		{"max schema id", 0xffffffff, []int{0}, []byte{0, 0xff, 0xff, 0xff, 0xff, 0}, []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("prefix")
			got := contract.FrameConfluent(dst, tc.id, tc.indexes, body)
			want := append(append([]byte("prefix"), tc.header...), body...)
			if !bytes.Equal(got, want) {
				t.Fatalf("FrameConfluent = % x, want % x", got, want)
			}
			id, idxs, gotBody, err := contract.SplitConfluent(got[len("prefix"):])
			if err != nil {
				t.Fatal(err)
			}
			if id != tc.id || !slices.Equal(idxs, tc.wantIdxs) || !bytes.Equal(gotBody, body) {
				t.Fatalf("SplitConfluent = %d %v % x, want %d %v % x", id, idxs, gotBody, tc.id, tc.wantIdxs, body)
			}
		})
	}
}

func TestSplitConfluent_rejects_bad_frames(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"empty", nil, "decode framing: payload shorter than the 6-byte confluent header"},
		{"header only id", []byte{0, 0, 0, 0, 1}, "decode framing: payload shorter than the 6-byte confluent header"},
		{"json payload", []byte(`{"a":1}`), "decode framing: magic byte is 0x7b, want 0x00"},
		{"negative count", []byte{0, 0, 0, 0, 1, 0x01}, "decode framing: message-index count -1 out of range [0, 64]"},
		{"huge count", []byte{0, 0, 0, 0, 1, 0x82, 0x01}, "decode framing: message-index count 65 out of range [0, 64]"},
		{"missing index", []byte{0, 0, 0, 0, 1, 0x04, 0x02}, "decode framing: malformed message index"},
		{"negative index", []byte{0, 0, 0, 0, 1, 0x02, 0x01}, "decode framing: message index -1 out of range"},
		{"overlong varint", []byte{0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "decode framing: malformed message-index count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := contract.SplitConfluent(tc.payload)
			var de *contract.DecodeError
			if !errors.As(err, &de) || de.Reason != contract.ReasonFraming {
				t.Fatalf("got %v, want a framing DecodeError", err)
			}
			if err.Error() != tc.want {
				t.Fatalf("got %q, want %q", err, tc.want)
			}
		})
	}
}

func TestParseEncoding(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want contract.Encoding
		err  string
	}{
		{"confluent", contract.Confluent, ""},
		{"Raw", contract.Raw, ""},
		{"JSON", contract.JSON, ""},
		{"protobuf", 0, `unknown encoding "protobuf" (want confluent, raw or json)`},
		{"", 0, `unknown encoding "" (want confluent, raw or json)`},
	} {
		got, err := contract.ParseEncoding(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseEncoding(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseEncoding(%q) = %v, %v", tc.in, got, err)
		}
		var viaText contract.Encoding
		if err := viaText.UnmarshalText([]byte(tc.in)); err != nil || viaText != tc.want {
			t.Errorf("UnmarshalText(%q) = %v, %v", tc.in, viaText, err)
		}
		text, err := got.MarshalText()
		if err != nil || string(text) != strings.ToLower(tc.in) || got.String() != string(text) {
			t.Errorf("MarshalText(%v) = %q, %v", got, text, err)
		}
	}
	if _, err := contract.Encoding(0).MarshalText(); err == nil {
		t.Error("MarshalText accepted the zero Encoding")
	}
}
