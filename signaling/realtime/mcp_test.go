package realtime_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/internal/testkit/mcptest"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/tools/mcp"
)

const everythingTools = mcptest.Tools // the pinned server-everything's

// startEverything runs the pinned server-everything for the test
// (mcptest.Everything).
func startEverything(t *testing.T) *mcp.Manager {
	t.Helper()
	m := mcptest.Everything(t, "../../pipeline/tools/mcp/testdata/npm", testLogger())
	return m
}

func withMCP(m *mcp.Manager) opts {
	var o opts
	o.engine.Toolbox, o.realtime.Tools = m, m
	return o
}

// respond adds a user message, asks for a response and returns its
// response.done.
func respond(t *testing.T, c *rt, text string) ev {
	t.Helper()
	from := len(c.all())
	c.send(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": text}}}})
	c.waitType(from, "conversation.item.done")
	c.send(map[string]any{"type": "response.create", "response": map[string]any{"output_modalities": []string{"text"}}})
	_, done := c.waitType(from, "response.done")
	return done
}

func offeredNames(req llm.Request) []string {
	names := []string{}
	for _, t := range req.Tools {
		names = append(names, t.Name)
	}
	return names
}

// The session's mcp tools choose the configured MCP server by its
// server_label, and its allowed_tools; with none, every server tool is
// offered (the default). A call of a tool the session does not allow is
// refused as a made-up one is, and the response goes on.
func TestMCPToolsOfASession(t *testing.T) {
	m := startEverything(t)
	// Any: the model calls both tools, offered or not.
	model := &fakes.Tooler{Any: true, Calls: []llm.ToolCall{{Name: "echo", Arguments: `{"message":"hi"}`}, {Name: "get-sum", Arguments: `{"a":2,"b":3}`}}}
	s := start(t, model, withMCP(m))
	mcpEntry := func(allowed any) map[string]any {
		e := map[string]any{"type": "mcp", "server_label": "everything", "require_approval": "never"}
		if allowed != nil {
			e["allowed_tools"] = allowed
		}
		return e
	}
	for _, tc := range []struct {
		name    string
		tools   []any // the session's; nil: no session.update
		offered int   // the server's tools offered
		only    string
		refused bool // get-sum refused
	}{
		{"the default: all", nil, everythingTools, "", false},
		{"function tools only: all of the server's too", []any{weatherTool}, everythingTools, "", false},
		{"the server, all its tools", []any{mcpEntry(nil)}, everythingTools, "", false},
		{"one allowed tool", []any{weatherTool, mcpEntry([]string{"echo"})}, 1, "echo", true},
		{"a tool filter", []any{mcpEntry(map[string]any{"tool_names": []string{"echo"}})}, 1, "echo", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, s)
			if tc.tools != nil {
				c.send(map[string]any{"type": "session.update", "session": map[string]any{"type": "realtime", "tools": tc.tools}})
				_, upd := c.waitType(0, "session.updated")
				if got, _ := upd.get("session.tools").([]any); len(got) != len(tc.tools) {
					t.Fatalf("session.updated echoes tools %v", upd.get("session.tools"))
				}
			}
			n := len(model.Requests())
			done := respond(t, c, "use the tools")
			names := offeredNames(model.Requests()[n])
			server := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == "weather" })
			if len(server) != tc.offered || tc.only != "" && server[0] != tc.only {
				t.Fatalf("the model was offered %v", names)
			}
			if !containsText(done, "Echo: hi") {
				t.Fatalf("the echo's output is not in the response: %v", done)
			}
			refused := containsText(done, `there is no tool named \"get-sum\"`)
			summed := containsText(done, "The sum of 2 and 3 is 5.")
			if refused != tc.refused || summed == tc.refused {
				t.Fatalf("get-sum refused %v, run %v: %v", refused, summed, done)
			}
		})
	}
	// An empty allowed_tools: none of the server's tools.
	c := connect(t, s)
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"type": "realtime", "tools": []any{weatherTool, mcpEntry([]string{})}}})
	c.waitType(0, "session.updated")
	n := len(model.Requests())
	respond(t, c, "use the tools")
	if names := offeredNames(model.Requests()[n]); !slices.Equal(names, []string{"weather"}) {
		t.Fatalf("with allowed_tools [], the model was offered %v", names)
	}
}

// mcp entries Parley does not serve: an error naming the tool, and the
// session's tools as they were.
func TestBadMCPTools(t *testing.T) {
	m := startEverything(t)
	model := &fakes.Tooler{Calls: []llm.ToolCall{{Name: "echo", Arguments: `{"message":"hi"}`}}}
	s := start(t, model, withMCP(m))
	bare := start(t, model, opts{})
	entry := func(kv ...any) map[string]any {
		e := map[string]any{"type": "mcp", "server_label": "everything"}
		for i := 0; i < len(kv); i += 2 {
			e[kv[i].(string)] = kv[i+1]
		}
		return e
	}
	c := connect(t, s)
	for _, tc := range []struct {
		name  string
		entry map[string]any
		says  string
	}{
		{"a server by URL", entry("server_url", "https://mcp.example.com/mcp"), "Parley uses only the MCP servers configured on the server"},
		{"a connector", entry("connector_id", "connector_gmail"), "Parley uses only the MCP servers configured"},
		{"no label", entry("server_label", ""), "needs the server_label"},
		{"an unknown label", entry("server_label", "nowhere"), `server_label "nowhere": no MCP server of that name is configured (servers: everything)`},
		{"a tool it does not have", entry("allowed_tools", []string{"echo", "teleport"}), `"teleport" is not a tool of the MCP server "everything"`},
		{"approval", entry("require_approval", "always"), "without asking for approval"},
		{"read_only", entry("allowed_tools", map[string]any{"read_only": true}), "read_only is not supported"},
		{"allowed_tools of the wrong type", entry("allowed_tools", "echo"), "allowed_tools must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := c.send(map[string]any{"type": "session.update", "session": map[string]any{"type": "realtime", "tools": []any{weatherTool, tc.entry}}})
			e := c.errorFor(id)
			if e.str("error.code") != "invalid_value" || e.str("error.param") != "session.tools" || !strings.HasPrefix(e.str("error.message"), "tool 1: ") || !strings.Contains(e.str("error.message"), tc.says) {
				t.Fatalf("error %v; want it to say %q", e, tc.says)
			}
		})
	}
	// Per response: mcp entries are the session's.
	id := c.send(map[string]any{"type": "response.create", "response": map[string]any{"tools": []any{entry()}}})
	if e := c.errorFor(id); e.str("error.param") != "response.tools" || !strings.Contains(e.str("error.message"), "chosen for the session") {
		t.Fatalf("response.create with an mcp tool: %v", e)
	}
	// The session goes on, its tools as they were: all of the server's.
	n := len(model.Requests())
	respond(t, c, "echo")
	if names := offeredNames(model.Requests()[n]); len(names) != everythingTools {
		t.Fatalf("after the refused updates, the model was offered %v", names)
	}
	// A server with no MCP servers knows no label.
	b := connect(t, bare)
	id = b.send(map[string]any{"type": "session.update", "session": map[string]any{"type": "realtime", "tools": []any{entry()}}})
	if e := b.errorFor(id); !strings.Contains(e.str("error.message"), "this server has no MCP servers configured") {
		t.Fatalf("an mcp tool on a server without MCP servers: %v", e)
	}
}
