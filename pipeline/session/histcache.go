package session

import (
	"container/list"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
)

var errBadEntry = errors.New("session: malformed history entry from the start script")

// histCache keeps, for the sessions this replica started turns of lately,
// the window of latest history entries a turn's start last read. The next
// start then asks Redis only for the entries stored since (usually the
// last turn's two) instead of the whole window: reading and parsing 20
// entries a turn was a third of what a turn allocated.
//
// A window is valid while the session's history has only grown at its
// end. An edit or a deletion (EditHistory) bumps the session's edit count
// ("he" in its meta hash); the start script compares it with the cached
// one, atomically with its read, and sends the whole window when they
// differ. Goroutine-safe.
type histCache struct {
	mu    sync.Mutex
	limit int // windows kept; the least recently used goes first
	bytes int // the windows' size (size), at most histCacheBytes
	m     map[string]*list.Element
	lru   list.List // of *histWindow, most recent first
}

// histCacheBytes bounds the text the cache holds, whatever the windows
// hold (a tool's output may be 16 KiB, and a window has 20 entries).
const histCacheBytes = 32 << 20

// histWindow is a session's latest entries, oldest first. Its slices are
// never changed once stored: an update makes new ones, so that a reader
// may keep them without a copy. The new ones usually share the old ones'
// arena, written past their end (see merge).
type histWindow struct {
	session string
	max     int      // the window's size asked for
	edits   string   // the session's edit count when read
	ids     []string // stream ids, with turns
	turns   []Turn
	size    int // about the bytes it holds (its arena may hold as much again)
	arena   *histArena
	end     int // where ids and turns end in arena
}

// histArena holds a session's latest entries for its windows: each window
// is a run of it ending at its end, and the next window appends after it
// while there is room, so most turns copy no window. used is how far it
// is written: only the merge that moves it from a window's end may write
// there, so two starts that merge from one window (a race the cache then
// settles) never write the same places. No window ever sees past its
// end, its slices' capacity.
type histArena struct {
	ids   []string
	turns []Turn
	used  atomic.Int64
}

// arenaWindows: an arena holds this many windows' entries, so a window's
// entries are copied once every (arenaWindows-1)*max new entries.
const arenaWindows = 2

// sized sets w's size and returns w.
func (w *histWindow) sized() *histWindow {
	w.size = 0
	for i, t := range w.turns {
		w.size += 96 + len(w.ids[i]) + len(t.Role) + len(t.Content) + len(t.ToolCalls) + len(t.CallID)
	}
	return w
}

func newHistCache(limit int) *histCache {
	return &histCache{limit: limit, m: make(map[string]*list.Element)}
}

// get returns the session's window for max entries, or nil.
func (c *histCache) get(session string, max int) *histWindow {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[session]
	if !ok {
		return nil
	}
	w := el.Value.(*histWindow)
	if w.max != max {
		return nil
	}
	c.lru.MoveToFront(el)
	return w
}

// put stores w as the session's window if the cached one is still old, the
// one the read was based on; a start that raced with another for the
// same session drops the window instead (the next start reads it whole).
func (c *histCache) put(old, w *histWindow) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w.sized()
	el, ok := c.m[w.session]
	switch {
	case ok && (el.Value.(*histWindow) != old || w.size > histCacheBytes/4):
		c.drop(el)
	case ok:
		c.bytes += w.size - el.Value.(*histWindow).size
		el.Value = w
		c.lru.MoveToFront(el)
	case old == nil && w.size <= histCacheBytes/4:
		c.m[w.session] = c.lru.PushFront(w)
		c.bytes += w.size
	}
	for c.lru.Len() > c.limit || c.bytes > histCacheBytes {
		c.drop(c.lru.Back())
	}
}

// drop forgets a window. c.mu held.
func (c *histCache) drop(el *list.Element) {
	w := el.Value.(*histWindow)
	c.lru.Remove(el)
	delete(c.m, w.session)
	c.bytes -= w.size
}

// args are the start script's arguments for the window: the last id it
// holds and its edit count, or empty strings when there is none.
func (w *histWindow) args() (lastID, edits string) {
	if w == nil || len(w.ids) == 0 {
		return "", ""
	}
	return w.ids[len(w.ids)-1], w.edits
}

// merge returns the window after the script's reply: entries (newest
// first, as XREVRANGE gives them), the whole window when full, else those
// stored after w's last one.
func (w *histWindow) merge(session string, max int, edits string, entries []any, full bool) (*histWindow, error) {
	ids, turns, err := parseEntries(entries)
	if err != nil {
		return nil, err
	}
	n := &histWindow{session: session, max: max, edits: edits}
	if full || w == nil || len(ids) >= max {
		n.ids, n.turns = ids, turns
		return n, nil
	}
	keep := min(len(w.ids), max-len(ids))
	a, at := w.arena, w.end
	if a == nil || at+len(ids) > len(a.ids) || !a.used.CompareAndSwap(int64(at), int64(at+len(ids))) {
		// A new arena, starting with what the window keeps of w.
		a = &histArena{ids: make([]string, arenaWindows*max), turns: make([]Turn, arenaWindows*max)}
		copy(a.ids, w.ids[len(w.ids)-keep:])
		copy(a.turns, w.turns[len(w.turns)-keep:])
		at = keep
		a.used.Store(int64(at + len(ids)))
	}
	copy(a.ids[at:], ids)
	copy(a.turns[at:], turns)
	end := at + len(ids)
	start := end - keep - len(ids)
	n.ids, n.turns = a.ids[start:end:end], a.turns[start:end:end]
	n.arena, n.end = a, end
	return n, nil
}

// parseEntries reads XREVRANGE's reply (newest first) as it comes out of
// a script, into ids and turns oldest first.
func parseEntries(entries []any) ([]string, []Turn, error) {
	ids := make([]string, len(entries))
	turns := make([]Turn, len(entries))
	for i, e := range entries {
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			return nil, nil, errBadEntry
		}
		id, _ := pair[0].(string)
		fields, _ := pair[1].([]any)
		j := len(entries) - 1 - i
		ids[j] = id
		turns[j] = turnOf(fields)
	}
	return ids, turns, nil
}

// turnOf reads a history entry's field, value pairs.
func turnOf(fields []any) Turn {
	var t Turn
	for k := 0; k+1 < len(fields); k += 2 {
		name, _ := fields[k].(string)
		v, _ := fields[k+1].(string)
		switch name {
		case "r":
			t.Role = v
		case "c":
			t.Content = v
		case "n":
			t.N, _ = strconv.ParseInt(v, 10, 64)
		case "tc":
			t.ToolCalls = v
		case "i":
			t.CallID = v
		}
	}
	return t
}
