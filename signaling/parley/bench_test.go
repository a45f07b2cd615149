package parley_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/pipeline/turn"
)

// BenchmarkTextTurn is one client's typed turn, from sending "text" to
// reading "reply.done", against the offline responder on a real Redis:
// the server's own cost per turn, with nothing upstream.
func BenchmarkTextTurn(b *testing.B) {
	r := startReplica(b, newRedis(b), local.New(local.Config{}), replicaOpts{})
	c := dial(b, r.URL)
	c.Hello()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Send(map[string]any{"type": "text", "text": "what time is it"})
		for {
			ev := c.Next()
			if ev.Type == "reply.done" {
				break
			}
			if ev.Type == "error" {
				b.Fatal(ev.Raw)
			}
		}
	}
}

// BenchmarkParallelSessions runs many sessions at once, each sending turns
// back to back, and reports turns per second for the whole server.
func BenchmarkParallelSessions(b *testing.B) {
	for _, sessions := range []int{16, 64} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			// Every session dials from 127.0.0.1 at once (the default: no
			// per-IP caps); a queue that never says busy, to measure turns.
			r := startReplica(b, newRedis(b), local.New(local.Config{}),
				replicaOpts{engine: turn.Config{Slots: 16, Queue: 4096}})
			var done atomic.Int64
			b.SetParallelism((sessions + 1) / 2) // GOMAXPROCS is 2 here
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := dial(b, r.URL)
				c.Hello()
				for pb.Next() {
					c.Send(map[string]any{"type": "text", "text": "hello"})
					for {
						ev := c.Next()
						if ev.Type == "reply.done" {
							done.Add(1)
							break
						}
						if ev.Type == "error" {
							b.Error(ev.Raw)
							return
						}
					}
				}
			})
			b.ReportMetric(float64(done.Load())/time.Since(start).Seconds(), "turns/s")
		})
	}
}
