package session

import (
	"slices"
	"strings"
	"testing"
)

type namedSink string

func (namedSink) Deliver(string, []byte) {}
func (namedSink) Resync()                {}

func TestSinkSet(t *testing.T) {
	a, b, c := namedSink("a"), namedSink("b"), namedSink("c")
	for _, tc := range []struct {
		name string
		do   func(s *sinkSet) // then the set must hold want
		want []Sink
	}{
		{"one", func(s *sinkSet) { s.add(a) }, []Sink{a}},
		{"one twice", func(s *sinkSet) { s.add(a); s.add(a) }, []Sink{a}},
		{"three", func(s *sinkSet) { s.add(a); s.add(b); s.add(c) }, []Sink{a, b, c}},
		{"the first removed", func(s *sinkSet) { s.add(a); s.add(b); s.remove(a) }, []Sink{b}},
		{"the second removed", func(s *sinkSet) { s.add(a); s.add(b); s.remove(b) }, []Sink{a}},
		{"back after the first left", func(s *sinkSet) { s.add(a); s.add(b); s.remove(a); s.add(a) }, []Sink{a, b}},
		{"all removed", func(s *sinkSet) { s.add(a); s.add(b); s.remove(b); s.remove(a) }, nil},
		{"again after all left", func(s *sinkSet) { s.add(a); s.remove(a); s.add(c) }, []Sink{c}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s sinkSet
			tc.do(&s)
			got := s.appendTo(nil)
			sortSinks(got)
			if !slices.Equal(got, tc.want) || s.len() != len(tc.want) {
				t.Errorf("holds %v (len %d), want %v", got, s.len(), tc.want)
			}
			if len(tc.want) == 0 && (s.one != nil || s.more != nil) {
				t.Error("an empty set keeps memory")
			}
		})
	}
	t.Run("remove reports", func(t *testing.T) {
		var s sinkSet
		s.add(a)
		if s.remove(b) || !s.remove(a) || s.remove(a) {
			t.Error("remove reported wrongly")
		}
	})
}

func sortSinks(s []Sink) {
	slices.SortFunc(s, func(x, y Sink) int {
		return strings.Compare(string(x.(namedSink)), string(y.(namedSink)))
	})
}
