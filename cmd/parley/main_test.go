package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/testkit/redistest"
)

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// runWired runs the wired server on env until /readyz answers. Its
// addresses were free when picked, but another test process may take one
// before the server binds it (a redis-server of another package's test
// did): the server then fails at once, and is started again on others.
func runWired(t *testing.T, env map[string]string) (*config, context.CancelFunc, chan error, *http.Response) {
	t.Helper()
starts:
	for attempt := 1; ; attempt++ {
		cfg, err := parseConfig(nil, func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			select {
			case err := <-done:
				cancel()
				if attempt < 3 && strings.Contains(fmt.Sprint(err), "address already in use") {
					env["PARLEY_ADDR"], env["PARLEY_DEBUG_ADDR"] = freeAddr(t), freeAddr(t)
					continue starts
				}
				t.Fatalf("the server ended before it was ready: %v", err)
			default:
			}
			if resp, err := http.Get("http://" + cfg.Addr + "/readyz"); err == nil {
				return cfg, cancel, done, resp
			} else if time.Now().After(deadline) {
				cancel()
				t.Fatalf("server never came up: %v", err)
			}
		}
	}
}

// The wired server answers a typed turn with the offline responder, on the
// embedded Redis (the demo default) and on a real one, and drains when
// its context ends.
func TestServerEndToEnd(t *testing.T) {
	for _, mode := range []string{"embedded", "redis-server", "openai-chat"} {
		t.Run(mode, func(t *testing.T) {
			// A short drain for the test's end; pprof on, to test that it
			// serves on its own listener only.
			env := map[string]string{"PARLEY_ADDR": freeAddr(t), "PARLEY_DRAIN_TIMEOUT": "2s", "PARLEY_DEBUG_ADDR": freeAddr(t)}
			var upstreamSaw chan string
			switch mode {
			case "redis-server":
				env["REDIS_URL"] = redistest.Start(t).URL()
			case "openai-chat":
				env["REDIS_URL"] = redistest.Start(t).URL()
				upstreamSaw = make(chan string, 1)
				up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					var req struct {
						Model    string `json:"model"`
						Messages []struct{ Role, Content string }
					}
					_ = json.NewDecoder(r.Body).Decode(&req)
					upstreamSaw <- r.URL.Path + " " + r.Header.Get("Authorization") + " " + req.Model + " " + req.Messages[len(req.Messages)-1].Content
					w.Header().Set("Content-Type", "text/event-stream")
					for _, p := range []string{"It is ", "noon, ", "says the model."} {
						fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", p)
						w.(http.Flusher).Flush()
					}
					fmt.Fprint(w, "data: [DONE]\n\n")
				}))
				t.Cleanup(up.Close)
				env["LLM_BASE_URL"], env["LLM_MODEL"], env["LLM_API_KEY"] = up.URL+"/v1", "test-model", "sk-1"
			}
			cfg, cancel, done, resp := runWired(t, env)
			base := "http://" + cfg.Addr
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("/readyz: %s", resp.Status)
			}
			for _, path := range []string{"/healthz", "/metrics", "/", "debug:/debug/pprof/"} {
				url := base + path
				if p, ok := strings.CutPrefix(path, "debug:"); ok {
					// Profiling answers on its own listener only.
					url = "http://" + cfg.DebugAddr + p
					if r, err := http.Get(base + p); err == nil && r.StatusCode == 200 && strings.Contains(r.Header.Get("Content-Type"), "html") {
						body, _ := io.ReadAll(r.Body)
						r.Body.Close()
						if strings.Contains(string(body), "goroutine") {
							t.Fatal("pprof is served on the public listener")
						}
					}
				}
				r, err := http.Get(url)
				if err != nil || r.StatusCode != 200 {
					t.Fatalf("GET %s: %v %v", path, err, r)
				}
				r.Body.Close()
			}

			ws, _, err := websocket.DefaultDialer.Dial("ws://"+cfg.Addr+"/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			ws.WriteJSON(map[string]any{"type": "hello"})
			ws.WriteJSON(map[string]any{"type": "text", "text": "what time is it"})
			var reply string
			for reply == "" {
				_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
				var ev map[string]any
				if err := ws.ReadJSON(&ev); err != nil {
					t.Fatal(err)
				}
				if ev["type"] == "error" {
					t.Fatalf("error: %v", ev)
				}
				if ev["type"] == "reply.done" {
					reply, _ = ev["text"].(string)
				}
			}
			if !strings.HasPrefix(reply, "It is ") {
				t.Fatalf("the reply was %q", reply)
			}
			if upstreamSaw != nil {
				if got := <-upstreamSaw; got != "/v1/chat/completions Bearer sk-1 test-model what time is it" {
					t.Fatalf("the upstream saw %q", got)
				}
				if reply != "It is noon, says the model." {
					t.Fatalf("reply %q is not the upstream's", reply)
				}
			}

			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("run did not return after its context ended")
			}
			// The socket was closed with the shutdown reason.
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					if !websocket.IsCloseError(err, websocket.CloseServiceRestart) {
						t.Fatalf("want close 1012 shutdown, got %v", err)
					}
					break
				}
			}
		})
	}
}
