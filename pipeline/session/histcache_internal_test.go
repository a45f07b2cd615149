package session

import (
	"fmt"
	"strings"
	"testing"
)

// The cache holds at most its count of windows and histCacheBytes of
// text, dropping the least recently used first; a window too large for a
// quarter of it is not kept.
func TestHistCacheBounds(t *testing.T) {
	big := strings.Repeat("x", 64<<10) // a window of this is 64 KiB
	window := func(session string, content string) *histWindow {
		return &histWindow{session: session, max: 20, ids: []string{"1-0"}, turns: []Turn{{Role: "tool", Content: content}}}
	}
	for _, tc := range []struct {
		name                 string
		limit, n             int
		content              string
		wantKept             int
		wantNewest, wantGone string
	}{
		{"by count", 3, 10, "short", 3, "s9", "s6"},
		{"by bytes", 10000, 1000, big, histCacheBytes / (64<<10 + 100), "s999", "s0"},
		{"too large for the cache", 10, 1, strings.Repeat(big, histCacheBytes/4/len(big)+1), 0, "", "s0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newHistCache(tc.limit)
			for i := range tc.n {
				c.put(nil, window(fmt.Sprintf("s%d", i), tc.content))
			}
			if got := c.lru.Len(); got != tc.wantKept {
				t.Fatalf("%d windows kept, want %d", got, tc.wantKept)
			}
			if c.bytes > histCacheBytes {
				t.Fatalf("%d bytes kept, more than %d", c.bytes, histCacheBytes)
			}
			if tc.wantNewest != "" && c.get(tc.wantNewest, 20) == nil {
				t.Fatalf("the newest window %s was dropped", tc.wantNewest)
			}
			if c.get(tc.wantGone, 20) != nil {
				t.Fatalf("window %s kept, want it dropped first", tc.wantGone)
			}
		})
	}
}

// Windows share an arena, each new one written past the one it grew from.
// Two merges from one window (two starts of a session racing) and a merge
// from an older window must each get the window they asked for, and no
// merge may change a window handed out before it.
func TestHistWindowMergesShareNoEntries(t *testing.T) {
	const max = 4
	entries := func(from, n int) []any { // XREVRANGE's order: newest first
		var es []any
		for i := from + n - 1; i >= from; i-- {
			es = append(es, []any{fmt.Sprintf("%d-0", i), []any{"r", "user", "c", fmt.Sprintf("m%d", i), "n", fmt.Sprint(i)}})
		}
		return es
	}
	contents := func(w *histWindow) string {
		var cs []string
		for i, tn := range w.turns {
			cs = append(cs, w.ids[i]+"="+tn.Content)
		}
		return strings.Join(cs, " ")
	}
	merge := func(w *histWindow, from, n int) *histWindow {
		t.Helper()
		next, err := w.merge("s", max, "0", entries(from, n), false)
		if err != nil {
			t.Fatal(err)
		}
		return next
	}
	w1, err := (*histWindow)(nil).merge("s", max, "0", entries(1, 3), true)
	if err != nil {
		t.Fatal(err)
	}
	w2 := merge(w1, 4, 1)  // a new arena
	w3 := merge(w2, 5, 2)  // appended in w2's arena
	w3b := merge(w2, 5, 1) // from w2 again: w3 holds its place
	w4 := merge(w3, 7, 2)  // past the arena's end: a new one
	old := merge(w2, 6, 1) // an older window than the arena's latest
	for _, tc := range []struct {
		name string
		w    *histWindow
		want string
	}{
		{"the first read", w1, "1-0=m1 2-0=m2 3-0=m3"},
		{"one more", w2, "1-0=m1 2-0=m2 3-0=m3 4-0=m4"},
		{"grown in the arena", w3, "3-0=m3 4-0=m4 5-0=m5 6-0=m6"},
		{"the racing merge", w3b, "2-0=m2 3-0=m3 4-0=m4 5-0=m5"},
		{"past the arena", w4, "5-0=m5 6-0=m6 7-0=m7 8-0=m8"},
		{"from an older window", old, "2-0=m2 3-0=m3 4-0=m4 6-0=m6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := contents(tc.w); got != tc.want {
				t.Errorf("window %q, want %q", got, tc.want)
			}
			if cap(tc.w.ids) != len(tc.w.ids) || cap(tc.w.turns) != len(tc.w.turns) {
				t.Errorf("a window's slices reach past it: len %d cap %d", len(tc.w.ids), cap(tc.w.ids))
			}
		})
	}
	if w3.arena != w2.arena {
		t.Error("w3 did not grow in w2's arena: every merge copies the window")
	}
}
