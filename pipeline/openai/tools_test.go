package openai

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/parleyhq/parley/pipeline/llm"
)

// The chunks below are shaped as OpenAI streams them (and vLLM, llama.cpp
// and Ollama copy): every chunk has id, object, created, model and
// choices[0] with index, delta, logprobs and finish_reason.

func chunk(delta map[string]any, finish any) string {
	b, _ := json.Marshal(map[string]any{
		"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1760000000, "model": "m",
		"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}},
	})
	return string(b)
}

// callStart is the first fragment of a call: its index, id, name and
// (usually empty) first arguments. An empty id leaves the key out.
func callStart(index int, id, name, args string) string {
	tc := map[string]any{"index": index, "type": "function", "function": map[string]any{"name": name, "arguments": args}}
	if id != "" {
		tc["id"] = id
	}
	return chunk(map[string]any{"tool_calls": []any{tc}}, nil)
}

// callArgs is a later fragment: more arguments for the call at index.
func callArgs(index int, args string) string {
	return chunk(map[string]any{"tool_calls": []any{map[string]any{"index": index, "function": map[string]any{"arguments": args}}}}, nil)
}

func say(s string) string { return chunk(map[string]any{"content": s}, nil) }

func finish(reason string) string { return chunk(map[string]any{}, reason) }

// usage is the last chunk a server sends with stream_options.include_usage:
// no choices at all.
const usage = `{"id":"chatcmpl-7","object":"chat.completion.chunk","created":1760000000,"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}`

// upstream is a fake chat completions server that streams chunks and
// keeps the body of the last request.
type upstream struct {
	*httptest.Server
	mu    sync.Mutex
	body  []byte
	calls int
}

func newUpstream(t *testing.T, chunks ...string) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.body, u.calls = b, u.calls+1
		u.mu.Unlock()
		sse(w, chunks...)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) request(t *testing.T) map[string]any {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	var m map[string]any
	if err := json.Unmarshal(u.body, &m); err != nil {
		t.Fatalf("request body %q: %v", u.body, err)
	}
	return m
}

