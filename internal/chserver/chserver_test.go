package chserver

import (
	"encoding/xml"
	"slices"
	"testing"
)

func TestParseTSV(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want [][]string
	}{
		{"empty", "", nil},
		{"one cell", "18.16.1\n", [][]string{{"18.16.1"}}},
		{"rows", "1\tone\n2\ttwo\n", [][]string{{"1", "one"}, {"2", "two"}}},
		{"escapes", `a\tb` + "\t" + `c\nd\\e` + "\n", [][]string{{"a\tb", "c\nd\\e"}}},
		{"null", `\N` + "\tx\n", [][]string{{`\N`, "x"}}},
		{"empty cells", "\t\n", [][]string{{"", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseTSV([]byte(tt.in))
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Fatalf("ParseTSV(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestConfigXML_is_well_formed(t *testing.T) {
	var v struct {
		TCPPort int    `xml:"tcp_port"`
		Path    string `xml:"path"`
	}
	if err := xml.Unmarshal([]byte(ConfigXML("/tmp/a&b", 9000, 8123)), &v); err != nil {
		t.Fatalf("config.xml: %v", err)
	}
	if v.TCPPort != 9000 || v.Path != "/tmp/a&b/data/" {
		t.Fatalf("config.xml tcp_port=%d path=%q, want 9000 and /tmp/a&b/data/", v.TCPPort, v.Path)
	}
}
