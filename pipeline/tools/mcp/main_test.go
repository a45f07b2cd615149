package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// helperEnv, set to a JSON list of Servers, makes the test binary a
// process that runs a Manager on them until it is killed: the Parley
// process of TestParleyKilled.
const helperEnv = "PARLEY_MCP_TEST_HELPER"

func TestMain(m *testing.M) {
	if servers := os.Getenv(helperEnv); servers != "" {
		var cfg Config
		if err := json.Unmarshal([]byte(servers), &cfg.Servers); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		mgr, err := New(cfg, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		_ = mgr.Run(context.Background()) // until killed
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Parley killed with SIGKILL, no chance to stop its servers: the kernel
// kills them (Pdeathsig). The server here is one that neither answers nor
// reads its stdin, so only that would end it.
func TestParleyKilled(t *testing.T) {
	noLeaks(t)
	servers, _ := json.Marshal([]Server{{Name: "mute", Command: "sleep", Args: []string{"300"}}})
	parley := exec.Command(os.Args[0], "-test.run=^$")
	parley.Env = append(os.Environ(), helperEnv+"="+string(servers))
	if err := parley.Start(); err != nil {
		t.Fatal(err)
	}
	var server int
	waitFor(t, "the server started", func() bool {
		for _, p := range procs() {
			if p.ppid == parley.Process.Pid && p.cmdline == "sleep 300" {
				server = p.pid
			}
		}
		return server != 0
	})
	if err := parley.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = parley.Wait()
	waitFor(t, "the server gone with Parley", func() bool { return !alive(server) })
}
