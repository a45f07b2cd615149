package signaling

import (
	"context"
	"slices"
	"sync"
	"time"
)

// closeCtx is a socket's context: done when the socket closes. It is the
// socket's own, not context.WithCancel's, so that an idle socket holds
// nothing for it: Done is the socket's done channel, and the children made
// under it (the hello's timeout, a replay's) leave no map behind when they
// end, as a cancelCtx's children map stays once made. The context package
// finds AfterFunc and registers its children through it.
type closeCtx struct {
	done <-chan struct{}

	mu    sync.Mutex
	fired bool
	next  uint64
	fns   []afterFn // nil when none is registered
}

type afterFn struct {
	id uint64
	f  func()
}

func (c *closeCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *closeCtx) Done() <-chan struct{}       { return c.done }
func (c *closeCtx) Value(any) any               { return nil }

func (c *closeCtx) Err() error {
	select {
	case <-c.done:
		return context.Canceled
	default:
		return nil
	}
}

// AfterFunc runs f once the socket closes (at once, on its own goroutine,
// if it has). stop unregisters f and reports whether it did so before f
// ran.
func (c *closeCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fired {
		// Its own goroutine: the context package calls AfterFunc with the
		// child's lock held, and f takes it.
		go f()
		return func() bool { return false }
	}
	c.next++
	id := c.next
	c.fns = append(c.fns, afterFn{id, f})
	return func() bool { return c.unregister(id) }
}

func (c *closeCtx) unregister(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, a := range c.fns {
		if a.id == id {
			c.fns = slices.Delete(c.fns, i, i+1) // zeroes the freed end
			if len(c.fns) == 0 {
				c.fns = nil
			}
			return true
		}
	}
	return false
}

// fire runs the registered functions; the socket's done channel is closed
// first. Called once, by Close.
func (c *closeCtx) fire() {
	c.mu.Lock()
	c.fired = true
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for _, a := range fns {
		a.f() // the context package's: each cancels a child, and does not block
	}
}
