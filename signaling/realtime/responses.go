package realtime

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/turn"
)

// responseOptions is what a response.create's response may set.
type responseOptions struct {
	Instructions *string         `json:"instructions"`
	Modalities   []string        `json:"output_modalities"`
	BetaMods     []string        `json:"modalities"`
	Tools        json.RawMessage `json:"tools"`
	ToolChoice   json.RawMessage `json:"tool_choice"`
	tools        *[]llm.Tool
	choice       string
}

func (o responseOptions) opts() turn.ResponseOptions {
	var r turn.ResponseOptions
	if o.Instructions != nil {
		r.Instructions = *o.Instructions
	}
	r.Tools, r.ToolChoice = o.tools, o.choice
	return r
}

// parseResponse reads a response.create's response (absent: all the
// session's), or says what is wrong.
func parseResponse(raw json.RawMessage) (o responseOptions, param, bad string) {
	if isNull(raw) {
		return o, "", ""
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return o, "response", "response must be an object: " + err.Error()
	}
	if len(o.Tools) > 0 && !isNull(o.Tools) {
		tools, servers, bad := parseTools(o.Tools)
		if bad != "" {
			return o, "response.tools", bad
		}
		if len(servers) > 0 {
			return o, "response.tools", fmt.Sprintf("tool %d: mcp tools are chosen for the session (session.update), not for one response", servers[0].index)
		}
		o.tools = &tools
	}
	if c, bad := toolChoice(o.ToolChoice); bad != "" {
		return o, "response.tool_choice", bad
	} else {
		o.choice = c
	}
	return o, "", ""
}

// spoken says whether the response's output is audio: its own
// modalities, else the session's.
func (o responseOptions) spoken(session bool) (bool, string) {
	mods := o.Modalities
	if mods == nil {
		mods = o.BetaMods
	}
	if mods == nil {
		return session, ""
	}
	audio := false
	for _, m := range mods {
		switch m {
		case "audio":
			audio = true
		case "text":
		default:
			return false, fmt.Sprintf("modality %q: use audio or text", clip(m, 20))
		}
	}
	return audio, ""
}

// askedFor records a response asked for on this connection, unless it
// is done already (its events came first).
func (c *conn) askedFor(turn int64, spoken bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.resps[turn]; r != nil {
		if !r.done {
			c.asked[turn] = true
		}
		return
	}
	c.asked[turn], c.modes[turn] = true, spoken
}

// responseCreate asks for a response to the conversation as it stands:
// spoken through the call, or text. One at a time, as OpenAI's service
// does; a refusal (busy, rate limited) is an error that names this
// event, which the agents SDK waits for.
func (c *conn) responseCreate(ev *clientEvent) {
	o, param, bad := parseResponse(ev.Response)
	c.mu.Lock()
	sessionAudio, active := c.conf.audio(), c.activeLocked()
	c.mu.Unlock()
	spoken := false
	if bad == "" {
		if spoken, bad = o.spoken(sessionAudio); bad != "" {
			param = "response.output_modalities"
		}
	}
	switch {
	case bad != "":
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", param, bad)
		return
	case active:
		c.fail(ev.EventID, "invalid_request_error", "conversation_already_has_active_response", "",
			"Conversation already has an active response in progress. Wait until the response is finished before creating a new one.")
		return
	}
	ctx, cancel := c.ctx()
	defer cancel()
	opts := o.opts()
	var n int64
	var err error
	if spoken {
		cl := c.ensureCall(ev.EventID)
		if cl == nil {
			return
		}
		n, err = cl.Respond(ctx, func(ctx context.Context, written func(int64, string)) (int64, error) {
			return c.srv.turns.CreateSpokenResponse(ctx, c.sessionID, opts, written)
		})
	} else {
		n, err = c.srv.turns.CreateResponse(ctx, c.sessionID, opts)
	}
	if err != nil {
		c.turnError(ev.EventID, err)
		return
	}
	c.askedFor(n, spoken)
}

// responseCancel cuts the response under way; with none, an error
// (response_cancel_not_active), and the session goes on.
func (c *conn) responseCancel(ev *clientEvent) {
	c.mu.Lock()
	active, cl := c.activeLocked(), c.call
	if active {
		c.cutBy = "client_cancelled"
	}
	c.mu.Unlock()
	if !active {
		c.fail(ev.EventID, "invalid_request_error", "response_cancel_not_active", "", "Cancellation failed: no active response found")
		return
	}
	ctx, cancel := c.ctx()
	defer cancel()
	if cl != nil {
		cl.Interrupt(ctx) // stops its audio at once, and the turn
	}
	if err := c.srv.turns.Interrupt(ctx, c.sessionID); err != nil {
		c.sock.Log().Warn("interrupt failed", "err", err)
		c.sendError(ev.EventID, "server_error", "internal", "", "the response could not be cancelled")
	}
}

// wireTool is a tool as a session or a response declares it: a function
// tool, or an MCP server (mcp.go).
type wireTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	mcpTool
}

const maxTools = 64

// parseTools reads function tools, and the mcp entries as they are (mcp.go
// reads them); other types are not served here and are left out. Or it
// says what is wrong.
func parseTools(raw json.RawMessage) ([]llm.Tool, []indexedMCP, string) {
	if isNull(raw) {
		return nil, nil, ""
	}
	var in []wireTool
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, nil, "tools must be an array of {\"type\": \"function\", \"name\", \"description\", \"parameters\"}"
	}
	if len(in) > maxTools {
		return nil, nil, fmt.Sprintf("%d tools: at most %d", len(in), maxTools)
	}
	out := []llm.Tool{}
	var servers []indexedMCP
	seen := map[string]bool{}
	for i, t := range in {
		if t.Type == "mcp" {
			servers = append(servers, indexedMCP{i, t.mcpTool})
			continue
		}
		if t.Type != "" && t.Type != "function" {
			continue
		}
		switch {
		case !validName(t.Name):
			return nil, nil, fmt.Sprintf("tool %d: name %q: 1 to 64 letters, digits, '_' or '-'", i, clip(t.Name, 70))
		case seen[t.Name]:
			return nil, nil, fmt.Sprintf("tool %q is declared twice", t.Name)
		}
		seen[t.Name] = true
		if isNull(t.Parameters) {
			t.Parameters = nil
		}
		out = append(out, llm.Tool{Name: t.Name, Description: t.Description, Parameters: t.Parameters})
	}
	return out, servers, ""
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}
