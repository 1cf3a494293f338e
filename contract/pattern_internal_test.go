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
	example string // a string the pattern matches
}{
	{`^[A-Z]{3}$`, true, "USD"}, {`^[0-9]{4}$`, true, "1234"}, {`^[A-Z]{2}$`, true, "US"},
	{`^[a-z0-9_]+$`, true, "a_9"}, {`^SKU-[0-9]{1,8}$`, true, "SKU-42"}, {`^[a-z]+-[0-9]+$`, true, "ab-12"},
	{`^$`, false, ""}, {`^a?$`, true, "a"}, {`^[a-f0-9]{8}-?[0-9]$`, true, "0f8fad5b-1"},
	{`^[a-z]+-?[0-9]$`, false, "ab1"},  // a variable run followed by an optional one
	{`^[a-z]+[a-z0-9]$`, false, "abc"}, // overlapping classes: the longest take is not the only match
	{`^[a-z]*$`, true, ""}, {`^(?i)[a-z]{2}$`, false, "aZ"}, {`^[a-zA-Z]{2}$`, true, "aZ"},
	{`^(?i)ab$`, false, "AB"}, {`^[^A-Z]{3}$`, false, "abc"}, {`^[é]{2}$`, false, "éé"},
	{`[A-Z]{3}`, false, "xUSDx"}, {`^[A-Z]{3}`, false, "USDx"}, {`^(ab|cd)$`, false, "cd"},
	{`^.{3}$`, false, "a b"}, {`^\d{3}$`, true, "123"}, {`^\w+$`, true, "a_Z9"}, {`^[A-Z]{2,}$`, true, "USDX"},
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
		if !re.MatchString(tc.example) || !match(tc.example) {
			t.Errorf("%s on its example %q: %v, regexp says %v", tc.pattern, tc.example, match(tc.example), re.MatchString(tc.example))
		}
		for range 3000 {
			b := make([]byte, rng.IntN(10))
			for i := range b {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
			s := string(b)
			if got, want := match(s), re.MatchString(s); got != want {
				t.Fatalf("%s on %q: %v, regexp says %v", tc.pattern, s, got, want)
			}
		}
		for _, s := range []string{"", "USD", "usd", "US", "USDX", "1234", "SKU-1", "SKU-123456789", "ab-12", "ab-", "a", "aé", "US\n"} {
			if got, want := match(s), re.MatchString(s); got != want {
				t.Fatalf("%s on %q: %v, regexp says %v", tc.pattern, s, got, want)
			}
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
		f.Add(tc.pattern, tc.example)
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
