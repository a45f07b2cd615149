package llm

import (
	"context"
)

// Message is one entry of a conversation as the model sees it.
type Message struct {
	Role    string `json:"role"` // RoleSystem, RoleUser, RoleAssistant or RoleTool
	Content string `json:"content"`
	// ToolCalls: an assistant message that asked for tools (its Content is
	// the text said before, possibly none).
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// ToolCallID: a tool message is the result of that call.
	ToolCallID string `json:"tool_call_id,omitempty"`
}

// Roles of a Message, as OpenAI-compatible servers name them.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Request is one conversation for the model, with the tools it may call.
type Request struct {
	Messages []Message
	Tools    []Tool
	// ToolChoice: "" or "auto" (the model decides), "none", "required",
	// or the name of a tool it must call.
	ToolChoice string
}

// Piece is the next part of a reply: text, or a whole tool call.
type Piece struct {
	Text string
	Call *ToolCall
}

// LLM streams replies for a batch of conversations. Providers (the
// OpenAI-compatible clients, the offline responder) implement it; the
// turn engine is its only caller.
type LLM interface {
	// MaxBatch is how many conversations one Stream call may carry. 1 means
	// the provider cannot batch and gets turns one by one.
	MaxBatch() int
	// CallsTools reports whether the provider passes tools to its model
	// and reports its calls; one that does not is given none.
	CallsTools() bool
	// Stream generates one reply per request. It calls emit(i, piece)
	// with each next piece of reply i, in order for each i, only from the
	// goroutine that called Stream and only before Stream returns. It
	// returns when every reply is complete, or with an error that applies
	// to the replies not yet complete. Stream must return promptly once
	// ctx is done. Safe for concurrent use.
	Stream(ctx context.Context, reqs []Request, emit func(i int, p Piece)) error
}

// Messages are the conversations of a batch of requests.
func Messages(reqs []Request) [][]Message {
	convs := make([][]Message, len(reqs))
	for i, r := range reqs {
		convs[i] = r.Messages
	}
	return convs
}
