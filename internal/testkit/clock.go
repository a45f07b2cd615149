package testkit

import (
	"sort"
	"sync"
	"time"
)

// Clock is a fake clock (it satisfies internal/clock.Clock): time moves
// only when Advance moves it, and the functions and tickers that fall due
// run then, in time order. Safe for concurrent use.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	seq     int
	timers  []*fakeTimer
	tickers []*fakeTicker
}

type fakeTimer struct {
	at   time.Time
	seq  int
	f    func()
	done bool
}

type fakeTicker struct {
	every time.Duration
	next  time.Time
	c     chan time.Time
	done  bool
}

// NewClock returns a fake clock at a fixed, arbitrary time.
func NewClock() *Clock { return &Clock{now: time.Unix(1_700_000_000, 0)} }

// Now is the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc runs f (on a goroutine of its own, as time.AfterFunc does)
// when Advance reaches now+d.
func (c *Clock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.done
		t.done = true
		return was
	}
}

// NewTicker ticks every d of fake time; like time.Ticker, a tick that
// finds the last one unread is dropped.
func (c *Clock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTicker{every: d, next: c.now.Add(d), c: make(chan time.Time, 1)}
	c.tickers = append(c.tickers, t)
	return t.c, func() {
		c.mu.Lock()
		t.done = true
		c.mu.Unlock()
	}
}

// Timers is how many AfterFuncs are pending.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done {
			n++
		}
	}
	return n
}

// Tickers is how many tickers are running.
func (c *Clock) Tickers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.tickers {
		if !t.done {
			n++
		}
	}
	return n
}

// Advance moves the time forward by d, running what falls due on the
// way. Each function runs on its own goroutine, so Advance does not wait
// for them: a test waits for their effects.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		next, fire := c.nextLocked(end)
		if fire == nil {
			break
		}
		c.now = next
		fire()
	}
	c.now = end
	c.mu.Unlock()
}

// nextLocked finds the earliest thing due by end and returns its time and
// what firing it does (under c.mu), or nil.
func (c *Clock) nextLocked(end time.Time) (time.Time, func()) {
	live := c.timers[:0]
	for _, t := range c.timers {
		if !t.done {
			live = append(live, t)
		}
	}
	clear(c.timers[len(live):])
	c.timers = live
	sort.SliceStable(c.timers, func(i, j int) bool {
		if !c.timers[i].at.Equal(c.timers[j].at) {
			return c.timers[i].at.Before(c.timers[j].at)
		}
		return c.timers[i].seq < c.timers[j].seq
	})
	var at time.Time
	var fire func()
	for i, t := range c.timers {
		if t.done || t.at.After(end) {
			continue
		}
		at = t.at
		fire = func() {
			t.done = true
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			go t.f()
		}
		break
	}
	for _, tk := range c.tickers {
		if tk.done || tk.next.After(end) || (fire != nil && !tk.next.Before(at)) {
			continue
		}
		at = tk.next
		fire = func() {
			select {
			case tk.c <- tk.next:
			default:
			}
			tk.next = tk.next.Add(tk.every)
		}
	}
	return at, fire
}
