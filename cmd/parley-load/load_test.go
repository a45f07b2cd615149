package main

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := summarize(d, 0)
	if s.P50 != 50 || s.P95 != 95 || s.P99 != 99 || s.Max != 100 || s.N != 100 {
		t.Fatalf("%+v", s)
	}
	if s := summarize(d, 10*time.Millisecond); s.P50 != 40 {
		t.Fatalf("minus the upstream's time: p50 %v", s.P50)
	}
	if s := summarize(nil, 0); s.N != 0 {
		t.Fatalf("empty: %+v", s)
	}
}

// The fake upstream speaks the real formats: chat deltas and, for a list
// of prompts, one choice per prompt by index, each ending with stop.
func TestFakeUpstreamFormats(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := newUpstream(upstreamConfig{Words: 3, BatchConc: 2}).serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lines := func(path, body string) []string {
		resp, err := http.Post("http://"+addr+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "data: ") {
				out = append(out, strings.TrimPrefix(l, "data: "))
			}
		}
		return out
	}
	chat := lines("/v1/chat/completions", `{"model":"m","messages":[],"stream":true}`)
	if len(chat) != 5 || chat[len(chat)-1] != "[DONE]" || !strings.Contains(chat[0], `"delta":{"content":"word "}`) {
		t.Fatalf("chat stream: %q", chat)
	}
	comp := lines("/v1/completions", `{"model":"m","prompt":["a","b"],"stream":true}`)
	stops := map[string]bool{}
	for _, l := range comp {
		if strings.Contains(l, `"finish_reason":"stop"`) {
			stops[l[strings.Index(l, `"index":`):strings.Index(l, `,"text"`)]] = true
		}
	}
	if len(comp) != 7 || comp[6] != "[DONE]" || len(stops) != 2 {
		t.Fatalf("completions stream: %q", comp)
	}
}
