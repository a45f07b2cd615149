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
