package parley_test

import (
	"os"
	"os/exec"
	"runtime"
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
	// Go starts a goroutine on the average stack of the last collection
	// (adaptivestackstart), which in a test binary, with few goroutines
	// and deep ones, is 4 KB: the test runs itself again with that off, to
	// see what the sockets' own frames need. (The server's figure, with
	// Go's defaults, is in docs/benchmarks.md, "Idle scale".)
	if os.Getenv("PARLEY_STACK_TEST") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestIdleSocketsKeepSmallStacks$", "-test.v")
		cmd.Env = append(os.Environ(), "PARLEY_STACK_TEST=1", "GODEBUG=adaptivestackstart=0")
		out, err := cmd.CombinedOutput()
		t.Logf("%s", out)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	rdb := newRedis(t)
	// Quiet after 20 ms (default 5 s, covered in signaling): the sockets
	// give their reading goroutines back soon after their reply.
	r := startReplica(t, rdb, local.New(local.Config{}), replicaOpts{ws: signaling.Config{QuietAfter: 20 * time.Millisecond}})
	warm := dial(t, r.URL) // the process's first socket starts what every later one shares
	warm.Hello()
	// The stack caches of Go's Ps hold up to 256 KB that the difference
	// below counts: 200 sockets, and a bound that tells a 2 KB waiter from
	// a reader parked deep (8 KB; signaling's own test draws the finer
	// line, at 1,000 sockets).
	const n = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		c := dial(t, r.URL)
		c.Hello()
		c.Send(map[string]any{"type": "text", "text": "hello there"})
		c.Until("reply.done", 1)
	}
	// The reading goroutines end just after their last frame is handled.
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64(int64(after.StackInuse)-int64(before.StackInuse)) / n
		// Under the race detector frames are larger: 6 KB still tells the
		// two apart (make test also runs this test without it).
		bound := map[bool]float64{false: 4096, true: 6144}[testkit.Race]
		if per <= bound {
			t.Logf("%.0f B of stack per idle socket", per)
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%.0f B of stack per idle socket, more than %.0f; want 2 KB (one goroutine on Go's smallest stack)", per, bound)
		}
	}
}
