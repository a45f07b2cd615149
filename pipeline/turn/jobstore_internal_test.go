package turn

import (
	"slices"
	"testing"
)

// A takeover queues a replica's jobs in the order they were made: ids
// compare by their ms, then their counter, as numbers (not as text, where
// "10" sorts before "9").
func TestJobIDsOrderAsMade(t *testing.T) {
	for _, tc := range []struct {
		name string
		ids  []string
		want []string
	}{
		{"by ms", []string{"1700000000010-1", "1700000000009-2"}, []string{"1700000000009-2", "1700000000010-1"}},
		{"by counter in one ms", []string{"5-10", "5-9", "5-1"}, []string{"5-1", "5-9", "5-10"}},
		{"ms digits differ", []string{"100-1", "99-1"}, []string{"99-1", "100-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := slices.Clone(tc.ids)
			slices.SortFunc(got, byJobID)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("order %v, want %v", got, tc.want)
			}
		})
	}
}
