package contract

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// patternCases are patterns the byte-class scan takes and ones it must leave to regexp
// (nil runs): case folding, non-ASCII classes, unanchored or alternated patterns, and
// variable runs whose longest take is not the only match.
var patternCases = []struct {
	pattern string
	scanned bool
}{
	{`^[A-Z]{3}$`, true}, {`^[0-9]{4}$`, true}, {`^[A-Z]{2}$`, true}, {`^[a-z0-9_]+$`, true},
	{`^SKU-[0-9]{1,8}$`, true}, {`^[a-z]+-[0-9]+$`, true}, {`^$`, false}, {`^a?$`, true},
	{`^[a-f0-9]{8}-?[0-9]$`, true}, {`^[a-z]+-?[0-9]$`, false}, // a variable run followed by an optional one
	{`^[a-z]+[a-z0-9]$`, false}, // overlapping classes: the longest take is not the only match
	{`^[a-z]*$`, true}, {`^(?i)[a-z]{2}$`, false}, {`^[a-zA-Z]{2}$`, true}, {`^(?i)ab$`, false}, {`^[^A-Z]{3}$`, false},
	{`^[é]{2}$`, false}, {`[A-Z]{3}`, false}, {`^[A-Z]{3}`, false}, {`^(ab|cd)$`, false},
	{`^.{3}$`, false}, {`^\d{3}$`, true}, {`^\w+$`, true}, {`^[A-Z]{2,}$`, true},
}

func TestCompilePattern_scans_simple_patterns_and_agrees_with_regexp(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("aAzZ09_-SKUé\n\xff ")
	for _, tc := range patternCases {
		if got := parseClassRuns(tc.pattern) != nil; got != tc.scanned {
			t.Errorf("%s: scanned %v, want %v", tc.pattern, got, tc.scanned)
		}
		match, ok := compilePattern(tc.pattern)
		if !ok {
			t.Fatalf("%s does not compile", tc.pattern)
		}
		re := regexp.MustCompile(tc.pattern)
		matched := 0
		for range 3000 {
			b := make([]byte, rng.IntN(10))
			for i := range b {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
			s := string(b)
			if got, want := match(s), re.MatchString(s); got != want {
				t.Fatalf("%s on %q: %v, regexp says %v", tc.pattern, s, got, want)
			}
			if re.MatchString(s) {
				matched++
			}
		}
		for _, s := range []string{"", "USD", "usd", "US", "USDX", "1234", "SKU-1", "SKU-123456789", "ab-12", "ab-", "a", "aé", "US\n"} {
			if got, want := match(s), re.MatchString(s); got != want {
				t.Fatalf("%s on %q: %v, regexp says %v", tc.pattern, s, got, want)
			}
		}
		if tc.scanned && matched == 0 && tc.pattern != `^[A-Z]{3}$` {
			t.Logf("%s: no random string matched", tc.pattern)
		}
	}
	if _, ok := compilePattern(`^[A-Z`); ok {
		t.Error("an invalid pattern compiled")
	}
}

// FuzzPatterns holds the byte-class scan to regexp on random patterns and strings.
//
//	go test ./contract -run '^$' -fuzz FuzzPatterns -fuzztime 60s
func FuzzPatterns(f *testing.F) {
	for _, tc := range patternCases {
		f.Add(tc.pattern, "USD")
		f.Add(tc.pattern, "SKU-42")
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return
		}
		runs := parseClassRuns(pattern)
		if runs == nil {
			return
		}
		if got, want := runs.match(s), re.MatchString(s); got != want {
			t.Errorf("%s on %q: %v, regexp says %v", pattern, s, got, want)
		}
	})
}

func BenchmarkPattern(b *testing.B) {
	match, _ := compilePattern(`^[A-Z]{3}$`)
	re := regexp.MustCompile(`^[A-Z]{3}$`)
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			if !match("USD") {
				b.Fatal("no match")
			}
		}
	})
	b.Run("regexp", func(b *testing.B) {
		for b.Loop() {
			if !re.MatchString("USD") {
				b.Fatal("no match")
			}
		}
	})
}