// stream runs one request against srv and returns its pieces.
func stream(t *testing.T, srv *upstream, req llm.Request) ([]llm.Piece, error) {
	t.Helper()
	c, err := NewChat(Config{BaseURL: srv.URL + "/v1", Model: "m", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	var got []llm.Piece
	err = c.Stream(context.Background(), []llm.Request{req}, func(i int, p llm.Piece) {
		if i != 0 {
			t.Errorf("piece for reply %d", i)
		}
		got = append(got, p)
	})
	return got, err
}

func txt(s string) llm.Piece { return llm.Piece{Text: s} }

func call(id, name, args string) llm.Piece {
	return llm.Piece{Call: &llm.ToolCall{ID: id, Name: name, Arguments: args}}
}

// generatedID is what a call gets when the server sent no id.
var generatedID = regexp.MustCompile(`^call_(\d+)_[0-9a-f]{12}$`)

// samePieces compares pieces exactly; a wanted id "call_N_*" stands for
// an id generated for index N.
func samePieces(t *testing.T, got, want []llm.Piece) {
	t.Helper()
	show := func(ps []llm.Piece) string {
		var b strings.Builder
		for _, p := range ps {
			if p.Call != nil {
				fmt.Fprintf(&b, "\n  call %s %s %s", p.Call.ID, p.Call.Name, p.Call.Arguments)
			} else {
				fmt.Fprintf(&b, "\n  text %q", p.Text)
			}
		}
		return b.String()
	}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		switch {
		case (g.Call == nil) != (w.Call == nil):
			ok = false
		case g.Call == nil:
			ok = g.Text == w.Text
		default:
			gc, wc := *g.Call, *w.Call
			if idx, gen := strings.CutSuffix(wc.ID, "_*"); gen {
				m := generatedID.FindStringSubmatch(gc.ID)
				ok = m != nil && "call_"+m[1] == idx
				gc.ID = wc.ID
			}
			ok = ok && g.Text == "" && gc == wc
		}
	}
	if !ok {
		t.Fatalf("pieces:%s\nwant:%s", show(got), show(want))
	}
}

func TestChatStreamsToolCalls(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   []llm.Piece
	}{
		{"text, then a call in fragments split mid-token", []string{
			chunk(map[string]any{"role": "assistant", "content": ""}, nil),
			say("Let me "), say("check."),
			callStart(0, "call_w1", "get_weather", ""),
			callArgs(0, `{"loca`), callArgs(0, `tion": "Pa`), callArgs(0, `ris, Fr\u00e`), callArgs(0, `9"}`),
			finish("tool_calls"), usage, "[DONE]",
		}, []llm.Piece{txt("Let me "), txt("check."), call("call_w1", "get_weather", `{"location": "Paris, Fr\u00e9"}`)}},

		{"two calls interleaved by index, emitted in index order", []string{
			callStart(1, "call_b", "get_time", ""),
			callStart(0, "call_a", "get_weather", `{"city":`),
			callArgs(1, `{"timezone"`),
			callArgs(0, ` "Oslo"`),
			callArgs(1, `: "Europe/Oslo"}`),
			callArgs(0, `}`),
			finish("tool_calls"), "[DONE]",
		}, []llm.Piece{call("call_a", "get_weather", `{"city": "Oslo"}`), call("call_b", "get_time", `{"timezone": "Europe/Oslo"}`)}},

		{"a call whose first fragment lacks an id gets one", []string{
			callStart(0, "", "get_time", ""), callArgs(0, "{}"), finish("tool_calls"), "[DONE]",
		}, []llm.Piece{call("call_0_*", "get_time", "{}")}},

		{"an index never started: arguments first, the name later", []string{
			callArgs(2, `{"q":`),
			callStart(2, "", "search", ` "go"}`),
			finish("tool_calls"), "[DONE]",
		}, []llm.Piece{call("call_2_*", "search", `{"q": "go"}`)}},

		{"a server that says stop after its calls", []string{
			say("On it."), callStart(0, "call_s", "echo", `{"message":"hi"}`), finish("stop"), "[DONE]",
		}, []llm.Piece{txt("On it."), call("call_s", "echo", `{"message":"hi"}`)}},

		{"calls and [DONE] without a finish_reason", []string{
			callStart(0, "call_d", "echo", `{}`), "[DONE]",
		}, []llm.Piece{call("call_d", "echo", `{}`)}},

		{"a finish without [DONE]", []string{
			callStart(0, "call_f", "echo", `{}`), finish("tool_calls"),
		}, []llm.Piece{call("call_f", "echo", `{}`)}},

		{"arguments that never become JSON are passed on as written", []string{
			callStart(0, "call_x", "echo", `{"message": "unterminated`), finish("tool_calls"), "[DONE]",
		}, []llm.Piece{call("call_x", "echo", `{"message": "unterminated`)}},

		{"fragments without an index: a new id starts a call", []string{
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_1","type":"function","function":{"name":"a","arguments":"{\"n\""}}]},"finish_reason":null}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":":1}"}}]},"finish_reason":null}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_2","type":"function","function":{"name":"b","arguments":"{}"}}]},"finish_reason":null}]}`,
			finish("tool_calls"), "[DONE]",
		}, []llm.Piece{call("call_1", "a", `{"n":1}`), call("call_2", "b", `{}`)}},

		{"every call numbered 0, each with its own id", []string{
			callStart(0, "call_p", "a", `{}`), callStart(0, "call_q", "b", `{"k":`), callArgs(0, `2}`), finish("tool_calls"), "[DONE]",
		}, []llm.Piece{call("call_p", "a", `{}`), call("call_q", "b", `{"k":2}`)}},

		{"arguments sent as an object, not a string", []string{
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_o","type":"function","function":{"name":"a","arguments":{"n":1}}}]},"finish_reason":null}]}`,
			finish("tool_calls"), "[DONE]",
		}, []llm.Piece{call("call_o", "a", `{"n":1}`)}},

		{"the id repeated in every fragment", []string{
			callStart(0, "call_r", "a", `{"n"`),
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_r","function":{"arguments":":3}"}}]},"finish_reason":null}]}`,
			finish("tool_calls"), "[DONE]",
		}, []llm.Piece{call("call_r", "a", `{"n":3}`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newUpstream(t, tc.chunks...)
			got, err := stream(t, srv, llm.Request{Messages: conv("weather?"), Tools: []llm.Tool{{Name: "get_weather"}}})
			if err != nil {
				t.Fatal(err)
			}
			samePieces(t, got, tc.want)
		})
	}
}

