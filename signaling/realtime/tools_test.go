package realtime_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/pipeline/llm"
)

var weatherTool = map[string]any{"type": "function", "name": "weather", "description": "The weather in a city",
	"parameters": map[string]any{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
		"properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []any{"city"}, "additionalProperties": false}}

// A function tool of the session: the model's call ends the response as
// a function_call item (in progress when added, completed when done,
// whole), the client's output lands and starts nothing, and the next
// response.create sees it.
func TestFunctionCall(t *testing.T) {
	model := &fakes.Tooler{Before: "Let me look. ", Calls: []llm.ToolCall{{Name: "weather", Arguments: `{"city":"Oslo"}`}}}
	s := start(t, model, opts{})
	c := connect(t, s)
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"type": "realtime", "tools": []any{weatherTool}, "tool_choice": "auto"}})
	_, upd := c.waitType(0, "session.updated")
	if tools, _ := upd.get("session.tools").([]any); len(tools) != 1 {
		t.Fatalf("session.updated tools %v", upd.get("session.tools"))
	}
	c.send(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": "weather in Oslo?"}}}})
	c.waitType(0, "conversation.item.done")
	before := len(c.all())
	c.send(map[string]any{"type": "response.create"})
	end, done := c.waitType(before, "response.done")
	evs := c.all()[before : end+1]
	want := []string{"response.created", "response.output_item.added", "conversation.item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done", "conversation.item.done",
		"response.output_item.added", "conversation.item.added", "response.function_call_arguments.delta", "response.function_call_arguments.done",
		"response.output_item.done", "conversation.item.done", "response.done"}
	if got := typesOf(evs); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v\nwant %v", got, want)
	}
	var callID string
	for _, e := range evs {
		switch {
		case e.typ() == "response.output_item.added" && e.str("item.type") == "function_call":
			if e.str("item.status") != "in_progress" {
				t.Fatalf("the call's added says %v: the SDK would run it twice", e)
			}
		case e.typ() == "response.output_item.done" && e.str("item.type") == "function_call":
			if e.str("item.status") != "completed" || e.str("item.name") != "weather" || e.str("item.arguments") != `{"city":"Oslo"}` || e.str("response_id") == "" {
				t.Fatalf("the call's done %v", e)
			}
			callID = e.str("item.call_id")
		case e.typ() == "response.function_call_arguments.done":
			if e.str("arguments") != `{"city":"Oslo"}` || e.str("name") != "weather" || e.str("call_id") == "" {
				t.Fatalf("arguments done %v", e)
			}
		}
	}
	if out, _ := done.get("response.output").([]any); len(out) != 2 || done.str("response.status") != "completed" {
		t.Fatalf("response.done %v", done)
	}
	if req := model.Requests()[0]; len(req.Tools) != 1 || req.Tools[0].Name != "weather" || req.ToolChoice != "auto" {
		t.Fatalf("the model was offered %+v (choice %q)", req.Tools, req.ToolChoice)
	}

	mark := len(c.all())
	c.send(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "function_call_output", "call_id": callID, "output": "sunny, 12 C"}})
	_, out := c.waitType(mark, "conversation.item.added")
	if out.str("item.type") != "function_call_output" || out.str("item.call_id") != callID {
		t.Fatalf("output item %v", out)
	}
	time.Sleep(300 * time.Millisecond) // nothing may start by itself; a response would begin at once
	for _, e := range c.all()[mark:] {
		if e.typ() == "response.created" || e.typ() == "error" {
			t.Fatalf("after the output, without response.create: %v", e)
		}
	}
	c.send(map[string]any{"type": "response.create"})
	_, next := c.waitType(mark, "response.done")
	if !containsText(next, "done: sunny, 12 C") {
		t.Fatalf("the next response %v", next)
	}
}

func containsText(e ev, s string) bool { return strings.Contains(jsonOf(e), s) }
