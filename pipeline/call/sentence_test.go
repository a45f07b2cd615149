package call

import (
	"reflect"
	"strings"
	"testing"
)

func TestSentences(t *testing.T) {
	tests := []struct {
		name   string
		pieces []string
		want   []string
	}{
		{"two sentences streamed in words", strings.SplitAfter("It is three o'clock. Anything else I can do? ", " "),
			[]string{"It is three o'clock.", "Anything else I can do?"}},
		{"numbers and times do not split; the last waits for more", []string{"Pi is 3.", "14 and it is 3:04 now. Done here."},
			[]string{"Pi is 3.14 and it is 3:04 now."}},
		{"abbreviations do not split", []string{"Ask Dr. Smith, e.g. today. Then we rest. "},
			[]string{"Ask Dr. Smith, e.g. today.", "Then we rest."}},
		{"short sentences wait for the next", []string{"Yes. It is. Certainly so. "},
			[]string{"Yes. It is. Certainly so."}},
		{"the end without punctuation comes from Flush", []string{"No full stop at the end"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s Sentences
			var got []string
			for _, p := range tc.pieces {
				got = append(got, s.Add(p)...)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	var s Sentences
	s.Add("Hello there. And the rest")
	if got := s.Flush(); got != "And the rest" {
		t.Fatalf("Flush: %q", got)
	}
}
