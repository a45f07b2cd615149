package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parleyhq/parley/pipeline/tools"
)

// The tools of @modelcontextprotocol/server-everything 2026.8.31 for a
// client that declares no capabilities (roots, sampling and elicitation
// add more). simulate-research-query is registered once the session is
// initialised and announced with tools/list_changed.
var everythingTools = []string{
	"echo", "get-annotated-message", "get-env", "get-resource-links", "get-resource-reference",
	"get-structured-content", "get-sum", "get-tiny-image", "gzip-file-as-resource",
	"simulate-research-query", "toggle-simulated-logging", "toggle-subscriber-updates",
	"trigger-long-running-operation",
}

// startEverything runs server-everything with the default settings and
// waits for its whole tool list.
func startEverything(t *testing.T, cfg Config) *Manager {
	t.Helper()
	if len(cfg.Servers) == 0 {
		cfg.Servers = []Server{everything(t)}
	}
	m := run(t, cfg)
	waitFor(t, "server-everything's tools", func() bool { return slices.Equal(names(m.Tools()), everythingTools) })
	return m
}

func TestEverythingToolsAndCalls(t *testing.T) {
	noLeaks(t)
	m := startEverything(t, Config{})
	for _, tool := range m.Tools() {
		var schema map[string]any
		if err := json.Unmarshal(tool.Parameters, &schema); err != nil || schema["type"] != "object" {
			t.Errorf("%s: parameters %s: want an object schema (%v)", tool.Name, tool.Parameters, err)
		}
		if _, ok := schema["$schema"]; ok {
			t.Errorf("%s: parameters keep \"$schema\": %s", tool.Name, tool.Parameters)
		}
		if tool.Description == "" {
			t.Errorf("%s: no description", tool.Name)
		}
	}
	ctx := context.Background()
	for _, c := range []struct{ tool, args, want string }{
		{"echo", `{"message": "hello, parley"}`, "Echo: hello, parley"},
		{"get-sum", `{"a": 2, "b": 3.5}`, "The sum of 2 and 3.5 is 5.5."},
		{"get-tiny-image", ``, "Here's the image you requested:\n[image image/png, 3.9 KB]\nThe image above is the MCP logo."},
	} {
		t.Run(c.tool, func(t *testing.T) {
			out, err := m.Call(ctx, c.tool, json.RawMessage(c.args))
			if err != nil || out != c.want {
				t.Fatalf("Call(%s, %s) = %q, %v; want %q", c.tool, c.args, out, err, c.want)
			}
		})
	}
}

// Arguments that do not fit are refused before the call, with what was
// wrong; a made-up tool is ErrUnknown; a tool's own failure is an error
// with its text.
func TestEverythingBadCalls(t *testing.T) {
	noLeaks(t)
	m := startEverything(t, Config{})
	ctx := context.Background()
	reached := count(t, callSeconds)
	for _, c := range []struct{ name, tool, args, want string }{
		{"not JSON", "get-sum", `{"a": 2, "b": `, "not JSON"},
		{"not an object", "echo", `["hello"]`, "want a JSON object, got an array"},
		{"wrong type", "get-sum", `{"a": 2, "b": "three"}`, "b"},
		{"missing field", "echo", `{}`, "message"},
		{"not in the enum", "get-structured-content", `{"location": "Paris"}`, "location"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := count(t, callsTotal.WithLabelValues(resultInvalid))
			out, err := m.Call(ctx, c.tool, json.RawMessage(c.args))
			if !errors.Is(err, ErrInvalidArguments) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Call(%s, %s) = %q, %v; want ErrInvalidArguments saying %q", c.tool, c.args, out, err, c.want)
			}
			if got := count(t, callsTotal.WithLabelValues(resultInvalid)); got != before+1 {
				t.Errorf("calls{result=invalid} went from %v to %v", before, got)
			}
		})
	}
	if got := count(t, callSeconds); got != reached {
		t.Errorf("%v calls reached the server; want none", got-reached)
	}
	t.Run("unknown tool", func(t *testing.T) {
		if _, err := m.Call(ctx, "get_weather", json.RawMessage(`{}`)); !errors.Is(err, tools.ErrUnknown) {
			t.Fatalf("err = %v; want tools.ErrUnknown", err)
		}
	})
	t.Run("the tool fails", func(t *testing.T) {
		// The server refuses the scheme before fetching anything.
		_, err := m.Call(ctx, "gzip-file-as-resource", json.RawMessage(`{"data": "ftp://127.0.0.1/file"}`))
		if err == nil || !strings.Contains(err.Error(), "Unsupported URL protocol") {
			t.Fatalf("err = %v; want the tool's own error", err)
		}
	})
	// The session is fine after all that.
	if out, err := m.Call(ctx, "echo", json.RawMessage(`{"message": "still here"}`)); err != nil || out != "Echo: still here" {
		t.Fatalf("echo after bad calls = %q, %v", out, err)
	}
}

