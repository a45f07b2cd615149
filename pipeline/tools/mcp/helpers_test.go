package mcp

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parleyhq/parley/internal/testkit/npm"
	"github.com/parleyhq/parley/pipeline/llm"
)

// everything is @modelcontextprotocol/server-everything, pinned by
// testdata/npm/package-lock.json, as a stdio server.
func everything(t *testing.T) Server {
	t.Helper()
	return Server{Name: "everything", Command: npm.Bin(t, "testdata/npm", "mcp-server-everything"), Args: []string{"stdio"}}
}

// run starts a Manager on cfg; the test's end stops it and waits for Run.
func run(t *testing.T, cfg Config) *Manager {
	t.Helper()
	m, err := New(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return within 30s of its context's end")
		}
	})
	return m
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (the machine may be loaded).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func names(ts []llm.Tool) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	slices.Sort(out)
	return out
}

func offers(m *Manager, name string) bool { return slices.Contains(names(m.Tools()), name) }

// testLog logs to the test, until it ends.
func testLog(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() { w.mu.Lock(); w.done = true; w.mu.Unlock() }

// noLeaks fails the test if, once it has ended (and every cleanup
// registered after this one has run), goroutines are left beyond those
// there at the start, or the test process has a child process. A minimal
// check of our own: the shared test kit has none yet.
func noLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(15 * time.Second) // the SDK's cancel notices end within 5s
		for {
			kids := children()
			n := runtime.NumGoroutine()
			if n <= before && len(kids) == 0 {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("leak: %d goroutines, %d at the start; child processes %v\n%s", n, before, kids, buf)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// children lists the test process's child processes (zombies too), with
// their command lines.
func children() []string {
	var out []string
	self := os.Getpid()
	for _, p := range procs() {
		if p.ppid == self {
			out = append(out, fmt.Sprintf("%d %s", p.pid, p.cmdline))
		}
	}
	return out
}

type proc struct {
	pid, ppid int
	cmdline   string
}

// procs reads /proc: every process's id, parent and command line.
func procs() []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, proc{pid: pid, ppid: ppid, cmdline: strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))})
	}
	return out
}

// childPID is the pid of the test process's one child whose command line
// holds s; 0 if there is none.
func childPID(t *testing.T, s string) int {
	t.Helper()
	var found []int
	for _, p := range procs() {
		if p.ppid == os.Getpid() && strings.Contains(p.cmdline, s) {
			found = append(found, p.pid)
		}
	}
	if len(found) > 1 {
		t.Fatalf("%d child processes run %q: %v", len(found), s, found)
	}
	if len(found) == 0 {
		return 0
	}
	return found[0]
}

// alive says whether pid runs (a zombie, dead but not yet reaped by
// whoever inherited it, does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// count is the value of a counter (or a histogram's sample count).
func count(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Histogram != nil {
		return float64(m.Histogram.GetSampleCount())
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}
