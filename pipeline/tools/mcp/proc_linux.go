package mcp

import "syscall"

// sysProcAttr puts a stdio server in a process group of its own, so that
// stopping it stops what it started too, and a Ctrl-C at Parley's
// terminal reaches Parley alone (which then stops the server in order).
// Should Parley die without stopping it (SIGKILL), the kernel kills the
// server: Pdeathsig fires when the thread that started it exits, and Go
// keeps its threads for the process's life unless a goroutine locked to
// one ends, which nothing in Parley does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
