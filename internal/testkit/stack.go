package testkit

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// WithoutAdaptiveStacks runs the calling test again, in a process of its
// own with Go's adaptive start of goroutine stacks off, and reports true
// in that process. Go starts a goroutine on the average stack of the last
// collection, which in a test binary (few goroutines, deep ones) is 4 KB;
// a test of how small a goroutine's stack stays must see what the code's
// own frames need. Call it first; when it returns false, return (the run
// in the other process has passed or failed this test).
func WithoutAdaptiveStacks(t *testing.T) bool {
	t.Helper()
	if os.Getenv("PARLEY_STACK_TEST") != "" {
		return true
	}
	rerun(t, "without adaptive stacks", exec.Command(os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v"),
		"PARLEY_STACK_TEST=1", "GODEBUG=adaptivestackstart=0")
	return false
}

// rerun runs cmd, the test binary running this test alone again (perhaps
// under a wrapper), with env added to the environment, and fails t if it
// fails; its output is the test's.
func rerun(t *testing.T, how string, cmd *exec.Cmd, env ...string) {
	t.Helper()
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v", t.Name(), how, err)
	}
}

// StackPer calls open n times and waits, up to 5 s, for the goroutine
// stacks the process holds to have grown by at most bound bytes per call
// (goroutines that end free theirs a little later); it fails the test
// otherwise. The stack caches of Go's Ps hold up to 256 KB that the
// difference counts: n must make that small beside the bound.
func StackPer(t testing.TB, n int, bound float64, open func(i int)) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		open(i)
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64(int64(after.StackInuse)-int64(before.StackInuse)) / float64(n)
		if per <= bound {
			t.Logf("%.0f B of stack per each", per)
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%.0f B of stack per each, more than %.0f", per, bound)
		}
	}
}
