//go:build unix && !linux

package mcp

import "syscall"

// sysProcAttr puts a stdio server in a process group of its own, so that
// stopping it stops what it started too, and a Ctrl-C at Parley's
// terminal reaches Parley alone (which then stops the server in order).
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
