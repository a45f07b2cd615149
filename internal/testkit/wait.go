package testkit

import (
	"testing"
	"time"
)

// Eventually waits for cond, polling, for what has no signal to wait on
// (a counter another goroutine increments). It fails tb after a minute:
// generous, for a loaded machine; the waits are for conditions, never
// timings.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
