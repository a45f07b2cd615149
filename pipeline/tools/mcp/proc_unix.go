//go:build unix

package mcp

import (
	"os"
	"syscall"
)

const (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
)

// signalGroup sends sig to p's process group. Once the leader has been
// reaped, its id stays the group's for as long as any member lives, so
// the signal reaches what the server left behind; with no member left
// the id is free, and only a new process given that very id and made a
// group leader in the instant between the reap and this call could be
// hit.
func signalGroup(p *os.Process, sig syscall.Signal) {
	_ = syscall.Kill(-p.Pid, sig)
}
