package fakes

import (
	"sync"
	"testing"
	"time"
)

// WaitTimeout is how long a Wait method waits before it fails the test:
// generous, for a loaded machine.
const WaitTimeout = 10 * time.Second

// changes lets a test wait for a fake's state to change: changed closes
// the channel that waiters hold. The zero value is ready.
type changes struct {
	mu sync.Mutex
	ch chan struct{}
}

// changed wakes the waiters; call it after each change of the fake.
func (c *changes) changed() {
	c.mu.Lock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
	c.mu.Unlock()
}

// next is the channel closed at the next change.
func (c *changes) next() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

// wait returns once cond holds, or fails tb after WaitTimeout. The
// channel is taken before cond is tried, so a change in between is not
// missed.
func (c *changes) wait(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	timeout := time.NewTimer(WaitTimeout)
	defer timeout.Stop()
	for {
		ch := c.next()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			tb.Fatalf("fakes: no %s within %v", what, WaitTimeout)
		}
	}
}
