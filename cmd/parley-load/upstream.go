package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// upstreamConfig shapes the fake OpenAI-compatible model server.
type upstreamConfig struct {
	TTFT      time.Duration // time to first token
	TPS       float64       // tokens per second after the first
	Words     int           // tokens per reply
	ErrorRate float64       // fraction of calls answered 500
	// The batch cost model of /v1/completions with a list of prompts: one
	// call costs BatchBase + BatchPer × prompts, at most BatchConc at once.
	BatchBase, BatchPer time.Duration
	BatchConc           int
	// Transcript is what /v1/audio/transcriptions answers, at once.
	Transcript string
}

// upstream is the fake model server: /v1/chat/completions (one
// conversation, streamed) and /v1/completions (a list of prompts, streamed,
// choices by index, with the batch cost model).
type upstream struct {
	cfg   upstreamConfig
	slots chan struct{}
	calls atomic.Int64
	items atomic.Int64
}

func newUpstream(cfg upstreamConfig) *upstream {
	if cfg.BatchConc <= 0 {
		cfg.BatchConc = 4
	}
	if cfg.Words <= 0 {
		cfg.Words = 20
	}
	return &upstream{cfg: cfg, slots: make(chan struct{}, cfg.BatchConc)}
}

// serve runs the fake on addr (loopback) until ctx ends.
func (u *upstream) serve(ctx context.Context, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/chat/completions", u.chat)
	mux.HandleFunc("/v1/completions", u.completions)
	mux.HandleFunc("/v1/audio/transcriptions", u.transcribe)
	mux.HandleFunc("/v1/audio/speech", u.speech)
	srv := &http.Server{Handler: mux}
	go func() { <-ctx.Done(); srv.Close() }() // ends with ctx
	go func() { _ = srv.Serve(ln) }()         // ends when srv closes
	return ln.Addr().String(), nil
}

func (u *upstream) fail(w http.ResponseWriter) bool {
	if u.cfg.ErrorRate > 0 && rand.Float64() < u.cfg.ErrorRate {
		http.Error(w, `{"error":{"message":"fake upstream error"}}`, 500)
		return true
	}
	return false
}

func (u *upstream) chat(w http.ResponseWriter, r *http.Request) {
	u.calls.Add(1)
	u.items.Add(1)
	if u.fail(w) {
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	if !sleep(r.Context(), u.cfg.TTFT) {
		return
	}
	f := w.(http.Flusher)
	for i := 0; i < u.cfg.Words; i++ {
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", word(i))
		f.Flush()
		if u.cfg.TPS > 0 && !sleep(r.Context(), time.Duration(float64(time.Second)/u.cfg.TPS)) {
			return
		}
	}
	fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
}

func (u *upstream) completions(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Prompt []string `json:"prompt"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Prompt) == 0 {
		http.Error(w, `{"error":{"message":"want a list of prompts"}}`, 400)
		return
	}
	u.calls.Add(1)
	u.items.Add(int64(len(req.Prompt)))
	if u.fail(w) {
		return
	}
	select { // the model server runs BatchConc calls at once
	case u.slots <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	defer func() { <-u.slots }()
	// The whole call's cost, then the replies at once: the cost model is
	// what batching is measured against.
	if !sleep(r.Context(), u.cfg.BatchBase+time.Duration(len(req.Prompt))*u.cfg.BatchPer) {
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	var b strings.Builder
	for k := 0; k < u.cfg.Words; k++ {
		for i := range req.Prompt {
			fin := "null"
			if k == u.cfg.Words-1 {
				fin = `"stop"`
			}
			fmt.Fprintf(&b, "data: {\"choices\":[{\"index\":%d,\"text\":%q,\"finish_reason\":%s}]}\n\n", i, word(k), fin)
		}
	}
	b.WriteString("data: [DONE]\n\n")
	_, _ = w.Write([]byte(b.String()))
}

// transcribe is a zero-cost recogniser: it reads the upload and answers
// the configured transcript.
func (u *upstream) transcribe(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 32<<20))
	w.Header().Set("Content-Type", "application/json")
	b, _ := json.Marshal(map[string]string{"text": u.cfg.Transcript})
	_, _ = w.Write(b)
}

// speech is a zero-cost synthesiser: 24 kHz 16-bit PCM, a quiet tone of
// 60 ms per character of input, written at once.
func (u *upstream) speech(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Input string `json:"input"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad JSON"}}`, 400)
		return
	}
	n := len(req.Input) * 24000 * 60 / 1000
	pcm := make([]byte, 2*n)
	for i := 0; i < n; i++ {
		v := int16(3000 * math.Sin(2*math.Pi*220*float64(i)/24000))
		pcm[2*i], pcm[2*i+1] = byte(v), byte(v>>8)
	}
	w.Header().Set("Content-Type", "audio/pcm")
	_, _ = w.Write(pcm)
}

func word(i int) string {
	if i%8 == 7 {
		return "word. "
	}
	return "word "
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
