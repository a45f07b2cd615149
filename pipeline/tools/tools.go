package tools

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/parleyhq/parley/pipeline/llm"
)

// Toolbox is a set of tools that the server runs itself.
type Toolbox interface {
	// Tools are the tools offered now; the set may change (a server
	// restarted, its list changed).
	Tools() []llm.Tool
	// Call runs the named tool with arguments (a JSON object) and returns
	// its output, as text for the model. An error is the tool's failure,
	// told to the model as its result; ErrUnknown when no such tool is
	// offered.
	Call(ctx context.Context, name string, arguments json.RawMessage) (string, error)
	// Servers are the names of the servers the tools come from (an MCP
	// configuration's), whether they are up or not.
	Servers() []string
	// Origin is the name of the server that offers the tool of that name
	// (the model's name of it), or offered it since the start: its server
	// may be restarting. "" when no server knows the name.
	Origin(name string) string
}

// ErrUnknown: no tool of that name is offered.
var ErrUnknown = errors.New("tools: no such tool")
