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
	pending int           // ticks sent and not yet received
	taken   chan struct{} // closed when pending falls to 0; nil while it is 0
}

type fakeTimer struct {
	at   time.Time
	seq  int
	f    func()
	done bool
}

// fakeTicker hands each tick to its receiver from a goroutine of its
// own, so that the clock knows when the tick has been received
// (TicksTaken). One tick at a time is in flight: the next ones are dropped
// until it is taken, as time.Ticker's one-tick buffer does.
type fakeTicker struct {
	every    time.Duration
	next     time.Time
	c        chan time.Time
	stop     chan struct{} // closed by the ticker's stop: a tick in flight is dropped
	inFlight bool
	done     bool
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
// finds the last one unread is dropped. Stop it: a tick in flight waits
// for its receiver until then.
func (c *Clock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTicker{every: d, next: c.now.Add(d), c: make(chan time.Time), stop: make(chan struct{})}
	c.tickers = append(c.tickers, t)
	return t.c, func() {
		c.mu.Lock()
		if !t.done {
			t.done = true
			close(t.stop)
		}
		c.mu.Unlock()
	}
}

// TicksTaken returns a channel that is closed once every tick sent so far
// has been received (or dropped by its ticker's stop): after Advance, a
// test waits on it to know that the receivers have had their ticks, and
// no tick of the next Advance will be dropped for one still unread.
func (c *Clock) TicksTaken() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == 0 {
		done := make(chan struct{})
		close(done)
		return done
	}
	if c.taken == nil {
		c.taken = make(chan struct{})
	}
	return c.taken
}

// tick sends at to t's receiver, under c.mu; it ends when the tick is
// received or the ticker stopped.
func (c *Clock) tick(t *fakeTicker, at time.Time) {
	if t.inFlight {
		return // the last one is unread: dropped
	}
	t.inFlight = true
	c.pending++
	go func() {
		select {
		case t.c <- at:
		case <-t.stop:
		}
		c.mu.Lock()
		t.inFlight = false
		c.pending--
		if c.pending == 0 && c.taken != nil {
			close(c.taken)
			c.taken = nil
		}
		c.mu.Unlock()
	}()
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
			c.tick(tk, tk.next)
			tk.next = tk.next.Add(tk.every)
		}
	}
	return at, fire
}
