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

// TicksTaken tells when the receiver has had its tick; a tick in flight
// when its ticker stops is dropped, and nothing waits for it.
func TestTicksTaken(t *testing.T) {
	c := NewClock()
	ticks, stop := c.NewTicker(20 * time.Millisecond)
	select {
	case <-c.TicksTaken():
	default:
		t.Fatal("no tick sent, yet not taken")
	}
	c.Advance(70 * time.Millisecond) // three ticks due: one in flight, two dropped
	taken := c.TicksTaken()
	select {
	case <-taken:
		t.Fatal("taken before it was received")
	default:
	}
	if at := <-ticks; at.Sub(time.Unix(1_700_000_000, 0)) != 20*time.Millisecond {
		t.Fatalf("tick at %v", at)
	}
	select {
	case <-taken:
	case <-time.After(5 * time.Second):
		t.Fatal("received, yet not taken")
	}
	c.Advance(20 * time.Millisecond)
	stop()
	select {
	case <-c.TicksTaken():
	case <-time.After(5 * time.Second):
		t.Fatal("a stopped ticker's tick is still in flight")
	}
	select {
	case at := <-ticks:
		t.Fatalf("a tick at %v after stop", at)
	default:
	}
}
