package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/parleyhq/parley/pipeline/tools"
)

// goServer is an MCP server written here with the SDK, served over
// Streamable HTTP on 127.0.0.1.
type goServer struct {
	mcp     *sdk.Server
	http    *httptest.Server
	auth    atomic.Value // the last Authorization header seen
	handler http.Handler
}

func newGoServer(t *testing.T, addr string) *goServer {
	t.Helper()
	g := &goServer{mcp: sdk.NewServer(&sdk.Implementation{Name: "parley-test", Version: "v0"}, nil)}
	greet := &sdk.Tool{Name: "greet", Description: "Greets someone.", InputSchema: json.RawMessage(
		`{"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": false}`)}
	g.mcp.AddTool(greet, func(_ context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		var args struct{ Name string }
		if err := json.Unmarshal(req.Params.Arguments, &args); err != nil {
			return nil, err
		}
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "Hello, " + args.Name + "!"}}}, nil
	})
	mcpHandler := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return g.mcp }, nil)
	g.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.auth.Store(r.Header.Get("Authorization"))
		mcpHandler.ServeHTTP(w, r)
	})
	g.start(t, addr)
	return g
}

// start serves on addr ("" for any free port on 127.0.0.1).
func (g *goServer) start(t *testing.T, addr string) {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old listener's port may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	g.http = httptest.NewUnstartedServer(g.handler)
	g.http.Listener = ln
	g.http.Start()
	t.Cleanup(g.stop)
}

// stop stops serving, and ends the server's sessions, which the SDK's
// handler keeps until their client goes (it has no idle timeout).
func (g *goServer) stop() {
	g.http.CloseClientConnections()
	g.http.Close()
	for ss := range g.mcp.Sessions() {
		ss.Close()
	}
}

func (g *goServer) url() string { return g.http.URL + "/mcp" }

func TestHTTPServerTools(t *testing.T) {
	noLeaks(t)
	g := newGoServer(t, "")
	m := run(t, Config{Servers: []Server{{Name: "go", URL: g.url(), Headers: map[string]string{"Authorization": "Bearer test-token"}}}})
	waitFor(t, "greet offered", func() bool { return offers(m, "greet") })
	ctx := context.Background()
	out, err := m.Call(ctx, "greet", json.RawMessage(`{"name": "Ada"}`))
	if err != nil || out != "Hello, Ada!" {
		t.Fatalf("greet = %q, %v", out, err)
	}
	if got := g.auth.Load(); got != "Bearer test-token" {
		t.Errorf("the server saw Authorization %q; want the configured header", got)
	}
	if _, err := m.Call(ctx, "greet", json.RawMessage(`{"name": "Ada", "title": "Countess"}`)); !errors.Is(err, ErrInvalidArguments) {
		t.Errorf("an argument the schema forbids: %v; want ErrInvalidArguments", err)
	}

	// Tools added and removed at run time reach the model's list.
	g.mcp.AddTool(&sdk.Tool{Name: "fail", InputSchema: json.RawMessage(`{"type": "object"}`)},
		func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: "the disk is full"}}}, nil
		})
	waitFor(t, "fail offered after list_changed", func() bool { return offers(m, "fail") })
	if _, err := m.Call(ctx, "fail", nil); err == nil || !strings.Contains(err.Error(), "the disk is full") {
		t.Errorf("a tool's isError result: %v; want an error with its text", err)
	}
	g.mcp.RemoveTools("greet")
	waitFor(t, "greet withdrawn after list_changed", func() bool { return !offers(m, "greet") })
	if _, err := m.Call(ctx, "greet", json.RawMessage(`{"name": "Ada"}`)); !errors.Is(err, tools.ErrUnknown) {
		t.Errorf("a removed tool: %v; want tools.ErrUnknown", err)
	}
}

// The HTTP server goes away: a ping finds it, its tools are withdrawn,
// and it is reached again when it is back.
func TestHTTPServerRestart(t *testing.T) {
	noLeaks(t)
	g := newGoServer(t, "")
	addr := g.http.Listener.Addr().String()
	// Pings every 200ms (the default is 15s), so that the test does not
	// wait long for the loss to be seen.
	m := run(t, Config{PingInterval: 200 * time.Millisecond, Servers: []Server{{Name: "go", URL: g.url()}}})
	waitFor(t, "greet offered", func() bool { return offers(m, "greet") })
	g.stop()
	waitFor(t, "greet withdrawn", func() bool { return len(m.Tools()) == 0 })
	g.start(t, addr)
	waitFor(t, "greet back", func() bool { return offers(m, "greet") })
	if out, err := m.Call(context.Background(), "greet", json.RawMessage(`{"name": "again"}`)); err != nil || out != "Hello, again!" {
		t.Fatalf("greet after the restart = %q, %v", out, err)
	}
}
