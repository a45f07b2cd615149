package openai

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/pipeline/llm"
)

const key = "sk-test-secret-key"

// sse writes each chunk as one flushed event, like a real server.
func sse(w http.ResponseWriter, chunks ...string) {
	w.Header().Set("Content-Type", "text/event-stream")
	f := w.(http.Flusher)
	for _, c := range chunks {
		fmt.Fprintf(w, "data: %s\n\n", c)
		f.Flush()
	}
}

func chatDelta(s string) string {
	b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": s}, "finish_reason": nil}}})
	return string(b)
}

func conv(user string) []llm.Message {
	return []llm.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: user}}
}

func TestChatStreams(t *testing.T) {
	var got struct {
		Model    string        `json:"model"`
		Messages []llm.Message `json:"messages"`
		Stream   bool          `json:"stream"`
	}
	var auth, path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth, path = r.Header.Get("Authorization"), r.URL.Path
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.Write([]byte(": keep-alive comment\n\n"))
		sse(w, chatDelta("Hel"), chatDelta("lo, "), chatDelta(""), chatDelta("world."),
			`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, "[DONE]")
	}))
	defer srv.Close()
	c, err := NewChat(Config{BaseURL: srv.URL + "/v1/", Model: "m1", APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	var pieces []string
	if err := c.Stream(context.Background(), requests(conv("hi")), text(func(i int, s string) { pieces = append(pieces, s) })); err != nil {
		t.Fatal(err)
	}
	if strings.Join(pieces, "") != "Hello, world." || len(pieces) != 3 {
		t.Fatalf("pieces %q", pieces)
	}
	if path != "/v1/chat/completions" || auth != "Bearer "+key || got.Model != "m1" || !got.Stream || len(got.Messages) != 2 || got.Messages[1].Content != "hi" {
		t.Fatalf("request: path %s auth %q body %+v", path, auth, got)
	}
}

// Lines past the pooled reader's buffer are gathered whole; one past
// maxLine is an error, not a reply cut short.
func TestChatStreamLineLengths(t *testing.T) {
	tests := []struct {
		name    string
		pieces  []string
		wantErr string
	}{
		{"short lines", []string{"a", "b"}, ""},
		{"a line many times the buffer", []string{strings.Repeat("x", 20<<10), "end", strings.Repeat("y", 5000)}, ""},
		{"a line past the bound", []string{strings.Repeat("z", maxLine)}, "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				chunks := make([]string, 0, len(tc.pieces)+2)
				for _, p := range tc.pieces {
					chunks = append(chunks, chatDelta(p))
				}
				sse(w, append(chunks, `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, "[DONE]")...)
			}))
			defer srv.Close()
			c, _ := NewChat(Config{BaseURL: srv.URL, Model: "m"})
			var got []string
			err := c.Stream(context.Background(), requests(conv("x")), text(func(_ int, s string) { got = append(got, s) }))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "|") != strings.Join(tc.pieces, "|") {
				t.Fatalf("got %d pieces (%d bytes), want %d", len(got), len(strings.Join(got, "")), len(tc.pieces))
			}
		})
	}
}