// The server gets its configured env and a few of Parley's variables,
// never Parley's keys; a large output is cut to MaxOutput with a note.
func TestEverythingEnvAndOutputCap(t *testing.T) {
	noLeaks(t)
	t.Setenv("LLM_API_KEY", "sk-parley-secret")
	srv := everything(t)
	srv.Env = map[string]string{"PARLEY_TEST_MARK": "configured", "ZZ_BIG": strings.Repeat("x", 64<<10)}
	m := startEverything(t, Config{Servers: []Server{srv}})
	out, err := m.Call(context.Background(), "get-env", nil)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 16 << 10 // the default
	if len(out) > limit || !strings.Contains(out, "[output cut: the first 16384 of ") {
		t.Fatalf("get-env gave %d bytes ending %q; want at most %d, with a note that it was cut", len(out), out[max(0, len(out)-80):], limit)
	}
	for _, want := range []string{`"PARLEY_TEST_MARK": "configured"`, `"PATH": `} {
		if !strings.Contains(out, want) {
			t.Errorf("the server's environment lacks %s:\n%.2000s", want, out)
		}
	}
	if strings.Contains(out, "sk-parley-secret") || strings.Contains(out, "LLM_API_KEY") {
		t.Errorf("Parley's environment leaked into the server's")
	}
}

func TestEverythingDeadline(t *testing.T) {
	noLeaks(t)
	// A short deadline (the default is 30s) so that the test does not
	// wait long; TestConfigDefaults holds the default.
	m := startEverything(t, Config{CallTimeout: time.Second})
	timeouts := count(t, callsTotal.WithLabelValues(resultTimeout))
	_, err := m.Call(context.Background(), "trigger-long-running-operation", json.RawMessage(`{"duration": 120, "steps": 1}`))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no result within 1s") {
		t.Fatalf("err = %v; want the deadline", err)
	}
	if got := count(t, callsTotal.WithLabelValues(resultTimeout)); got != timeouts+1 {
		t.Errorf("calls{result=timeout} went from %v to %v", timeouts, got)
	}
	if out, err := m.Call(context.Background(), "echo", json.RawMessage(`{"message": "after"}`)); err != nil || out != "Echo: after" {
		t.Fatalf("echo after a timeout = %q, %v", out, err)
	}
}

