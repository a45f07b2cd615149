package testkit

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

// LeakTimeout is how long CheckGoroutines waits for the goroutines a test
// started to end: generous, for a loaded machine.
const LeakTimeout = 10 * time.Second

// CheckGoroutines fails tb if goroutines started after it was called are
// still running once tb's cleanups have run (it registers its own first,
// so it runs last). It reports their stacks. Call it at the start of a
// test that does not run in parallel with others: their goroutines would
// count as this one's.
func CheckGoroutines(tb testing.TB) {
	tb.Helper()
	checkGoroutines(tb, LeakTimeout)
}

func checkGoroutines(tb testing.TB, timeout time.Duration) {
	before := goroutines()
	tb.Cleanup(func() {
		var extra []string
		// Goroutines end on their own time, with nothing to wait on: this
		// looks again every 10 ms until none is left or the timeout.
		deadline := time.Now().Add(timeout)
		for {
			extra = extra[:0]
			for id, stack := range goroutines() {
				if _, ok := before[id]; !ok {
					extra = append(extra, stack)
				}
			}
			if len(extra) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(extra) > 0 {
			tb.Errorf("%d goroutines left behind:\n\n%s", len(extra), strings.Join(extra, "\n\n"))
		}
	})
}

// goroutines are the stacks of the running goroutines by their header
// ("goroutine 12"), without the caller's own.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for i, g := range bytes.Split(buf, []byte("\n\n")) {
		if i == 0 {
			continue // the caller's, which runs this
		}
		stack := string(g)
		id, _, _ := strings.Cut(stack, " [")
		out[id] = stack
	}
	return out
}
