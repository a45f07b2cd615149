package testkit

import (
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	c := NewClock()
	start := c.Now()
	fired := make(chan time.Duration, 4)
	c.AfterFunc(30*time.Millisecond, func() { fired <- 30 * time.Millisecond })
	stop := c.AfterFunc(10*time.Millisecond, func() { fired <- 10 * time.Millisecond })
	ticks, stopTicks := c.NewTicker(20 * time.Millisecond)
	defer stopTicks()
	if !stop() || stop() {
		t.Fatal("stop reports whether it stopped")
	}
	c.Advance(25 * time.Millisecond)
	select {
	case at := <-ticks:
		if at.Sub(start) != 20*time.Millisecond {
			t.Fatalf("tick at %v", at.Sub(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no tick")
	}
	select {
	case d := <-fired:
		t.Fatalf("%v fired early", d)
	default:
	}
	c.Advance(10 * time.Millisecond)
	if d := <-fired; d != 30*time.Millisecond {
		t.Fatalf("fired %v", d)
	}
	if got := c.Now().Sub(start); got != 35*time.Millisecond {
		t.Fatalf("now +%v", got)
	}
	if c.Timers() != 0 {
		t.Fatalf("%d timers left", c.Timers())
	}
}
