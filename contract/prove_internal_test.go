package contract

import (
	"regexp"
	"strings"
	"testing"
)

// protovalidate v1.4.0's format patterns (native_string.go and internal/rules), which the
// hand-written checks must match exactly.
var (
	uuidPattern  = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	tuuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
	emailPattern = regexp.MustCompile("^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")
)

// FuzzFormatChecks holds isUUID, isTrimmedUUID and isEmail to protovalidate's patterns.
//
//	go test ./contract -run '^$' -fuzz FuzzFormatChecks -fuzztime 60s
func FuzzFormatChecks(f *testing.F) {
	for _, s := range []string{
		"", "0f8fad5b-d9cb-469f-a165-70867728950e", "0F8FAD5B-D9CB-469F-A165-70867728950E",
		"0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5bd9cb469fa16570867728950e", "0f8fad5b-d9cb-469f-a165_70867728950e",
		"0f8fad5b-d9cb-469f-a165-70867728950e\n", "\xff0f8fad5b-d9cb-469f-a165-7086772895",
		// each byte just outside a hex range, at a word's edges and where the dashes go
		"@f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5`-d9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950G",
		"0f8fad5b-d9cg-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-7086772895/e", "0f8fad5b-d9cb-469f-a:65-70867728950e",
		"0f8fad5b0d9cb-469f-a165-70867728950e", "0f8fad5b-d9cb0469f-a165-70867728950e", "0f8fad5b-d9cb-469f0a165-70867728950e",
		"0f8fad5b-d9cb-469f-a1650708677289500", "\x10f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5bd9cb469fa16570867728950\x06",
		"0f8fad5bd9cb469fa16570867728950\xe9", "0F8FAD5BD9CB469FA16570867728950E",
		"a@b", "a@b.c", "a.b+c@d-e.f", "@b", "a@", "a@-b", "a@b-", "a@b..c", "a@b.", "a b@c", "ä@b", "a@@b", "a@b@c",
		"x@" + strings.Repeat("a", 63), "x@" + strings.Repeat("a", 64), "x@a-b.c-d", "x@1.2", "a@b\n", "a@b\x00",
		"!#$%&'*+/=?^_`{|}~-.@a", "a@b.c.d.e.f", "a@" + strings.Repeat("a-", 31) + "b", "a@" + strings.Repeat("a-", 32) + "b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isUUID(s), uuidPattern.MatchString(s); got != want {
			t.Errorf("isUUID(%q) = %v, pattern says %v", s, got, want)
		}
		if got, want := isTrimmedUUID(s), tuuidPattern.MatchString(s); got != want {
			t.Errorf("isTrimmedUUID(%q) = %v, pattern says %v", s, got, want)
		}
		if got, want := isEmail(s), emailPattern.MatchString(s); got != want {
			t.Errorf("isEmail(%q) = %v, pattern says %v", s, got, want)
		}
	})
}
