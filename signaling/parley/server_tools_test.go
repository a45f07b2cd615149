package parley_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parleyhq/parley/internal/testkit/mcptest"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/openai"
	"github.com/parleyhq/parley/pipeline/tools"
)

const everythingTools = mcptest.Tools // the pinned server-everything's

// countedBox is a Toolbox that counts the calls it runs.
type countedBox struct {
	tools.Toolbox
	calls atomic.Int32
}

func (b *countedBox) Call(ctx context.Context, name string, args json.RawMessage) (string, error) {
	b.calls.Add(1)
	return b.Toolbox.Call(ctx, name, args)
}

// startEverything runs the pinned server-everything for the test
// (mcptest.Everything).
func startEverything(t *testing.T) *countedBox {
	t.Helper()
	m := mcptest.Everything(t, "../../pipeline/tools/mcp/testdata/npm", testLogger(t))
	return &countedBox{Toolbox: m}
}

// callingChat is an OpenAI-compatible upstream (real SSE) that calls the
// tool the user names ("call echo"), with arguments the tool takes, and
// then says its result. It keeps the tools of each request.
type callingChat struct {
	mu    sync.Mutex
	tools [][]string // per request, the names offered; nil: no "tools"
}

var toolArgs = map[string]string{"echo": `{"message":"hi"}`, "get-sum": `{"a":2,"b":3}`}

func (f *callingChat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Messages []struct{ Role, Content string }
		Tools    []struct{ Function struct{ Name string } }
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	var names []string
	for _, t := range req.Tools {
		names = append(names, t.Function.Name)
	}
	f.mu.Lock()
	f.tools = append(f.tools, names)
	f.mu.Unlock()
	last := req.Messages[len(req.Messages)-1]
	w.Header().Set("Content-Type", "text/event-stream")
	chunk := func(delta, finish string) {
		fin := "null"
		if finish != "" {
			fin = fmt.Sprintf("%q", finish)
		}
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n", delta, fin)
		w.(http.Flusher).Flush()
	}
	if name, ok := strings.CutPrefix(last.Content, "call "); ok && last.Role == "user" {
		args, _ := json.Marshal(toolArgs[name])
		chunk(fmt.Sprintf(`{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":%q,"arguments":%s}}]}`, name, args), "")
		chunk(`{}`, "tool_calls")
	} else {
		content, _ := json.Marshal("It says: " + last.Content)
		chunk(fmt.Sprintf(`{"role":"assistant","content":%s}`, content), "")
		chunk(`{}`, "stop")
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// offered is what the upstream's request n offered.
func (f *callingChat) offered(n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tools[n]
}

func (f *callingChat) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tools)
}

func newCallingModel(t *testing.T) (*callingChat, llm.LLM) {
	t.Helper()
	up := &callingChat{}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	model, err := openai.NewChat(openai.Config{BaseURL: srv.URL + "/v1", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	return up, model
}

func withTools(box tools.Toolbox) replicaOpts {
	var o replicaOpts
	o.engine.Toolbox, o.parley.Tools = box, box
	return o
}

// ask sends text and returns the turn's messages, up to its reply.done.
func ask(t *testing.T, c *client, turn int64, text string) (runs int, reply string) {
	t.Helper()
	c.Send(map[string]any{"type": "text", "text": text})
	for _, m := range c.Until("reply.done", turn) {
		switch m.Type {
		case "tool.call":
			runs++
		case "error":
			t.Fatalf("error: %s", m.Raw)
		case "reply.done":
			reply = m.Text
		}
	}
	return runs, reply
}

// A session that names one server tool is offered that one only; the
// model's call of another is refused as a made-up name would be, is not
// run, and the reply goes on. The default (no server_tools) offers all.
func TestServerToolsLimitedInHello(t *testing.T) {
	box := startEverything(t)
	up, model := newCallingModel(t)
	r := startReplica(t, newRedis(t), model, withTools(box))

	all := dial(t, r.URL)
	all.Hello()
	if runs, reply := ask(t, all, 1, "call get-sum"); runs != 1 || reply != "It says: The sum of 2 and 3 is 5." {
		t.Fatalf("the default: %d calls, reply %q", runs, reply)
	}
	if got := up.offered(0); len(got) != everythingTools || !slices.Contains(got, "get-sum") {
		t.Fatalf("the default offered %v", got)
	}

	c := dial(t, r.URL)
	c.Send(map[string]any{"type": "hello", "server_tools": []string{"echo"}})
	if m := c.Next(); m.Type != "session" {
		t.Fatalf("hello: %s", m.Raw)
	}
	n := up.requests()
	if runs, reply := ask(t, c, 1, "call echo"); runs != 1 || reply != "It says: Echo: hi" {
		t.Fatalf("echo: %d calls, reply %q", runs, reply)
	}
	if got := up.offered(n); !slices.Equal(got, []string{"echo"}) {
		t.Fatalf("the model was offered %v, want [echo]", got)
	}
	before := box.calls.Load()
	runs, reply := ask(t, c, 2, "call get-sum")
	if runs != 0 || box.calls.Load() != before || !strings.Contains(reply, `there is no tool named "get-sum"`) {
		t.Fatalf("a tool the session does not allow: %d tool.call, %d runs, reply %q", runs, box.calls.Load()-before, reply)
	}
}

// An empty server_tools offers none of them: the model's request has no
// tools; the server's name and ".*" offers all of its tools.
func TestServerToolsNoneOrAServer(t *testing.T) {
	box := startEverything(t)
	up, model := newCallingModel(t)
	r := startReplica(t, newRedis(t), model, withTools(box))
	for _, tc := range []struct {
		name string
		sel  []string
		want int
	}{
		{"none", []string{}, 0},
		{"the whole server", []string{"everything.*"}, everythingTools},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, r.URL)
			c.Send(map[string]any{"type": "hello", "server_tools": tc.sel})
			if m := c.Next(); m.Type != "session" {
				t.Fatalf("hello: %s", m.Raw)
			}
			n := up.requests()
			ask(t, c, 1, "hello there")
			if got := up.offered(n); len(got) != tc.want {
				t.Fatalf("offered %v, want %d tools", got, tc.want)
			}
		})
	}
}

