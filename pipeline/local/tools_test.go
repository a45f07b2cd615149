package local

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/parleyhq/parley/pipeline/llm"
)

func tool(name, params string) llm.Tool {
	t := llm.Tool{Name: name, Description: "a tool"}
	if params != "" {
		t.Parameters = json.RawMessage(params)
	}
	return t
}

var (
	timeTZ      = tool("get_current_time", `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"timezone":{"type":"string"}},"required":["timezone"],"additionalProperties":false}`)
	clock       = tool("world_clock", "")
	weather     = tool("get_weather", `{"type":"object","properties":{"unit":{"type":"string"},"location":{"type":"string"}},"required":["location"]}`)
	weatherCity = tool("weather", `{"type":"object","properties":{"city":{"type":["string","null"]},"days":{"type":"integer"}}}`)
	echo        = tool("echo", `{"type":"object","properties":{"message":{"type":"string","description":"what to echo"}},"required":["message"]}`)
	echoCount   = tool("echo_times", `{"type":"object","properties":{"count":{"type":"integer"}}}`)
	orders      = tool("lookup_order", `{"type":"object","properties":{"order_id":{"type":"string"}},"required":["order_id"]}`)
)

// reply streams one request and returns its pieces.
func reply(t *testing.T, req llm.Request) []llm.Piece {
	t.Helper()
	var got []llm.Piece
	if err := newFixed().Stream(context.Background(), []llm.Request{req}, func(i int, p llm.Piece) { got = append(got, p) }); err != nil {
		t.Fatal(err)
	}
	return got
}

// split is a reply's text and its calls.
func split(ps []llm.Piece) (string, []llm.ToolCall) {
	var b strings.Builder
	var calls []llm.ToolCall
	for _, p := range ps {
		if p.Call != nil {
			calls = append(calls, *p.Call)
		}
		b.WriteString(p.Text)
	}
	return b.String(), calls
}

func TestCallsTheToolTheWordsAskFor(t *testing.T) {
	tests := []struct {
		said   string
		tools  []llm.Tool
		choice string
		want   string // "name args", or "" for no call
	}{
		{"What time is it?", []llm.Tool{timeTZ}, "", `get_current_time {}`},
		{"what time is it in Tokyo", []llm.Tool{timeTZ}, "", `get_current_time {"timezone":"Tokyo"}`},
		{"what's the time", []llm.Tool{orders, clock}, "", `world_clock {}`},
		{"what's the date today", []llm.Tool{clock}, "", `world_clock {}`},
		{"What's the weather in New York today?", []llm.Tool{weather}, "", `get_weather {"location":"New York"}`},
		{"will it rain", []llm.Tool{weather}, "", `get_weather {"location":"here"}`},
		{"the forecast in paris please", []llm.Tool{weatherCity}, "", `weather {"city":"paris"}`},
		{"temperature", []llm.Tool{clock, weather}, "", `get_weather {"location":"here"}`},
		{"echo hello there!", []llm.Tool{echo}, "", `echo {"message":"hello there!"}`},
		{"Echo: the time in Oslo", []llm.Tool{clock, echo}, "", `echo {"message":"the time in Oslo"}`},
		{"the weather and the time", []llm.Tool{clock, weather}, "", `get_weather {"location":"here"}`},
		{"echo hi", []llm.Tool{echoCount}, "", ""},            // no property to put it in
		{"say echo hi", []llm.Tool{echo}, "", ""},             // echo only leads
		{"what time is it", []llm.Tool{orders, echo}, "", ""}, // no time tool
		{"hello", []llm.Tool{clock, weather, echo}, "", ""},   // nothing asked
		{"what time is it", []llm.Tool{clock}, "none", ""},    // told not to
		{"what time is it", []llm.Tool{clock}, "auto", `world_clock {}`},
		{"hello", []llm.Tool{orders, clock}, "required", `lookup_order {}`},
		{"hello", []llm.Tool{clock, weather}, "get_weather", `get_weather {"location":"here"}`},
		{"what time is it", []llm.Tool{clock, weather}, "get_weather", `get_weather {"location":"here"}`},
		{"what time is it", []llm.Tool{clock}, "not_offered", `world_clock {}`}, // as auto
		{"hello", []llm.Tool{clock}, "not_offered", ""},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%s", tc.said, tc.choice), func(t *testing.T) {
			req := llm.Request{Messages: conv(tc.said), Tools: tc.tools, ToolChoice: tc.choice}
			got := reply(t, req)
			text, calls := split(got)
			if tc.want == "" {
				if len(calls) != 0 || text != newFixed().Reply(tc.said) {
					t.Fatalf("want the plain reply, got %q and calls %+v", text, calls)
				}
				return
			}
			name, args, _ := strings.Cut(tc.want, " ")
			want := []llm.Piece{{Text: "Let "}, {Text: "me "}, {Text: "check."}, {Call: &llm.ToolCall{ID: "call_1", Name: name, Arguments: args}}}
			if len(got) != len(want) || got[3].Call == nil {
				t.Fatalf("pieces %+v, want %+v", got, want)
			}
			for i := range 3 {
				if got[i] != want[i] {
					t.Fatalf("piece %d: %+v, want %+v", i, got[i], want[i])
				}
			}
			if *got[3].Call != *want[3].Call {
				t.Fatalf("call %+v, want %+v", *got[3].Call, *want[3].Call)
			}
		})
	}
}

