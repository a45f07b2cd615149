package parley_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/internal/testkit/wsclient"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/openai"
)

// weatherTool is a tool as a client declares it in its hello.
var weatherTool = map[string]any{
	"type": "function", "name": "weather", "description": "The weather in a city",
	"parameters": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
}

// toolCall is a tool.call event as the client reads it.
type toolCall struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	Turn      int64  `json:"turn"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
	By        string `json:"by"`
}

func readToolCall(t *testing.T, c *client) toolCall {
	t.Helper()
	for {
		m := c.Next()
		if m.Type == "error" {
			t.Fatalf("error before the tool call: %s", m.Raw)
		}
		if m.Type == "tool.call" {
			var tc toolCall
			if err := json.Unmarshal([]byte(m.Raw), &tc); err != nil {
				t.Fatal(err)
			}
			return tc
		}
	}
}

func weatherModel() *fakes.Tooler {
	return &fakes.Tooler{Before: "Let me look. ", Calls: []llm.ToolCall{{Name: "weather", Arguments: `{"city":"Oslo"}`}}}
}

// A client's tool over the socket: tool.call, tool.result, the reply
// going on in the same turn.
func TestClientToolOverTheSocket(t *testing.T) {
	r := startReplica(t, newRedis(t), weatherModel(), replicaOpts{})
	c := dial(t, r.URL)
	c.Send(map[string]any{"type": "hello", "tools": []any{weatherTool}})
	if m := c.Next(); m.Type != "session" {
		t.Fatalf("hello: %s", m.Raw)
	}
	c.Send(map[string]any{"type": "text", "text": "weather in Oslo?"})
	tc := readToolCall(t, c)
	if tc.Name != "weather" || tc.By != "client" || tc.Arguments != `{"city":"Oslo"}` || tc.Turn != 1 || tc.CallID == "" || tc.ID == "" {
		t.Fatalf("tool.call %+v", tc)
	}
	c.Send(map[string]any{"type": "tool.result", "call_id": tc.CallID, "output": "sunny"})
	evs := c.Until("reply.done", 1)
	if done := evs[len(evs)-1]; done.Text != "Let me look. done: sunny" {
		t.Fatalf("reply.done %s", done.Raw)
	}
	// Answered twice, or a call nobody made: bad_request, and the socket goes on.
	for _, id := range []string{tc.CallID, "call_made_up"} {
		c.Send(map[string]any{"type": "tool.result", "call_id": id, "output": "x"})
		if m := c.Next(); m.Type != "error" || m.Code != "bad_request" || !strings.Contains(m.Message, "no tool call") {
			t.Fatalf("result for %s: %s", id, m.Raw)
		}
	}
	c.Send(map[string]any{"type": "tool.result", "output": "x"})
	if m := c.Next(); m.Code != "bad_request" || !strings.Contains(m.Message, "call_id") {
		t.Fatalf("a result without call_id: %s", m.Raw)
	}
}

func TestBadToolDeclarations(t *testing.T) {
	r := startReplica(t, newRedis(t), weatherModel(), replicaOpts{})
	for _, tc := range []struct {
		name  string
		tools any
		says  string
	}{
		{"not an array", map[string]any{"name": "x"}, `"tools" must be an array`},
		{"a bad name", []any{map[string]any{"type": "function", "name": "two words"}}, "name"},
		{"not a function", []any{map[string]any{"type": "retrieval", "name": "x"}}, `only "function" tools`},
		{"twice", []any{weatherTool, weatherTool}, "declared twice"},
		{"parameters not an object", []any{map[string]any{"name": "x", "parameters": "string"}}, "JSON Schema object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, r.URL)
			c.Send(map[string]any{"type": "hello", "tools": tc.tools})
			if m := c.Next(); m.Type != "error" || m.Code != "bad_request" || !strings.Contains(m.Message, tc.says) {
				t.Fatalf("got %s, want bad_request saying %q", m.Raw, tc.says)
			}
			c.Hello() // the socket goes on
		})
	}
}

// A client that resumes while its tool is pending learns of the call once
// (it is stored), answers it, and the reply comes.
func TestResumeWhileAToolIsPending(t *testing.T) {
	r := startReplica(t, newRedis(t), weatherModel(), replicaOpts{})
	c := dial(t, r.URL)
	c.Send(map[string]any{"type": "hello", "tools": []any{weatherTool}})
	s := c.Next()
	c.Send(map[string]any{"type": "text", "text": "weather?"})
	transcript := c.Until("transcript", 1)
	before := transcript[len(transcript)-1].ID
	tc := readToolCall(t, c)
	c.WS.Close()

	c2 := dial(t, r.URL)
	if m := c2.Resume(s.Session, s.Token, before); m.Type != "session" || !m.Resumed {
		t.Fatalf("resume: %s", m.Raw)
	}
	again := readToolCall(t, c2)
	if again.CallID != tc.CallID || again.ID != tc.ID {
		t.Fatalf("replayed %+v, want %+v", again, tc)
	}
	c2.Send(map[string]any{"type": "tool.result", "call_id": tc.CallID, "output": "hail"})
	calls := 0
	for _, m := range c2.Until("reply.done", 1) {
		if m.Type == "tool.call" {
			calls++
		}
	}
	if calls != 0 {
		t.Fatalf("the call came %d times more after the replay", calls)
	}
}

// The replica holding the turn dies while the client's tool runs; the
// client resumes on another replica and answers there: one reply.
func TestToolResultAfterTheReplicaWasKilled(t *testing.T) {
	rdb := newRedis(t)
	a := startReplica(t, rdb, weatherModel(), replicaOpts{})
	b := startReplica(t, rdb, weatherModel(), replicaOpts{})
	c := dial(t, a.URL)
	c.Send(map[string]any{"type": "hello", "tools": []any{weatherTool}})
	s := c.Next()
	c.Send(map[string]any{"type": "text", "text": "weather?"})
	tc := readToolCall(t, c)
	last := c.LastID
	a.kill()

	c2 := wsclient.Dial(t, b.URL)
	if m := c2.Resume(s.Session, s.Token, last); !m.Resumed {
		t.Fatalf("resume on b: %s", m.Raw)
	}
	c2.Send(map[string]any{"type": "tool.result", "call_id": tc.CallID, "output": "snow"})
	evs := c2.Until("reply.done", 1)
	if done := evs[len(evs)-1]; done.Text != "Let me look. done: snow" {
		t.Fatalf("reply.done %s", done.Raw)
	}
	c2.Send(map[string]any{"type": "text", "text": "thanks"})
	for _, m := range c2.Until("tool.call", 2) {
		if m.Type == "reply.done" && m.Turn == 1 {
			t.Fatalf("turn 1 answered twice: %s", m.Raw)
		}
	}
}

// fakeToolChat is an OpenAI-compatible chat completions server that, to a
// user's message, streams a sentence and then a weather call in fragments
// (its arguments split mid-token), and to the call's result, an answer
// with it. It keeps the request bodies it got.
type fakeToolChat struct {
	mu     sync.Mutex
	bodies []map[string]any
}

func (f *fakeToolChat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	_ = json.NewDecoder(r.Body).Decode(&req)
	f.mu.Lock()
	f.bodies = append(f.bodies, req)
	f.mu.Unlock()
	msgs, _ := req["messages"].([]any)
	last, _ := msgs[len(msgs)-1].(map[string]any)
	w.Header().Set("Content-Type", "text/event-stream")
	chunk := func(delta string, finish string) {
		fin := "null"
		if finish != "" {
			fin = strconv.Quote(finish)
		}
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n", delta, fin)
		w.(http.Flusher).Flush()
	}
	if last["role"] == "tool" {
		chunk(`{"content":"It is "}`, "")
		chunk(fmt.Sprintf(`{"content":%q}`, fmt.Sprint(last["content"])), "")
		chunk(`{}`, "stop")
	} else {
		chunk(`{"role":"assistant","content":"Let me check."}`, "")
		chunk(`{"tool_calls":[{"index":0,"id":"call_w1","type":"function","function":{"name":"weather","arguments":""}}]}`, "")
		chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]}`, "")
		chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Oslo\"}"}}]}`, "")
		chunk(`{}`, "tool_calls")
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// The whole path with an OpenAI-compatible model: its streamed call, the
// client's tool over the socket, the model called again with the result.
func TestClientToolWithAnOpenAIModel(t *testing.T) {
	up := &fakeToolChat{}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	model, err := openai.NewChat(openai.Config{BaseURL: srv.URL + "/v1", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, newRedis(t), model, replicaOpts{})
	c := dial(t, r.URL)
	c.Send(map[string]any{"type": "hello", "tools": []any{weatherTool}})
	c.Next()
	c.Send(map[string]any{"type": "text", "text": "weather in Oslo?"})
	tc := readToolCall(t, c)
	if tc.CallID != "call_w1" || tc.Name != "weather" || tc.Arguments != `{"city":"Oslo"}` {
		t.Fatalf("tool.call %+v", tc)
	}
	c.Send(map[string]any{"type": "tool.result", "call_id": tc.CallID, "output": "sunny"})
	evs := c.Until("reply.done", 1)
	if done := evs[len(evs)-1]; done.Text != "Let me check. It is sunny" {
		t.Fatalf("reply.done %q", done.Text)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	first, _ := json.Marshal(up.bodies[0]["tools"])
	second, _ := json.Marshal(up.bodies[1]["messages"])
	if !strings.Contains(string(first), `"name":"weather"`) ||
		!strings.Contains(string(second), `"tool_calls":[{"function":{"arguments":"{\"city\":\"Oslo\"}","name":"weather"},"id":"call_w1","type":"function"}]`) ||
		!strings.Contains(string(second), `{"content":"sunny","role":"tool","tool_call_id":"call_w1"}`) {
		t.Fatalf("upstream saw tools %s and messages %s", first, second)
	}
}
