package openai

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/parleyhq/parley/pipeline/llm"
)

// The reference: the body as encoding/json writes it from the wire's
// types, which chatBody must match byte for byte.

type chatRequest struct {
	Model    string        `json:"model"`
	Messages []chatMessage `json:"messages"`
	// Tools and ToolChoice are left out when no tool is offered: some
	// servers (llama.cpp, older vLLM) refuse "tools": [].
	Tools       []chatTool `json:"tools,omitempty"`
	ToolChoice  any        `json:"tool_choice,omitempty"`
	Stream      bool       `json:"stream"`
	MaxTokens   int        `json:"max_tokens,omitempty"`
	Temperature *float64   `json:"temperature,omitempty"`
}

// chatMessage is a message as chat completions take it. Content is a
// pointer because an assistant message that only calls tools sends
// "content": null, as OpenAI documents it; every other message sends a
// string, even empty.
type chatMessage struct {
	Role       string         `json:"role"`
	Content    *string        `json:"content"`
	ToolCalls  []chatToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

type chatToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"` // "function"
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// chatMessages converts a conversation to the wire shape.
func chatMessages(conv []llm.Message) []chatMessage {
	out := make([]chatMessage, len(conv))
	for i, m := range conv {
		content := m.Content
		out[i] = chatMessage{Role: m.Role, Content: &content}
		switch {
		case m.Role == llm.RoleTool:
			out[i].ToolCallID = m.ToolCallID
		case len(m.ToolCalls) > 0:
			if content == "" {
				out[i].Content = nil
			}
			out[i].ToolCalls = make([]chatToolCall, len(m.ToolCalls))
			for k, c := range m.ToolCalls {
				out[i].ToolCalls[k] = chatToolCall{ID: c.ID, Type: "function",
					Function: chatFunction{Name: c.Name, Arguments: pastArguments(c.Arguments)}}
			}
		}
	}
	return out
}

// request is the body for one conversation.
func (c *Chat) request(r llm.Request) (chatRequest, error) {
	body := chatRequest{
		Model: c.cfg.Model, Messages: chatMessages(r.Messages), Stream: true, MaxTokens: c.cfg.MaxTokens, Temperature: c.cfg.Temperature,
	}
	if len(r.Tools) > 0 {
		tools, err := chatTools(r.Tools)
		if err != nil {
			return body, err
		}
		body.Tools, body.ToolChoice = tools, toolChoice(r.ToolChoice)
	}
	return body, nil
}

func marshalRequest(c *Chat, r llm.Request) ([]byte, error) {
	body, err := c.request(r)
	if err != nil {
		return nil, err
	}
	return json.Marshal(body)
}

func TestChatBodyIsMarshal(t *testing.T) {
	temp, tiny, huge := 0.7, 1e-7, 2.5e21
	tools := []llm.Tool{{Name: "get_weather", Description: "a <city>'s weather & more", Parameters: json.RawMessage(`{"$schema":"x","type":"object","properties":{"city":{"type":"string"}}}`)}}
	calls := []llm.ToolCall{{ID: "call_1", Name: "get_weather", Arguments: `{"city":"Paris"}`}, {ID: "call_2", Name: "f", Arguments: "not json"}}
	tests := []struct {
		name string
		cfg  Config
		req  llm.Request
	}{
		{"plain", Config{Model: "m"}, llm.Request{Messages: conv("hello")}},
		{"no messages", Config{Model: "m"}, llm.Request{}},
		{"escapes", Config{Model: "m\"1"}, llm.Request{Messages: conv("a \"quote\" \\ <b> & \n\r\t\b\f\x01\x1f \u2028\u2029 é 你好 😀 \xff\xe4\xbd end")}},
		{"options", Config{Model: "m", MaxTokens: 256, Temperature: &temp}, llm.Request{Messages: conv("x")}},
		{"small temperature", Config{Model: "m", Temperature: &tiny}, llm.Request{Messages: conv("x")}},
		{"large temperature", Config{Model: "m", Temperature: &huge, MaxTokens: -1}, llm.Request{Messages: conv("x")}},
		{"tool calls and results", Config{Model: "m"}, llm.Request{Messages: []llm.Message{
			{Role: "user", Content: "weather?"},
			{Role: "assistant", ToolCalls: calls},
			{Role: llm.RoleTool, ToolCallID: "call_1", Content: `{"temp":21}`},
			{Role: llm.RoleTool, Content: "no id"},
			{Role: "assistant", Content: "Let me see.", ToolCalls: calls[:1]},
			{Role: llm.RoleTool, ToolCallID: "x", ToolCalls: calls},
		}}},
		{"tools offered", Config{Model: "m"}, llm.Request{Messages: conv("x"), Tools: tools}},
		{"a tool named", Config{Model: "m"}, llm.Request{Messages: conv("x"), Tools: tools, ToolChoice: "get_weather"}},
		{"tools required", Config{Model: "m"}, llm.Request{Messages: conv("x"), Tools: tools, ToolChoice: "required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Chat{cfg: tc.cfg}
			want, err := marshalRequest(c, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.chatBody(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatalf("by hand:\n%s\nencoding/json:\n%s", got, want)
			}
		})
	}
}

func TestChatBodyRefusesWhatJSONCannotSay(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1)} {
		c := &Chat{cfg: Config{Model: "m", Temperature: &f}}
		if _, err := c.chatBody(llm.Request{Messages: conv("x")}); err == nil || !strings.Contains(err.Error(), "temperature") {
			t.Fatalf("temperature %v: %v", f, err)
		}
	}
	c := &Chat{cfg: Config{Model: "m"}}
	bad := llm.Request{Messages: conv("x"), Tools: []llm.Tool{{Name: "t", Parameters: json.RawMessage(`[1]`)}}}
	if _, err := c.chatBody(bad); err == nil {
		t.Fatal("a tool whose parameters are no object was sent")
	}
}

func FuzzChatBody(f *testing.F) {
	f.Add("hello", "user", "call_1", `{"a":1}`, 0.5)
	f.Add("a\"<\\>&\x00\u2028\xff", "tool", "", "x", 1e-9)
	f.Fuzz(func(t *testing.T, content, role, id, args string, temp float64) {
		if math.IsNaN(temp) || math.IsInf(temp, 0) {
			return
		}
		c := &Chat{cfg: Config{Model: content, Temperature: &temp}}
		r := llm.Request{Messages: []llm.Message{
			{Role: role, Content: content, ToolCallID: id},
			{Role: "assistant", ToolCalls: []llm.ToolCall{{ID: id, Name: content, Arguments: args}}},
			{Role: llm.RoleTool, ToolCallID: id, Content: args},
		}}
		want, err := marshalRequest(c, r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.chatBody(r)
		if err != nil || string(got) != string(want) {
			t.Fatalf("by hand (%v):\n%s\nencoding/json:\n%s", err, got, want)
		}
	})
}

func BenchmarkChatBody(b *testing.B) {
	c := &Chat{cfg: Config{Model: "llama3.2"}}
	var msgs []llm.Message
	for i := range 20 {
		role := []string{"user", "assistant"}[i%2]
		msgs = append(msgs, llm.Message{Role: role, Content: "What a fine day it is today, isn't it? Tell me about the weather."})
	}
	r := llm.Request{Messages: append([]llm.Message{{Role: "system", Content: "You are a helpful voice assistant. Be brief."}}, msgs...)}
	b.Run("by hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = c.chatBody(r)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = marshalRequest(c, r)
		}
	})
}
