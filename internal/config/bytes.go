package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteUnits are the size suffixes Bytes accepts, longest first so that "KiB" is tried before "B".
var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseBytes parses a size: a non-negative integer number of bytes, optionally followed by a
// unit (B, KB, MB, GB, TB in powers of 1000; KiB, MiB, GiB, TiB in powers of 1024), with or
// without a space between them. Units are case-sensitive.
func ParseBytes(s string) (Bytes, error) {
	s = strings.TrimSpace(s)
	num, mult := s, int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	if num == "" || num[0] == '+' || num[0] == '-' {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return Bytes(n * mult), nil
}

// String formats b with the unit that writes it exactly in the fewest characters (binary
// units win ties), or as a plain integer when no unit divides it.
func (b Bytes) String() string {
	best := strconv.FormatInt(int64(b), 10)
	if b <= 0 {
		return best
	}
	for _, u := range byteUnits {
		if u.mult == 1 || int64(b)%u.mult != 0 {
			continue
		}
		if s := strconv.FormatInt(int64(b)/u.mult, 10) + u.suffix; len(s) < len(best) ||
			(len(s) == len(best) && strings.HasSuffix(s, "iB") && !strings.HasSuffix(best, "iB")) {
			best = s
		}
	}
	return best
}

// MarshalText implements encoding.TextMarshaler with String's format.
func (b Bytes) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseBytes.
func (b *Bytes) UnmarshalText(text []byte) error {
	v, err := ParseBytes(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
