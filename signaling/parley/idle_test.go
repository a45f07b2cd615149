package parley_test

import (
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/signaling"
)

// An idle Parley socket (it said hello, had a reply, went quiet) keeps
// one goroutine on Go's smallest stack, 2 KB: the reader waits for the
// client in a shallow wait and reads on goroutines of its own
// (signaling.Socket). One frame too many under that wait doubles the
// stack of every idle socket; gorilla's read path, where the reader used
// to wait, took it to 8 KB, half of an idle socket's memory.
func TestIdleSocketsKeepSmallStacks(t *testing.T) {
	if !testkit.WithoutAdaptiveStacks(t) {
		return
	}
	rdb := newRedis(t)
	// Quiet after 20 ms (default 5 s, covered in signaling): the sockets
	// give their reading goroutines back soon after their reply.
	r := startReplica(t, rdb, local.New(local.Config{}), replicaOpts{ws: signaling.Config{QuietAfter: 20 * time.Millisecond}})
	warm := dial(t, r.URL) // the process's first socket starts what every later one shares
	warm.Hello()
	// 200 sockets, and a bound that tells a 2 KB waiter from a reader
	// parked deep (8 KB; signaling's own test draws the finer line, at
	// 1,000 sockets); under the race detector frames are larger (make test
	// also runs this test without it).
	bound := map[bool]float64{false: 4096, true: 6144}[testkit.Race]
	testkit.StackPer(t, 200, bound, func(int) {
		c := dial(t, r.URL)
		c.Hello()
		c.Send(map[string]any{"type": "text", "text": "hello there"})
		c.Until("reply.done", 1)
	})
}
