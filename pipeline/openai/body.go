package openai

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/parleyhq/parley/internal/jsonbytes"
	"github.com/parleyhq/parley/pipeline/llm"
)

// A turn's request body is mostly its history's text. chatBody writes
// it by hand into one buffer sized for it, the bytes json.Marshal would
// write for chatRequest (TestChatBodyIsMarshal), without the copy of the
// conversation chatMessages makes nor the reflection; the tools, rare
// and nested, go through encoding/json.

// chatBody is the JSON body of a chat completions call for r.
func (c *Chat) chatBody(r llm.Request) ([]byte, error) {
	b := make([]byte, 0, bodySize(c.cfg.Model, r.Messages))
	b = append(b, `{"model":`...)
	b = jsonbytes.AppendString(b, c.cfg.Model)
	b = append(b, `,"messages":`...)
	b = appendMessages(b, r.Messages)
	if len(r.Tools) > 0 {
		tools, err := chatTools(r.Tools)
		if err != nil {
			return nil, err
		}
		if b, err = appendJSON(b, `,"tools":`, tools); err != nil {
			return nil, err
		}
		if tc := toolChoice(r.ToolChoice); tc != nil {
			if b, err = appendJSON(b, `,"tool_choice":`, tc); err != nil {
				return nil, err
			}
		}
	}
	b = append(b, `,"stream":true`...)
	if c.cfg.MaxTokens != 0 {
		b = append(b, `,"max_tokens":`...)
		b = strconv.AppendInt(b, int64(c.cfg.MaxTokens), 10)
	}
	if t := c.cfg.Temperature; t != nil {
		var err error
		if b, err = jsonbytes.AppendFloat(append(b, `,"temperature":`...), *t); err != nil {
			return nil, fmt.Errorf("openai: temperature: %w", err)
		}
	}
	return append(b, '}'), nil
}

// bodySize is a little more than the body takes without tools: escapes
// are few.
func bodySize(model string, conv []llm.Message) int {
	n := 64 + len(model)
	for _, m := range conv {
		n += 48 + len(m.Role) + len(m.Content) + len(m.ToolCallID)
		for _, c := range m.ToolCalls {
			n += 80 + len(c.ID) + len(c.Name) + len(c.Arguments)
		}
	}
	return n + n/16
}

// appendMessages writes conv as chatMessages(conv) marshals.
func appendMessages(b []byte, conv []llm.Message) []byte {
	b = append(b, '[')
	for i, m := range conv {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"role":`...)
		b = jsonbytes.AppendString(b, m.Role)
		b = append(b, `,"content":`...)
		calls := m.Role != llm.RoleTool && len(m.ToolCalls) > 0
		if calls && m.Content == "" {
			b = append(b, "null"...) // a message that only calls tools
		} else {
			b = jsonbytes.AppendString(b, m.Content)
		}
		if calls {
			b = append(b, `,"tool_calls":[`...)
			for k, c := range m.ToolCalls {
				if k > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"id":`...)
				b = jsonbytes.AppendString(b, c.ID)
				b = append(b, `,"type":"function","function":{"name":`...)
				b = jsonbytes.AppendString(b, c.Name)
				b = append(b, `,"arguments":`...)
				b = jsonbytes.AppendString(b, pastArguments(c.Arguments))
				b = append(b, "}}"...)
			}
			b = append(b, ']')
		}
		if m.Role == llm.RoleTool && m.ToolCallID != "" {
			b = append(b, `,"tool_call_id":`...)
			b = jsonbytes.AppendString(b, m.ToolCallID)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendJSON(b []byte, key string, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(append(b, key...), j...), nil
}
