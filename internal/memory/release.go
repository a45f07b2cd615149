package memory

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Config of a Releaser. A zero field means its documented default.
type Config struct {
	// Interval between looks; 0: 10 s; negative: never (Run waits for
	// its context).
	Interval time.Duration
	// MinFree: memory held past the live heap (garbage not yet
	// collected, and freed memory not yet returned) is worth a collection
	// to return from this much, and from a quarter of the live heap; 0:
	// 8 MiB.
	MinFree uint64
	// RestShare: the process is at rest when what it allocated in one
	// Interval is under this share of the GC's headroom (the heap goal
	// less the heap), so that the collector would not run for many
	// intervals more; 0: 1/16.
	RestShare float64
}

func (c *Config) setDefaults() {
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.MinFree == 0 {
		c.MinFree = 8 << 20
	}
	if c.RestShare <= 0 {
		c.RestShare = 1.0 / 16
	}
}

var (
	releases = promauto.NewCounter(prometheus.CounterOpts{
		Name: "parley_memory_releases_total",
		Help: "Times the process, at rest, collected and gave its freed heap back to the OS.",
	})
	released = promauto.NewCounter(prometheus.CounterOpts{
		Name: "parley_memory_released_bytes_total",
		Help: "Freed heap given back to the OS at rest.",
	})
)

// Releaser gives freed heap back when the process is at rest.
type Releaser struct {
	cfg     Config
	log     *slog.Logger
	samples []metrics.Sample
	read    func() stats // the runtime's; a test's
	release func()       // debug.FreeOSMemory; a test's counter
}

// The runtime's metrics read at each look, in this order.
const (
	allocsMetric = "/gc/heap/allocs:bytes"
	goalMetric   = "/gc/heap/goal:bytes"
	heapMetric   = "/memory/classes/heap/objects:bytes" // live, and garbage not yet swept
	freeMetric   = "/memory/classes/heap/free:bytes"    // freed, held, not yet returned
	liveMetric   = "/gc/heap/live:bytes"                // marked live by the last collection
)

// New returns a Releaser; Run starts it.
func New(cfg Config, log *slog.Logger) *Releaser {
	cfg.setDefaults()
	r := &Releaser{cfg: cfg, log: log, release: debug.FreeOSMemory}
	for _, name := range []string{allocsMetric, goalMetric, heapMetric, freeMetric, liveMetric} {
		r.samples = append(r.samples, metrics.Sample{Name: name})
	}
	r.read = r.readRuntime
	return r
}

// stats is one look at the runtime, in bytes: allocated since the start,
// the heap goal, the heap's objects (live and not yet collected), its
// freed memory held, what the last collection found live.
type stats struct{ allocs, goal, heap, free, live uint64 }

func (r *Releaser) readRuntime() stats {
	metrics.Read(r.samples)
	v := func(i int) uint64 {
		if r.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0 // not in this Go: the look finds nothing to do
		}
		return r.samples[i].Value.Uint64()
	}
	return stats{allocs: v(0), goal: v(1), heap: v(2), free: v(3), live: v(4)}
}

// Run looks every Interval until ctx ends; it returns nil then.
func (r *Releaser) Run(ctx context.Context) error {
	if r.cfg.Interval < 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	last := r.read()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := r.read()
		if r.worthIt(last, now) {
			r.release()
			after := r.read()
			releases.Inc()
			if held, left := now.heap+now.free, after.heap+after.free; held > left {
				released.Add(float64(held - left))
			}
			r.log.Debug("at rest: memory given back", "held", now.heap+now.free, "live", after.live, "held_after", after.heap+after.free)
			now = after
		}
		last = now
	}
}

// worthIt says whether the look now, after last, should give memory back:
// the process allocated little since last (it is at rest), and it holds
// enough past its live heap.
func (r *Releaser) worthIt(last, now stats) bool {
	if now.goal <= now.heap || now.allocs < last.allocs {
		return false
	}
	if now.heap+now.free < now.live+max(r.cfg.MinFree, now.live/4) {
		return false
	}
	allocated := now.allocs - last.allocs
	return float64(allocated) < r.cfg.RestShare*float64(now.goal-now.heap)
}
