package testkit

import (
	"strings"
	"testing"
	"time"
)

// cleanupTB runs its cleanups when told and records its errors.
type cleanupTB struct {
	testing.TB
	cleanups []func()
	errs     []string
}

func (c *cleanupTB) Helper()                           {}
func (c *cleanupTB) Cleanup(f func())                  { c.cleanups = append(c.cleanups, f) }
func (c *cleanupTB) Errorf(format string, args ...any) { c.errs = append(c.errs, format) }

func (c *cleanupTB) runCleanups() {
	for i := len(c.cleanups) - 1; i >= 0; i-- {
		c.cleanups[i]()
	}
}

func TestCheckGoroutines(t *testing.T) {
	t.Run("ended by a cleanup", func(t *testing.T) {
		tb := &cleanupTB{TB: t}
		checkGoroutines(tb, time.Second)
		done := make(chan struct{})
		go func() { <-done }()             // ends with the cleanup below
		tb.Cleanup(func() { close(done) }) // runs before the check's
		tb.runCleanups()
		if len(tb.errs) != 0 {
			t.Fatalf("goroutines that ended reported: %v", tb.errs)
		}
	})
	t.Run("left behind", func(t *testing.T) {
		tb := &cleanupTB{TB: t}
		checkGoroutines(tb, 100*time.Millisecond)
		stuck := make(chan struct{})
		defer close(stuck)
		go func() { <-stuck }() // ends when the test does
		tb.runCleanups()
		if len(tb.errs) != 1 || !strings.Contains(tb.errs[0], "goroutines left behind") {
			t.Fatalf("a goroutine left behind: reported %v", tb.errs)
		}
	})
}
