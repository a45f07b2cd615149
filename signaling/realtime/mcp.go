package realtime

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/parleyhq/parley/pipeline/tools"
)

// mcpTool is an mcp entry of a session's tools, in OpenAI's shape:
// {"type": "mcp", "server_label", "allowed_tools", ...}. Parley runs no
// MCP server a client names by URL: server_label picks one of the
// servers configured on the server (-mcp-config), by its name there.
type mcpTool struct {
	ServerLabel     string          `json:"server_label"`
	ServerURL       string          `json:"server_url"`
	ConnectorID     string          `json:"connector_id"`
	AllowedTools    json.RawMessage `json:"allowed_tools"`
	RequireApproval json.RawMessage `json:"require_approval"`
}

// maxAllowed bounds the allowed_tools of one entry.
const maxAllowed = 256

// indexedMCP is an mcp entry and its place in the tools, for errors.
type indexedMCP struct {
	index int
	mcpTool
}

// selectServers turns a session's mcp entries into its selection of the
// server's tools: nil (all of them) when there is none; else the tools
// the entries allow, each server's all when it names none. Or it says
// what is wrong.
func selectServers(entries []indexedMCP, box tools.Toolbox) (*[]string, string) {
	if len(entries) == 0 {
		return nil, ""
	}
	sel := []string{}
	for _, e := range entries {
		names, bad := e.selection(box)
		if bad != "" {
			return nil, fmt.Sprintf("tool %d: %s", e.index, bad)
		}
		sel = append(sel, names...)
	}
	return &sel, ""
}

// selection is what one entry selects, or what is wrong with it.
func (e indexedMCP) selection(box tools.Toolbox) ([]string, string) {
	switch {
	case e.ServerURL != "" || e.ConnectorID != "":
		return nil, "Parley uses only the MCP servers configured on the server (-mcp-config): name one by its server_label, without server_url or connector_id"
	case e.ServerLabel == "":
		return nil, "an mcp tool needs the server_label of an MCP server configured on the server"
	case box == nil:
		return nil, fmt.Sprintf("server_label %q: this server has no MCP servers configured", clip(e.ServerLabel, 70))
	case !slices.Contains(box.Servers(), e.ServerLabel):
		return nil, fmt.Sprintf("server_label %q: no MCP server of that name is configured (servers: %s)", clip(e.ServerLabel, 70), strings.Join(box.Servers(), ", "))
	}
	if bad := approval(e.RequireApproval); bad != "" {
		return nil, bad
	}
	names, bad := allowedTools(e.AllowedTools)
	switch {
	case bad != "":
		return nil, bad
	case len(names) > maxAllowed:
		return nil, fmt.Sprintf("allowed_tools: %d names, at most %d", len(names), maxAllowed)
	}
	if names == nil {
		return []string{tools.AllOf(e.ServerLabel)}, ""
	}
	for _, n := range names {
		if box.Origin(n) != e.ServerLabel {
			return nil, fmt.Sprintf("allowed_tools: %q is not a tool of the MCP server %q", clip(n, 70), e.ServerLabel)
		}
	}
	return names, ""
}

// approval checks require_approval: Parley asks for none.
func approval(raw json.RawMessage) string {
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) == nil && s == "never" {
		return ""
	}
	return `require_approval: Parley runs the configured MCP servers' tools without asking for approval; use "never" or leave it out`
}

// allowedTools reads allowed_tools: a list of names, or {"tool_names":
// [...]}; nil when it is absent (every tool of the server).
func allowedTools(raw json.RawMessage) ([]string, string) {
	if isNull(raw) {
		return nil, ""
	}
	names := []string{}
	if json.Unmarshal(raw, &names) == nil {
		return names, ""
	}
	var filter struct {
		ToolNames *[]string `json:"tool_names"`
		ReadOnly  bool      `json:"read_only"`
	}
	switch {
	case json.Unmarshal(raw, &filter) != nil:
		return nil, `allowed_tools must be an array of tool names, or {"tool_names": [...]}`
	case filter.ReadOnly:
		return nil, "allowed_tools: read_only is not supported: name the tools in tool_names"
	case filter.ToolNames == nil:
		return nil, ""
	}
	return append(names, *filter.ToolNames...), ""
}