// The server killed: its tools are withdrawn, it is started again, and
// the next call works.
func TestEverythingKilled(t *testing.T) {
	noLeaks(t)
	// A longer first backoff than the default 500ms, so that the test
	// sees the tools withdrawn before the restart brings them back.
	m := startEverything(t, Config{MinBackoff: 4 * time.Second})
	restarts := count(t, restartsTotal)
	pid := childPID(t, "mcp-server-everything")
	if pid == 0 {
		t.Fatalf("no server-everything child process: %v", children())
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the tools withdrawn", func() bool { return len(m.Tools()) == 0 })
	if _, err := m.Call(context.Background(), "echo", json.RawMessage(`{"message": "anyone?"}`)); !errors.Is(err, tools.ErrUnknown) {
		t.Fatalf("a call while the server is down: %v; want tools.ErrUnknown", err)
	}
	// A session may still name its tools (and its server) meanwhile.
	if got := m.Origin("echo"); got != "everything" || !slices.Equal(m.Servers(), []string{"everything"}) {
		t.Fatalf("while the server is down: Origin(echo) = %q, Servers() = %v", got, m.Servers())
	}
	waitFor(t, "the tools back", func() bool { return slices.Equal(names(m.Tools()), everythingTools) })
	if now := childPID(t, "mcp-server-everything"); now == 0 || now == pid {
		t.Fatalf("server pid %d after the restart, %d before", now, pid)
	}
	if alive(pid) {
		t.Errorf("the killed server %d is still there", pid)
	}
	if out, err := m.Call(context.Background(), "echo", json.RawMessage(`{"message": "back"}`)); err != nil || out != "Echo: back" {
		t.Fatalf("echo after the restart = %q, %v", out, err)
	}
	if got := count(t, restartsTotal); got != restarts+1 {
		t.Errorf("restarts went from %v to %v", restarts, got)
	}
}

// A server started through a wrapper that leaves a child behind: the
// stop takes the whole process group.
func TestStopTakesTheProcessGroup(t *testing.T) {
	noLeaks(t)
	srv := everything(t)
	srv.Command, srv.Args = "sh", []string{"-c", `sleep 300 & exec "$0" stdio`, srv.Command}
	ctx, cancel := context.WithCancel(context.Background())
	m, err := New(Config{Servers: []Server{srv}}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	waitFor(t, "the tools", func() bool { return offers(m, "echo") })
	leader := childPID(t, "mcp-server-everything")
	var sleeper int
	for _, p := range procs() {
		if p.ppid == leader && strings.HasPrefix(p.cmdline, "sleep 300") {
			sleeper = p.pid
		}
	}
	if leader == 0 || sleeper == 0 {
		t.Fatalf("server %d, its child sleep %d: %v", leader, sleeper, procs())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if alive(leader) {
		t.Errorf("the server %d outlived Run", leader)
	}
	// SIGKILL has been sent to the group; the kernel finishes the child
	// off a moment later.
	waitFor(t, "the server's child gone", func() bool { return !alive(sleeper) })
	if len(m.Tools()) != 0 {
		t.Errorf("tools still offered after Run: %v", names(m.Tools()))
	}
}

// Servers that cannot start, do not answer, or are not there are retried
// with backoff; the good one's tools are offered meanwhile, and nothing
// is left running at the end.
func TestServersThatFailToStart(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "http://" + ln.Addr().String() + "/mcp"
	ln.Close()
	restarts := count(t, restartsTotal)
	// A 1s connect timeout (the default is 30s) so that the server that
	// never answers initialize is given up on quickly.
	m := startEverything(t, Config{ConnectTimeout: time.Second, Servers: []Server{
		everything(t),
		{Name: "missing", Command: filepath.Join(t.TempDir(), "no-such-server")},
		{Name: "mute", Command: "sleep", Args: []string{"300"}},
		{Name: "gone", URL: gone},
	}})
	waitFor(t, "each failing server retried", func() bool { return count(t, restartsTotal) >= restarts+3 })
	var mute int
	waitFor(t, "the mute server running", func() bool { mute = childPID(t, "sleep 300"); return mute != 0 })
	waitFor(t, "the mute server stopped and started again", func() bool {
		now := childPID(t, "sleep 300")
		return now != 0 && now != mute
	})
	if alive(mute) {
		t.Errorf("the mute server %d given up on is still running", mute)
	}
	if out, err := m.Call(context.Background(), "echo", json.RawMessage(`{"message": "fine"}`)); err != nil || out != "Echo: fine" {
		t.Fatalf("echo beside failing servers = %q, %v", out, err)
	}
}
