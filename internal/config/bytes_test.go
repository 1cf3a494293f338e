package config

import "testing"

func TestParseBytes(t *testing.T) {
	cases := []struct {
		in   string
		want Bytes
		err  bool
	}{
		{in: "0", want: 0},
		{in: "1048576", want: 1 << 20},
		{in: "512KB", want: 512_000},
		{in: "4MiB", want: 4 << 20},
		{in: "4 MiB", want: 4 << 20},
		{in: "1GB", want: 1e9},
		{in: "2GiB", want: 2 << 30},
		{in: "1TiB", want: 1 << 40},
		{in: "100B", want: 100},
		{in: "4mib", err: true},
		{in: "1.5MiB", err: true},
		{in: "-1", err: true},
		{in: "+1", err: true},
		{in: "MiB", err: true},
		{in: "", err: true},
		{in: "4 MiB extra", err: true},
		{in: "9999999999TiB", err: true},
	}
	for _, tc := range cases {
		got, err := ParseBytes(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestBytes_String(t *testing.T) {
	for b, want := range map[Bytes]string{
		0: "0", 100: "100", 1000: "1KB", 1024: "1KiB", 4 << 20: "4MiB", 1024000: "1024KB",
		2 << 30: "2GiB", 5e9: "5GB", 1500: "1500", 1 << 40: "1TiB",
	} {
		if got := b.String(); got != want {
			t.Errorf("Bytes(%d).String() = %q, want %q", int64(b), got, want)
		}
		if back, err := ParseBytes(want); err != nil || back != b {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", want, back, err, int64(b))
		}
	}
}