func TestChatToolCallStreamFailures(t *testing.T) {
	long := strings.Repeat("x", 64<<10)
	tests := []struct {
		name   string
		chunks []string
		want   string
		text   []llm.Piece // what was emitted before the error
	}{
		{"cut after a call's first fragment", []string{
			say("Checking."), callStart(0, "call_c", "get_weather", `{"loc`),
		}, "stream ended early, in a tool call", []llm.Piece{txt("Checking.")}},

		{"cut after a finish and a new call's fragment", []string{
			finish("stop"), callStart(0, "call_c", "get_weather", `{`),
		}, "stream ended early, in a tool call", nil},

		{"arguments over the cap", append(append([]string{callStart(0, "call_big", "echo", `{"message":"`)},
			callArgs(0, long), callArgs(0, long), callArgs(0, long), callArgs(0, long), callArgs(0, long)),
			finish("tool_calls"), "[DONE]"),
			`tool call "echo": arguments longer than 262144 bytes`, nil},

		{"too many calls", func() []string {
			var cs []string
			for i := range maxCalls + 1 {
				cs = append(cs, callStart(i, fmt.Sprintf("call_%d", i), "echo", "{}"))
			}
			return append(cs, finish("tool_calls"), "[DONE]")
		}(), "more than 64 tool calls in one response", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newUpstream(t, tc.chunks...)
			got, err := stream(t, srv, llm.Request{Messages: conv("x"), Tools: []llm.Tool{{Name: "echo"}}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			samePieces(t, got, tc.text) // no call is emitted half
		})
	}
}

// jsonEqual compares a decoded request part with the JSON OpenAI
// documents for it.
func jsonEqual(t *testing.T, what string, got any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad want: %v", what, err)
	}
	if !reflect.DeepEqual(got, w) {
		g, _ := json.Marshal(got)
		t.Fatalf("%s:\n got %s\nwant %s", what, g, want)
	}
}

// A draft-07 schema as the OpenAI Realtime agents SDK sends it.
const weatherSchema = `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object",` +
	`"properties":{"location":{"type":"string","description":"a city"},"unit":{"type":"string","enum":["c","f"]}},` +
	`"required":["location"],"additionalProperties":false}`

func TestChatSendsToolsAsOpenAIDocuments(t *testing.T) {
	tools := []llm.Tool{
		{Name: "get_weather", Description: "The weather now.", Parameters: json.RawMessage(weatherSchema)},
		{Name: "get_time"}, // no parameters
		{Name: "noop", Parameters: json.RawMessage(`{"$schema":"https://json-schema.org/draft/2020-12/schema"}`)},
		{Name: "empty", Parameters: json.RawMessage(` { } `)},
		{Name: "as_written", Parameters: json.RawMessage(`{"type":"object","properties":{"b":{"type":"integer"},"a":{"type":"string"}}}`)},
	}
	const wantTools = `[
		{"type":"function","function":{"name":"get_weather","description":"The weather now.","parameters":
			{"type":"object","properties":{"location":{"type":"string","description":"a city"},"unit":{"type":"string","enum":["c","f"]}},
			 "required":["location"],"additionalProperties":false}}},
		{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}},
		{"type":"function","function":{"name":"noop","parameters":{"type":"object","properties":{}}}},
		{"type":"function","function":{"name":"empty","parameters":{"type":"object","properties":{}}}},
		{"type":"function","function":{"name":"as_written","parameters":{"type":"object","properties":{"b":{"type":"integer"},"a":{"type":"string"}}}}}]`
	for _, tc := range []struct{ choice, want string }{
		{"", `"auto"`},
		{"auto", `"auto"`},
		{"none", `"none"`},
		{"required", `"required"`},
		{"get_weather", `{"type":"function","function":{"name":"get_weather"}}`},
	} {
		t.Run("tool_choice "+tc.choice, func(t *testing.T) {
			srv := newUpstream(t, say("ok"), finish("stop"), "[DONE]")
			if _, err := stream(t, srv, llm.Request{Messages: conv("hi"), Tools: tools, ToolChoice: tc.choice}); err != nil {
				t.Fatal(err)
			}
			body := srv.request(t)
			jsonEqual(t, "tools", body["tools"], wantTools)
			jsonEqual(t, "tool_choice", body["tool_choice"], tc.want)
			if !strings.Contains(string(srv.body), `"properties":{"b":{"type":"integer"},"a":{"type":"string"}}`) {
				t.Fatalf("a schema without $schema must go as written: %s", srv.body)
			}
		})
	}
	t.Run("no tools: neither key", func(t *testing.T) {
		srv := newUpstream(t, say("ok"), finish("stop"), "[DONE]")
		if _, err := stream(t, srv, llm.Request{Messages: conv("hi"), ToolChoice: "required"}); err != nil {
			t.Fatal(err)
		}
		body := srv.request(t)
		for _, k := range []string{"tools", "tool_choice"} {
			if _, ok := body[k]; ok {
				t.Errorf("the body has %q with no tools: %v", k, body)
			}
		}
		jsonEqual(t, "messages", body["messages"], `[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]`)
	})
	t.Run("parameters that are not an object", func(t *testing.T) {
		srv := newUpstream(t, "[DONE]")
		_, err := stream(t, srv, llm.Request{Messages: conv("hi"), Tools: []llm.Tool{{Name: "bad", Parameters: json.RawMessage(`["x"]`)}}})
		if err == nil || !strings.Contains(err.Error(), `tool "bad": parameters are not a JSON object`) {
			t.Fatalf("got %v", err)
		}
		if srv.calls != 0 {
			t.Fatal("the upstream was called with a bad tool")
		}
	})
}

