package llm

import (
	"context"
)

// Message is one entry of a conversation as the model sees it.
type Message struct {
	Role    string `json:"role"` // RoleSystem, RoleUser or RoleAssistant
	Content string `json:"content"`
}

// Roles of a Message, as OpenAI-compatible servers name them.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// LLM streams replies for a batch of conversations. Providers (the
// OpenAI-compatible clients, the offline responder) implement it; the
// turn engine is its only caller.
type LLM interface {
	// MaxBatch is how many conversations one Stream call may carry. 1 means
	// the provider cannot batch and gets turns one by one.
	MaxBatch() int
	// Stream generates one reply per conversation in convs. It calls
	// emit(i, text) with each next piece of reply i, in order for each i,
	// only from the goroutine that called Stream and only before Stream
	// returns. It returns when every reply is complete, or with an error
	// that applies to the replies not yet complete. Stream must return
	// promptly once ctx is done. Safe for concurrent use.
	Stream(ctx context.Context, convs [][]Message, emit func(i int, text string)) error
}
