package memory

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

const mib = 1 << 20

// Memory is given back only when the process is at rest and holds enough
// past its live heap to be worth a collection.
func TestWorthIt(t *testing.T) {
	cfg := Config{}
	cfg.setDefaults()
	r := &Releaser{cfg: cfg}
	// A replica after a burst: 40 MiB live, 100 MiB held, the next
	// collection at 120 MiB of heap.
	last := stats{allocs: 1000 * mib, goal: 120 * mib, heap: 90 * mib, free: 10 * mib, live: 40 * mib}
	for _, tc := range []struct {
		name string
		now  func(s stats) stats
		want bool
	}{
		{"at rest, a burst's memory held", func(s stats) stats { s.allocs += mib; return s }, true},
		{"busy: allocated a large share of the headroom", func(s stats) stats { s.allocs += 10 * mib; return s }, false},
		{"at rest, holding about its live heap", func(s stats) stats {
			s.allocs += mib
			s.heap, s.free = 45*mib, 2*mib
			return s
		}, false},
		{"at rest, past the live heap by less than a quarter of it", func(s stats) stats {
			s.allocs += mib
			s.heap, s.free = 45*mib, 4*mib
			return s
		}, false},
		{"a small heap, past its live heap by less than MinFree", func(s stats) stats {
			s.allocs += 64 << 10
			s.goal, s.heap, s.free, s.live = 12*mib, 6*mib, 1*mib, 2*mib
			return s
		}, false},
		{"the heap at its goal: the collector is about to run", func(s stats) stats { s.allocs += mib; s.goal = s.heap; return s }, false},
		{"no metrics from the runtime", func(stats) stats { return stats{} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.worthIt(last, tc.now(last)); got != tc.want {
				t.Fatalf("worthIt %v, want %v", got, tc.want)
			}
		})
	}
}

// The defaults, as the flag documents them.
func TestConfigDefaults(t *testing.T) {
	var c Config
	c.setDefaults()
	if c.Interval != 10*time.Second || c.MinFree != 8*mib || c.RestShare != 1.0/16 {
		t.Fatalf("defaults %+v", c)
	}
}

// With the runtime's own figures: the memory of a burst that has ended
// (clients gone, a collection since) is given back once the process is
// at rest, once, and Run ends with its context.
func TestRunGivesBackABurst(t *testing.T) {
	// Every 20 ms (default 10 s), so that the test sees a look soon.
	r := New(Config{Interval: 20 * time.Millisecond}, slog.New(slog.DiscardHandler))
	var n atomic.Int32
	r.release = func() { n.Add(1); debug.FreeOSMemory() }
	burst := make([][]byte, 0, 64)
	for range 64 {
		burst = append(burst, make([]byte, mib))
	}
	runtime.KeepAlive(burst)
	burst = nil
	// A collection after the burst (Go forces one every two minutes at the
	// latest): its memory is now freed and held.
	runtime.GC()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for end := time.Now().Add(10 * time.Second); n.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the burst's 64 MiB were not given back in 10 s")
		}
	}
	time.Sleep(200 * time.Millisecond) // ten looks more, at rest, with nothing more held
	if got := n.Load(); got != 1 {
		t.Errorf("%d releases, want 1: once given back, the process holds about its live heap", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A negative interval: never; Run waits for its context.
func TestRunOff(t *testing.T) {
	r := New(Config{Interval: -1}, slog.New(slog.DiscardHandler))
	r.release = func() { t.Error("released with the releaser off") }
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
}
