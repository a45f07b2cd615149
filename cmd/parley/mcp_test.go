package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit/npm"
)

// -mcp-config wired: the server starts the configured MCP server (the
// npm server-everything, over stdio), offers its tools, and stops it
// when it stops. A bad file stops the start, naming the server.
func TestMCPConfigWired(t *testing.T) {
	bin := npm.Bin(t, "../../pipeline/tools/mcp/testdata/npm", "mcp-server-everything")
	file := filepath.Join(t.TempDir(), "mcp.json")
	body, _ := json.Marshal(map[string]any{"mcpServers": map[string]any{"everything": map[string]any{"command": bin, "args": []string{"stdio"}}}})
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	// Voice off: calls are not what this test is about, and the
	// recogniser's decoders take a while to load.
	env := map[string]string{"PARLEY_ADDR": freeAddr(t), "PARLEY_MCP_CONFIG": file, "PARLEY_ASR": "off"}
	cfg, err := parseConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	metrics := func() string {
		r, err := http.Get("http://" + cfg.Addr + "/metrics")
		if err != nil {
			return ""
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return string(b)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		m := metrics()
		if strings.Contains(m, "\nparley_mcp_servers_up 1\n") && strings.Contains(m, "\nparley_mcp_tools_offered 13\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the MCP server's tools were never offered; metrics:\n%s", grepLines(m, "parley_mcp_"))
		}
	}
	pid := childPid("mcp-server-everything")
	if pid == 0 {
		t.Fatal("no server-everything child process")
	}
	// A call made through the model (the offline responder, the default,
	// calls an echo tool when told to echo) reaches the server, and its
	// output comes back in the reply.
	echoThroughTheModel(t, cfg.Addr, "hello from parley")
	// The tools are wired into the front ends: a hello's server_tools is
	// checked against them.
	sel := dialWS(t, cfg.Addr)
	sel.Send(map[string]any{"type": "hello", "server_tools": []string{"teleport"}})
	if m := sel.Next(); m.Type != "error" || m.Code != "bad_request" || !strings.Contains(m.Message, `"teleport"`) {
		t.Fatalf("hello with an unknown server tool: %s", m.Raw)
	}
	sel.Send(map[string]any{"type": "hello", "server_tools": []string{"echo", "everything.*"}})
	if m := sel.Next(); m.Type != "session" {
		t.Fatalf("hello with known server tools: %s", m.Raw)
	}
	// The server dies: it is started again, and the next call works.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if p := childPid("mcp-server-everything"); p != 0 && p != pid && strings.Contains(metrics(), "\nparley_mcp_servers_up 1\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server-everything was not started again; metrics:\n%s", grepLines(metrics(), "parley_mcp_"))
		}
	}
	echoThroughTheModel(t, cfg.Addr, "and again")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return")
	}
	if childPid("mcp-server-everything") != 0 {
		t.Error("server-everything outlived the server")
	}

	if err := os.WriteFile(file, []byte(`{"mcpServers": {"both": {"command": "x", "url": "http://127.0.0.1/mcp"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), `mcp server "both"`) {
		t.Fatalf("run with a bad -mcp-config: %v; want an error naming the server", err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// echoThroughTheModel asks for an echo over a Parley socket and checks
// the tool call, the server's result and the reply.
func echoThroughTheModel(t *testing.T, addr, said string) {
	t.Helper()
	c := dialWS(t, addr)
	c.Hello()
	c.Send(map[string]any{"type": "text", "text": "echo " + said})
	var call, done string
	for _, m := range c.Until("reply.done", 1) {
		switch m.Type {
		case "tool.call":
			call = m.Raw
		case "tool.done":
			done = m.Raw
		case "error":
			t.Fatalf("error: %s", m.Raw)
		case "reply.done":
			if !strings.Contains(m.Text, "Echo: "+said) {
				t.Fatalf("reply %q: the tool's output is not in it", m.Text)
			}
		}
	}
	if !strings.Contains(call, `"name":"echo"`) || !strings.Contains(call, `"by":"server"`) || !strings.Contains(done, "Echo: "+said) {
		t.Fatalf("tool.call %s, tool.done %s", call, done)
	}
}

// childPid is the pid of a child process of this one with s in its
// command line, or 0.
func childPid(s string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 2 || f[0] == "Z" || f[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		if cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); strings.Contains(string(cmd), s) {
			pid, _ := strconv.Atoi(e.Name())
			return pid
		}
	}
	return 0
}