func TestAnswersWithToolResults(t *testing.T) {
	callsFor := func(user string, calls []llm.ToolCall, results ...llm.Message) []llm.Message {
		m := append(conv(user), llm.Message{Role: llm.RoleAssistant, Content: "Let me check.", ToolCalls: calls})
		return append(m, results...)
	}
	result := func(id, out string) llm.Message {
		return llm.Message{Role: llm.RoleTool, ToolCallID: id, Content: out}
	}
	long := strings.Repeat("ab ", 200)
	tests := []struct {
		name string
		conv []llm.Message
		want string
	}{
		{"a time tool's answer", callsFor("what time is it", []llm.ToolCall{{ID: "call_1", Name: "world_clock", Arguments: "{}"}},
			result("call_1", "3:04 PM")), "It is 3:04 PM."},
		{"another tool's answer", callsFor("weather?", []llm.ToolCall{{ID: "call_1", Name: "get_weather", Arguments: `{"location":"here"}`}},
			result("call_1", "18 C and sunny.\n")), "The get_weather tool says: 18 C and sunny."},
		{"a time tool's error is not a time", callsFor("time", []llm.ToolCall{{ID: "call_1", Name: "world_clock", Arguments: "{}"}},
			result("call_1", "error: the tool timed out")), "The world_clock tool says: error: the tool timed out."},
		{"nothing returned", callsFor("echo", []llm.ToolCall{{ID: "call_1", Name: "echo", Arguments: "{}"}},
			result("call_1", "  ")), "The echo tool returned nothing."},
		{"two calls, results in another order", callsFor("time and weather", []llm.ToolCall{
			{ID: "call_1", Name: "get_weather", Arguments: "{}"}, {ID: "call_2", Name: "get_time", Arguments: "{}"}},
			result("call_2", "10:00"), result("call_1", "rain")), "The get_weather tool says: rain. It is 10:00."},
		{"a long output is cut", callsFor("echo x", []llm.ToolCall{{ID: "call_1", Name: "echo", Arguments: "{}"}},
			result("call_1", long)), "The echo tool says: " + strings.TrimSpace(long)[:300] + "…"},
		{"no result: the plain reply", callsFor("what time is it", []llm.ToolCall{{ID: "call_1", Name: "world_clock", Arguments: "{}"}}),
			"It is 3:04 PM."},
		{"a result for another call only", callsFor("help", []llm.ToolCall{{ID: "call_1", Name: "world_clock", Arguments: "{}"}},
			result("call_9", "3:04")), newFixed().Reply("help")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The tools are still offered: the responder must not call again.
			text, calls := split(reply(t, llm.Request{Messages: tc.conv, Tools: []llm.Tool{clock, weather, echo}}))
			if len(calls) != 0 {
				t.Fatalf("called again in the turn: %+v", calls)
			}
			if text != tc.want {
				t.Fatalf("answer %q, want %q", text, tc.want)
			}
		})
	}
}

func TestCallIDsCountTheConversationsCalls(t *testing.T) {
	history := []llm.Message{
		{Role: llm.RoleUser, Content: "what time is it and the weather"},
		{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "world_clock"}, {ID: "call_2", Name: "get_weather"}}},
		{Role: llm.RoleTool, ToolCallID: "call_1", Content: "3:04 PM"},
		{Role: llm.RoleTool, ToolCallID: "call_2", Content: "sunny"},
		{Role: llm.RoleAssistant, Content: "It is 3:04 PM. The get_weather tool says: sunny."},
		{Role: llm.RoleUser, Content: "and the time now?"}, // a new turn may call again
	}
	req := llm.Request{Messages: history, Tools: []llm.Tool{clock}}
	for range 2 { // the same every time
		_, calls := split(reply(t, req))
		if len(calls) != 1 || calls[0] != (llm.ToolCall{ID: "call_3", Name: "world_clock", Arguments: "{}"}) {
			t.Fatalf("calls %+v, want call_3 of world_clock", calls)
		}
	}
}

func TestBatchOfCallsAndReplies(t *testing.T) {
	reqs := []llm.Request{
		{Messages: conv("what time is it"), Tools: []llm.Tool{clock}},
		{Messages: conv("what time is it")},
		{Messages: conv("echo one two three four five"), Tools: []llm.Tool{echo}},
	}
	got := make([][]llm.Piece, len(reqs))
	if err := newFixed().Stream(context.Background(), reqs, func(i int, p llm.Piece) { got[i] = append(got[i], p) }); err != nil {
		t.Fatal(err)
	}
	text, calls := split(got[0])
	if text != "Let me check." || len(calls) != 1 || calls[0].Name != "world_clock" || got[0][len(got[0])-1].Call == nil {
		t.Fatalf("reply 0: %q %+v: want the call last", text, calls)
	}
	if text, calls := split(got[1]); text != "It is 3:04 PM." || len(calls) != 0 {
		t.Fatalf("reply 1 (no tools): %q %+v", text, calls)
	}
	if _, calls := split(got[2]); len(calls) != 1 || calls[0].Arguments != `{"message":"one two three four five"}` {
		t.Fatalf("reply 2: %+v", calls)
	}
}

func TestCallsTools(t *testing.T) {
	if !New(Config{}).CallsTools() {
		t.Fatal("the responder calls tools")
	}
}
