package llm

import "encoding/json"

// RoleTool is the role of a message that carries a tool's result.
const RoleTool = "tool"

// Tool is a function the model may call: its name, what it does, and the
// JSON Schema of its arguments (the OpenAI function-tool shape).
type Tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// ToolCall is the model asking for a tool to be run, whole: a provider
// that streams a call in fragments joins them first.
type ToolCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"` // JSON, as the model wrote it (it may not be valid)
}
