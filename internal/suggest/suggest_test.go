package suggest

import "testing"

func TestClosest(t *testing.T) {
	for _, tc := range []struct {
		word       string
		candidates []string
		want       string
	}{
		{"batch_sise", []string{"batch", "max_batch", "batch_size"}, "batch_size"},
		{"toipc", []string{"topic", "topics"}, "topic"}, // transposition is one edit
		{"TOPIC", []string{"topic"}, "topic"},
		{"xyz", []string{"topic"}, ""},
		{"", []string{"a"}, "a"},
	} {
		if got := Closest(tc.word, tc.candidates); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
	if Distance("kitten", "sitting") != 3 || Distance("ab", "ba") != 1 {
		t.Fatal("Distance")
	}
}
