package signaling

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The socket's context behaves as a cancelled context.WithCancel would,
// and keeps nothing for children that have ended.
func TestCloseCtx(t *testing.T) {
	newCtx := func() (*closeCtx, func()) {
		done := make(chan struct{})
		c := &closeCtx{done: done}
		return c, func() { close(done); c.fire() }
	}
	t.Run("done at the close", func(t *testing.T) {
		c, closeIt := newCtx()
		if c.Err() != nil {
			t.Fatal("done before the close")
		}
		child, cancel := context.WithTimeout(c, time.Hour)
		defer cancel()
		ran := make(chan struct{})
		context.AfterFunc(c, func() { close(ran) })
		closeIt()
		<-child.Done()
		<-ran
		if !errors.Is(c.Err(), context.Canceled) || !errors.Is(child.Err(), context.Canceled) || !errors.Is(context.Cause(child), context.Canceled) {
			t.Errorf("errors %v, %v, cause %v", c.Err(), child.Err(), context.Cause(child))
		}
	})
	t.Run("ended children leave nothing", func(t *testing.T) {
		c, closeIt := newCtx()
		defer closeIt()
		var cancels []context.CancelFunc
		for range 3 {
			_, cancel := context.WithTimeout(c, time.Hour)
			cancels = append(cancels, cancel)
		}
		_, expire := context.WithTimeout(c, time.Millisecond)
		defer expire()
		if n := c.registered(); n != 4 {
			t.Fatalf("%d registered, want 4", n)
		}
		cancels[1]()
		cancels[0]()
		cancels[2]()
		deadline := time.Now().Add(10 * time.Second)
		for c.registered() != 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // the expiring child's timer
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.fns != nil {
			t.Errorf("%d left registered, or an empty slice kept", len(c.fns))
		}
	})
	t.Run("a child made after the close", func(t *testing.T) {
		c, closeIt := newCtx()
		closeIt()
		child, cancel := context.WithCancel(c)
		defer cancel()
		<-child.Done()
		stop := c.AfterFunc(func() {})
		if stop() {
			t.Error("stop after the close reported that it stopped")
		}
	})
}

func (c *closeCtx) registered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.fns)
}