func TestChatSendsToolHistoryAsOpenAIDocuments(t *testing.T) {
	history := []llm.Message{
		{Role: llm.RoleSystem, Content: "be brief"},
		{Role: llm.RoleUser, Content: "weather in Paris and the time?"},
		{Role: llm.RoleAssistant, Content: "Let me check.", ToolCalls: []llm.ToolCall{
			{ID: "call_a", Name: "get_weather", Arguments: `{"location":"Paris"}`},
			{ID: "call_b", Name: "get_time", Arguments: ""},
		}},
		{Role: llm.RoleTool, ToolCallID: "call_a", Content: "18 C, sunny"},
		{Role: llm.RoleTool, ToolCallID: "call_b", Content: "3:04 PM"},
		{Role: llm.RoleAssistant, Content: "18 degrees and sunny; it is 3:04 PM."},
		{Role: llm.RoleUser, Content: "and Oslo?"},
		{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{{ID: "call_c", Name: "get_weather", Arguments: `{"location": "Os`}}},
		{Role: llm.RoleTool, ToolCallID: "call_c", Content: "error: the arguments are not JSON"},
	}
	const want = `[
		{"role":"system","content":"be brief"},
		{"role":"user","content":"weather in Paris and the time?"},
		{"role":"assistant","content":"Let me check.","tool_calls":[
			{"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\"}"}},
			{"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
		{"role":"tool","tool_call_id":"call_a","content":"18 C, sunny"},
		{"role":"tool","tool_call_id":"call_b","content":"3:04 PM"},
		{"role":"assistant","content":"18 degrees and sunny; it is 3:04 PM."},
		{"role":"user","content":"and Oslo?"},
		{"role":"assistant","content":null,"tool_calls":[
			{"id":"call_c","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
		{"role":"tool","tool_call_id":"call_c","content":"error: the arguments are not JSON"}]`
	srv := newUpstream(t, say("ok"), finish("stop"), "[DONE]")
	if _, err := stream(t, srv, llm.Request{Messages: history, Tools: []llm.Tool{{Name: "get_weather"}, {Name: "get_time"}}}); err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, "messages", srv.request(t)["messages"], want)
}

func TestCompletionsIgnoresTools(t *testing.T) {
	srv := newUpstream(t, `{"choices":[{"index":0,"text":"fine","finish_reason":"stop"}]}`, "[DONE]")
	c, err := NewCompletions(Config{BaseURL: srv.URL, Model: "m"}, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if c.CallsTools() {
		t.Fatal("completions must not claim tools")
	}
	history := []llm.Message{
		{Role: llm.RoleUser, Content: "time?"},
		{Role: llm.RoleAssistant, Content: "Let me check.", ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "get_time", Arguments: "{}"}}},
		{Role: llm.RoleTool, ToolCallID: "call_1", Content: "3:04 PM"},
	}
	var got string
	req := llm.Request{Messages: history, Tools: []llm.Tool{{Name: "get_time"}}, ToolChoice: "required"}
	if err := c.Stream(context.Background(), []llm.Request{req}, text(func(_ int, s string) { got += s })); err != nil {
		t.Fatal(err)
	}
	body := srv.request(t)
	for _, k := range []string{"tools", "tool_choice"} {
		if _, ok := body[k]; ok {
			t.Errorf("completions sent %q", k)
		}
	}
	const prompt = "<|im_start|>user\ntime?<|im_end|>\n<|im_start|>assistant\nLet me check.<|im_end|>\n" +
		"<|im_start|>tool\n3:04 PM<|im_end|>\n<|im_start|>assistant\n"
	if p, _ := body["prompt"].([]any); len(p) != 1 || p[0] != prompt {
		t.Fatalf("prompt %q, want [%q]", body["prompt"], prompt)
	}
	if got != "fine" {
		t.Fatalf("reply %q", got)
	}
}

func TestChatCallsTools(t *testing.T) {
	c, err := NewChat(Config{BaseURL: "http://127.0.0.1:1", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.CallsTools() {
		t.Fatal("chat completions call tools")
	}
}
