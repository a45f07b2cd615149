package mcp

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	good := `{
  "mcpServers": {
    "files": {"command": "npx", "args": ["-y", "files-server"], "env": {"ROOT": "/srv"}, "cwd": "/tmp", "type": "stdio"},
    "search": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer x"}, "alwaysAllow": ["find"]},
    "old": {"command": "old-server", "disabled": true}
  },
  "inputs": []
}`
	servers, warnings, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []Server{
		{Name: "files", Command: "npx", Args: []string{"-y", "files-server"}, Env: map[string]string{"ROOT": "/srv"}, Cwd: "/tmp"},
		{Name: "search", URL: "https://mcp.example.com/mcp", Headers: map[string]string{"Authorization": "Bearer x"}},
	}
	if !reflect.DeepEqual(servers, want) {
		t.Errorf("servers = %+v\nwant %+v", servers, want)
	}
	wantWarnings := []string{`mcp server "old": disabled`, `mcp server "search": field "alwaysAllow" ignored`, `top-level field "inputs" ignored`}
	if !reflect.DeepEqual(warnings, wantWarnings) {
		t.Errorf("warnings = %q\nwant %q", warnings, wantWarnings)
	}

	for _, c := range []struct{ name, json, want string }{
		{"not JSON", "{\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\",}\n  }\n}", "line 3"},
		{"no mcpServers", `{"servers": {}}`, `no "mcpServers" object`},
		{"mcpServers not an object", `{"mcpServers": []}`, `"mcpServers" must be an object`},
		{"server not an object", `{"mcpServers": {"a": "x"}}`, `"mcpServers" must be an object`},
		{"both", `{"mcpServers": {"a": {"command": "x", "url": "http://127.0.0.1/mcp"}}}`, `mcp server "a": set "command" (stdio) or "url" (Streamable HTTP), not both`},
		{"neither", `{"mcpServers": {"a": {"comand": "x"}}}`, `mcp server "a": needs "command" (stdio) or "url"`},
		{"wrong type", `{"mcpServers": {"a": {"command": "x", "args": "-v"}}}`, `mcp server "a": field "args"`},
		{"sse", `{"mcpServers": {"a": {"type": "sse", "url": "http://127.0.0.1/sse"}}}`, `"sse" (the legacy HTTP+SSE transport) is not supported`},
		{"unknown type", `{"mcpServers": {"a": {"type": "ws", "url": "http://127.0.0.1/"}}}`, `"type" "ws"`},
		{"http type with a command", `{"mcpServers": {"a": {"type": "http", "command": "x"}}}`, `a command is a stdio server`},
		{"headers with a command", `{"mcpServers": {"a": {"command": "x", "headers": {"A": "b"}}}}`, `"headers" is for a "url" server`},
		{"env with a url", `{"mcpServers": {"a": {"url": "http://127.0.0.1/", "env": {"A": "b"}}}}`, `"args", "env" and "cwd" are for a "command" server`},
		{"not an http url", `{"mcpServers": {"a": {"url": "ftp://127.0.0.1/"}}}`, `want an http:// or https:// URL`},
		{"no name", `{"mcpServers": {"": {"command": "x"}}}`, `a server needs a name`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ParseConfig([]byte(c.json))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v; want one saying %q", err, c.want)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mcp.json")
	if _, _, err := LoadConfig(path); err == nil {
		t.Fatal("a missing file: no error")
	}
	if err := os.WriteFile(path, []byte(`{"mcpServers": {"a": {}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v; want one naming the file", err)
	}
}

// A zero Config means the documented defaults.
func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	want := Config{CallTimeout: 30 * time.Second, MaxOutput: 16 << 10, ConnectTimeout: 30 * time.Second,
		PingInterval: 15 * time.Second, MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second, StopTimeout: 2 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults = %+v\nwant %+v", got, want)
	}
}

func TestNewRefusesBadServers(t *testing.T) {
	for _, servers := range [][]Server{
		{{Name: "a", Command: "x"}, {Name: "a", Command: "y"}},
		{{Command: "x"}},
		{{Name: "a"}},
	} {
		if _, err := New(Config{Servers: servers}, nil); err == nil {
			t.Errorf("New(%+v): no error", servers)
		}
	}
}

func TestChildEnv(t *testing.T) {
	parley := map[string]string{"PATH": "/bin", "HOME": "/home/p", "LLM_API_KEY": "secret", "PARLEY_AUTH_SECRET": "s"}
	got := childEnv(func(k string) string { return parley[k] }, map[string]string{"HOME": "/srv", "B": "2", "A": "1"})
	want := []string{"PATH=/bin", "A=1", "B=2", "HOME=/srv"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("childEnv = %q; want %q", got, want)
	}
}
