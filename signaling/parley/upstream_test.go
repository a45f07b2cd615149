package parley_test

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
	"github.com/parleyhq/parley/pipeline/openai"
	"github.com/parleyhq/parley/pipeline/turn"
)

// fakeVLLM is an OpenAI-compatible completions server that takes a list of
// prompts and streams "echo: <last line of the prompt>" for each, choices
// interleaved by index, as vLLM does. It records the batch sizes it saw.
type fakeVLLM struct {
	delay time.Duration // per streamed chunk
	mu    sync.Mutex
	sizes []int
}

func (f *fakeVLLM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Prompt []string `json:"prompt"`
		Stream bool     `json:"stream"`
	}
	if r.URL.Path != "/v1/completions" || json.NewDecoder(r.Body).Decode(&req) != nil || !req.Stream {
		http.Error(w, `{"error":{"message":"bad request"}}`, 400)
		return
	}
	f.mu.Lock()
	f.sizes = append(f.sizes, len(req.Prompt))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	words := make([][]string, len(req.Prompt))
	for i, p := range req.Prompt {
		lines := strings.Split(strings.TrimSpace(p), "\n")
		words[i] = strings.SplitAfter("echo: "+lines[len(lines)-1], " ")
	}
	for k := 0; ; k++ {
		more := false
		for i, ws := range words {
			if k < len(ws) {
				fin := "null"
				if k == len(ws)-1 {
					fin = `"stop"`
				}
				fmt.Fprintf(w, "data: {\"choices\":[{\"index\":%d,\"text\":%q,\"finish_reason\":%s}]}\n\n", i, ws[k], fin)
				more = true
			}
		}
		w.(http.Flusher).Flush()
		if !more {
			break
		}
		time.Sleep(f.delay)
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

func (f *fakeVLLM) batchSizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.sizes...)
}

// Batching through the real wire format: a vLLM-style server, the
// completions provider with a list of prompts, and concurrent sessions.
func TestBatchesFormAgainstACompletionsServer(t *testing.T) {
	fake := &fakeVLLM{delay: 10 * time.Millisecond}
	upstream := httptest.NewServer(fake)
	defer upstream.Close()
	model, err := openai.NewCompletions(openai.Config{BaseURL: upstream.URL + "/v1", Model: "m"},
		"{{range .}}{{.Content}}\n{{end}}", 4)
	if err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, newRedis(t), model, replicaOpts{engine: turn.Config{Slots: 2, Queue: 100}})

	c := dial(t, r.URL)
	c.Hello()
	c.Send(map[string]any{"type": "text", "text": "alone"})
	if evs := c.Until("reply.done", 1); evs[len(evs)-1].Text != "echo: alone" {
		t.Fatalf("reply %q", evs[len(evs)-1].Text)
	}
	if got := fake.batchSizes(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("an idle turn: batches %v, want [1]", got)
	}

	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, r.URL)
			c.Hello()
			c.Send(map[string]any{"type": "text", "text": fmt.Sprintf("load %d", i)})
			evs := c.Until("reply.done", 1)
			if got, want := evs[len(evs)-1].Text, fmt.Sprintf("echo: load %d", i); got != want {
				t.Errorf("session %d got %q, want %q", i, got, want)
			}
		}()
	}
	wg.Wait()
	max := 0
	for _, n := range fake.batchSizes() {
		if n > max {
			max = n
		}
	}
	if max < 2 || max > 4 {
		t.Fatalf("batches %v: want some larger than 1 and none over 4", fake.batchSizes())
	}
}

// failLLM fails its first call (after some text), then answers.
type failLLM struct {
	mu    sync.Mutex
	calls int
}

func (l *failLLM) MaxBatch() int { return 1 }

// CallsTools implements llm.LLM: this fake calls none.
func (l *failLLM) CallsTools() bool { return false }

func (l *failLLM) Stream(ctx context.Context, reqs []llm.Request, emit func(int, llm.Piece)) error {
	l.mu.Lock()
	l.calls++
	n := l.calls
	l.mu.Unlock()
	if n == 1 {
		emit(0, llm.Piece{Text: "I was about to"})
		return fmt.Errorf("llm upstream: 503 Service Unavailable: model is loading")
	}
	emit(0, llm.Piece{Text: "fine now"})
	return nil
}

func TestUpstreamErrorReachesTheClientAndTheSessionGoesOn(t *testing.T) {
	r := startReplica(t, newRedis(t), &failLLM{}, replicaOpts{})
	c := dial(t, r.URL)
	c.Hello()
	c.Send(map[string]any{"type": "text", "text": "first"})
	evs := c.Until("error", 0)
	e := evs[len(evs)-1]
	if e.Code != "upstream" || e.Turn != 1 || !strings.Contains(e.Message, "model is loading") {
		t.Fatalf("want an upstream error for turn 1 saying why, got %s", e.Raw)
	}
	c.Send(map[string]any{"type": "text", "text": "second"})
	evs = c.Until("reply.done", 2)
	if evs[len(evs)-1].Text != "fine now" {
		t.Fatalf("the session did not go on: %v", evs)
	}
}

// A long reply streamed token by token is stored in far fewer deltas.
func TestDeltasAreCoalesced(t *testing.T) {
	tokens := &tokenLLM{n: 300}
	r := startReplica(t, newRedis(t), tokens, replicaOpts{engine: turn.Config{Coalesce: time.Second}})
	c := dial(t, r.URL)
	c.Hello()
	c.Send(map[string]any{"type": "text", "text": "go on"})
	evs := c.Until("reply.done", 1)
	deltas := 0
	var text strings.Builder
	for _, ev := range evs {
		if ev.Type == "reply.delta" {
			deltas++
			text.WriteString(ev.Text)
		}
	}
	if want := strings.Repeat("la ", 300); text.String() != want || evs[len(evs)-1].Text != want {
		t.Fatalf("the deltas do not add up to the reply")
	}
	// The first piece goes at once, the rest waits for a clause end or the
	// interval: with no punctuation and a 1 s interval, a handful at most.
	if deltas > 5 {
		t.Fatalf("%d deltas for 300 tokens: not coalesced", deltas)
	}
}

type tokenLLM struct{ n int }

func (l *tokenLLM) MaxBatch() int { return 1 }

// CallsTools implements llm.LLM: this fake calls none.
func (l *tokenLLM) CallsTools() bool { return false }

func (l *tokenLLM) Stream(ctx context.Context, reqs []llm.Request, emit func(int, llm.Piece)) error {
	for i := 0; i < l.n; i++ {
		emit(0, llm.Piece{Text: "la "})
	}
	return nil
}