// The selection is stored with the session: resumed on another replica
// (one Redis), without server_tools, the session keeps it.
func TestServerToolsSurviveAResumeOnAnotherReplica(t *testing.T) {
	box := startEverything(t)
	up, model := newCallingModel(t)
	rdb := newRedis(t)
	a := startReplica(t, rdb, model, withTools(box))
	b := startReplica(t, rdb, model, withTools(box))
	c := dial(t, a.URL)
	c.Send(map[string]any{"type": "hello", "server_tools": []string{"echo"}})
	s := c.Next()
	if s.Type != "session" {
		t.Fatalf("hello: %s", s.Raw)
	}
	c.WS.Close()
	a.kill()

	c2 := dial(t, b.URL)
	if m := c2.Resume(s.Session, s.Token, ""); m.Type != "session" || !m.Resumed {
		t.Fatalf("resume: %s", m.Raw)
	}
	if runs, reply := ask(t, c2, 1, "call get-sum"); runs != 0 || !strings.Contains(reply, `there is no tool named "get-sum"`) {
		t.Fatalf("after the resume: %d calls, reply %q", runs, reply)
	}
	if got := up.offered(0); !slices.Equal(got, []string{"echo"}) {
		t.Fatalf("replica b offered %v, want [echo]", got)
	}
}

// Bad server_tools: bad_request saying which, the hello refused, the
// socket going on; and a server with no MCP servers knows no names.
func TestBadServerTools(t *testing.T) {
	box := startEverything(t)
	_, model := newCallingModel(t)
	rdb := newRedis(t)
	r := startReplica(t, rdb, model, withTools(box))
	bare := startReplica(t, rdb, model, replicaOpts{})
	for _, tc := range []struct {
		name  string
		url   string
		value any
		says  []string
	}{
		{"an unknown tool", r.URL, []string{"echo", "teleport"}, []string{`unknown server tool "teleport"`, "servers: everything"}},
		{"an unknown server", r.URL, []string{"nowhere.*"}, []string{`"nowhere.*"`}},
		{"a server without .*", r.URL, []string{"everything"}, []string{`unknown server tool "everything"`}},
		{"not an array", r.URL, "echo", []string{`"server_tools" must be an array`}},
		{"no MCP servers", bare.URL, []string{"echo"}, []string{"no MCP servers configured", `"echo"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, tc.url)
			c.Send(map[string]any{"type": "hello", "server_tools": tc.value})
			m := c.Next()
			if m.Type != "error" || m.Code != "bad_request" {
				t.Fatalf("got %s, want bad_request", m.Raw)
			}
			for _, s := range tc.says {
				if !strings.Contains(m.Message, s) {
					t.Errorf("%q does not say %s", m.Message, s)
				}
			}
			c.Hello() // the socket goes on
		})
	}
	// No MCP servers, and an empty selection: nothing to refuse.
	c := dial(t, bare.URL)
	c.Send(map[string]any{"type": "hello", "server_tools": []string{}})
	if m := c.Next(); m.Type != "session" {
		t.Fatalf("an empty server_tools on a server with none: %s", m.Raw)
	}
}
