package testkit

import (
	"os"
	"os/exec"
	"testing"
)

// InLoopbackNetns reports whether the test runs in a network namespace
// of its own whose only network is lo (a laptop offline, a container, a
// sandbox). When it does not, it re-executes the test binary for this
// test alone inside `unshare -n` with only lo up, fails t if that run
// fails (its output is the test's), and returns false: the caller
// returns.
func InLoopbackNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv("PARLEY_IN_NETNS") != "" {
		return true
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare not found: %v", err)
	}
	// A failure is the test's inside (its output is above), or unshare's
	// refusal: it needs root or user namespaces.
	rerun(t, "in its network namespace", exec.Command("unshare", "-n", "sh", "-c",
		`ip link set lo up && exec "$0" -test.run "^$1\$" -test.v -test.timeout 5m`, os.Args[0], t.Name()),
		"PARLEY_IN_NETNS=1")
	return false
}
