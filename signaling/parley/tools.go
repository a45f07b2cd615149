package parley

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/tools"
	"github.com/parleyhq/parley/pipeline/turn"
)

// maxTools bounds the tools a client may declare.
const maxTools = 64

var toolName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// wireTool is a tool as a client declares it: the OpenAI function-tool
// shape, flat ({"type":"function","name",…}).
type wireTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
}

// parseTools reads a hello's tools, or says what is wrong with them.
func parseTools(raw json.RawMessage) ([]llm.Tool, string) {
	var in []wireTool
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, `"tools" must be an array of {"type": "function", "name", "description", "parameters"}: ` + err.Error()
	}
	if len(in) > maxTools {
		return nil, fmt.Sprintf("%d tools: at most %d", len(in), maxTools)
	}
	seen := map[string]bool{}
	out := make([]llm.Tool, 0, len(in))
	for i, t := range in {
		switch {
		case t.Type != "" && t.Type != "function":
			return nil, fmt.Sprintf("tool %d: type %q: only \"function\" tools", i, truncate(t.Type, 20))
		case !toolName.MatchString(t.Name):
			return nil, fmt.Sprintf("tool %d: name %q: 1 to 64 letters, digits, '_' or '-'", i, truncate(t.Name, 70))
		case seen[t.Name]:
			return nil, fmt.Sprintf("tool %q is declared twice", t.Name)
		case len(t.Parameters) > 0 && !bytes.HasPrefix(bytes.TrimSpace(t.Parameters), []byte("{")):
			return nil, fmt.Sprintf("tool %q: parameters must be a JSON Schema object", t.Name)
		}
		seen[t.Name] = true
		out = append(out, llm.Tool{Name: t.Name, Description: t.Description, Parameters: t.Parameters})
	}
	return out, ""
}

// maxServerTools bounds the entries of a hello's server_tools.
const maxServerTools = 256

// helloTools reads a hello's tools and server_tools (nil for each that
// it leaves as the session has it), or says what is wrong with them.
func (c *conn) helloTools(m *inMsg) (tools []llm.Tool, serverTools *[]string, bad string) {
	if !isNull(m.Tools) {
		if tools, bad = parseTools(m.Tools); bad != "" {
			return nil, nil, bad
		}
	}
	if !isNull(m.ServerTools) {
		if serverTools, bad = parseServerTools(m.ServerTools, c.srv.cfg.Tools); bad != "" {
			return nil, nil, bad
		}
	}
	return tools, serverTools, ""
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

// parseServerTools reads a hello's server_tools: names of box's tools, or
// of its servers with ".*" (pipeline/tools), an empty list for none.
func parseServerTools(raw json.RawMessage, box tools.Toolbox) (*[]string, string) {
	names := []string{}
	if err := json.Unmarshal(raw, &names); err != nil {
		return nil, `"server_tools" must be an array of names: a server tool's name, or a server's name and ".*"`
	}
	if len(names) > maxServerTools {
		return nil, fmt.Sprintf("%d server_tools: at most %d", len(names), maxServerTools)
	}
	if names == nil {
		names = []string{}
	}
	if err := tools.Check(box, names); err != nil {
		return nil, "server_tools: " + err.Error()
	}
	return &names, ""
}

// setTools stores the client's tools, and its selection of the server's,
// with the session (nil leaves either as it was), so that any replica
// that answers its turns offers them.
func (c *conn) setTools(ctx context.Context, client []llm.Tool, serverTools *[]string) error {
	store := c.srv.sessions.Store
	set, err := store.Settings(ctx, c.sessionID)
	if err != nil {
		return err
	}
	if client != nil {
		set.Tools = client
	}
	if serverTools != nil {
		set.ServerTools = serverTools
	}
	return store.SetSettings(ctx, c.sessionID, set)
}

// toolResult hands the client's answer to one of its tool calls to the
// engine.
func (c *conn) toolResult(m *inMsg) {
	switch {
	case m.CallID == nil || *m.CallID == "":
		c.sendError(codeBadRequest, `a tool.result needs the "call_id" of the tool.call it answers`)
		return
	case m.Output == nil:
		c.sendError(codeBadRequest, `a tool.result needs an "output" string (the tool's result, for the model)`)
		return
	}
	ctx, cancel := context.WithTimeout(c.sock.Context(), 5*time.Second)
	defer cancel()
	err := c.srv.turns.ToolResult(ctx, c.sessionID, *m.CallID, *m.Output)
	switch {
	case errors.Is(err, turn.ErrUnknownCall):
		c.sendError(codeBadRequest, fmt.Sprintf("no tool call %q is waiting for a result: never made, answered already, timed out, or cancelled", truncate(*m.CallID, 60)))
	case errors.Is(err, session.ErrNotFound):
		c.sendError(codeExpired, "the session has expired")
	case err != nil:
		c.sock.Log().Error("tool result", "err", err)
		c.sendError(codeInternal, "the tool's result could not be stored; send it again")
	}
}