func TestCompletionsDemultiplexesABatch(t *testing.T) {
	var prompts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Prompt []string `json:"prompt"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		prompts = req.Prompt
		var chunks []string
		// Interleaved by index, as vLLM streams a batch.
		for k, words := range [][]string{{"A1 ", "B1 ", "C1 "}, {"A2", "B2", "C2"}} {
			for i, wd := range words {
				fin := "null"
				if k == 1 {
					fin = `"stop"`
				}
				chunks = append(chunks, fmt.Sprintf(`{"choices":[{"index":%d,"text":%q,"finish_reason":%s}]}`, i, wd, fin))
			}
		}
		sse(w, append(chunks, "[DONE]")...)
	}))
	defer srv.Close()
	c, err := NewCompletions(Config{BaseURL: srv.URL + "/v1", Model: "m"}, "{{range .}}[{{.Role}}] {{.Content}}\n{{end}}>", 3)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxBatch() != 3 {
		t.Fatalf("MaxBatch %d", c.MaxBatch())
	}
	got := make([]string, 3)
	convs := [][]llm.Message{conv("a"), conv("b"), conv("c")}
	if err := c.Stream(context.Background(), requests(convs...), text(func(i int, s string) { got[i] += s })); err != nil {
		t.Fatal(err)
	}
	if got[0] != "A1 A2" || got[1] != "B1 B2" || got[2] != "C1 C2" {
		t.Fatalf("demultiplexed: %q", got)
	}
	if len(prompts) != 3 || prompts[1] != "[system] be brief\n[user] b\n>" {
		t.Fatalf("prompts: %q", prompts)
	}
}

func TestUpstreamFailures(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"http 500 with an OpenAI error", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(500)
			w.Write([]byte(`{"error":{"message":"model overloaded","type":"server_error"}}`))
		}, "500 Internal Server Error: model overloaded"},
		{"http 404 plain", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no such model", 404)
		}, "404 Not Found: no such model"},
		{"stream cut without [DONE]", func(w http.ResponseWriter, r *http.Request) {
			sse(w, chatDelta("partial"))
		}, "stream ended early"},
		{"error object in the stream", func(w http.ResponseWriter, r *http.Request) {
			sse(w, chatDelta("a"), `{"error":{"message":"context length exceeded"}}`)
		}, "context length exceeded"},
		{"error object in a chunk that is no chunk", func(w http.ResponseWriter, r *http.Request) {
			sse(w, `{"error":{"message":"quota exceeded"},"choices":"none"}`)
		}, "error in stream: quota exceeded"},
		{"garbage chunk", func(w http.ResponseWriter, r *http.Request) {
			sse(w, "{not json")
		}, "bad stream chunk"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			c, _ := NewChat(Config{BaseURL: srv.URL, Model: "m", APIKey: key})
			err := c.Stream(context.Background(), requests(conv("x")), text(func(int, string) {}))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), key) {
				t.Fatalf("the API key leaked into the error: %v", err)
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		c, _ := NewChat(Config{BaseURL: "http://user:" + key + "@" + strings.TrimPrefix(url, "http://"), Model: "m", APIKey: key})
		err := c.Stream(context.Background(), requests(conv("x")), text(func(int, string) {}))
		if err == nil || strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestCancelWhileTheUpstreamStalls(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sse(w, chatDelta("first"))
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer once.Do(func() { close(release) })
	c, _ := NewChat(Config{BaseURL: srv.URL, Model: "m"})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- c.Stream(ctx, requests(conv("x")), text(func(int, string) { cancel() }))
	}()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("want an error after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stream did not return after cancel")
	}
}

func TestConfigChecks(t *testing.T) {
	for _, cfg := range []Config{{Model: "m"}, {BaseURL: "http://127.0.0.1:1"}, {BaseURL: "ftp://x", Model: "m"}} {
		if _, err := NewChat(cfg); err == nil {
			t.Errorf("NewChat(%+v): want an error", cfg)
		}
	}
	if _, err := NewCompletions(Config{BaseURL: "http://127.0.0.1:1", Model: "m"}, "{{.Bad", 0); err == nil {
		t.Error("a broken template must be refused")
	}
}

// requests makes a batch of requests of conversations, with no tools.
func requests(convs ...[]llm.Message) []llm.Request {
	reqs := make([]llm.Request, len(convs))
	for i, c := range convs {
		reqs[i] = llm.Request{Messages: c}
	}
	return reqs
}

// text takes the text pieces of a reply.
func text(f func(int, string)) func(int, llm.Piece) {
	return func(i int, p llm.Piece) {
		if p.Text != "" {
			f(i, p.Text)
		}
	}
}
