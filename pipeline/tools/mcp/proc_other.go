//go:build !unix

package mcp

import (
	"os"
	"syscall"
)

var (
	sigTerm = os.Kill // no SIGTERM: the process is killed at once
	sigKill = os.Kill
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup signals the process alone: there are no process groups.
func signalGroup(p *os.Process, sig os.Signal) { _ = p.Signal(sig) }
