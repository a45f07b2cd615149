package openai

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Failures before the answer starts are retried within the turn's
// deadline; what cannot be cured says what happened.
func TestChatRetries(t *testing.T) {
	ok := func(w http.ResponseWriter) { sse(w, chatDelta("Hi."), "[DONE]") }
	tests := []struct {
		name     string
		fail     []func(w http.ResponseWriter) // answers of the first calls; later calls succeed
		retries  int
		timeout  time.Duration
		wantErr  string // "" for success
		wantHits int
	}{
		{"500 then success", []func(http.ResponseWriter){status(500, "")}, 0, 0, "", 2},
		{"503 twice then success", []func(http.ResponseWriter){status(503, ""), status(503, "")}, 0, 0, "", 3},
		{"429 with Retry-After", []func(http.ResponseWriter){status(429, "1")}, 0, 0, "", 2},
		{"500 past the retries", []func(http.ResponseWriter){status(500, ""), status(500, ""), status(500, "")}, 0, 0, "500 Internal Server Error: boom", 3},
		{"retries off", []func(http.ResponseWriter){status(500, "")}, -1, 0, "500 Internal Server Error", 1},
		{"400 is not retried", []func(http.ResponseWriter){status(400, "")}, 0, 0, "400 Bad Request", 1},
		{"Retry-After past the deadline", []func(http.ResponseWriter){status(429, "30")}, 0, 2 * time.Second, "429 Too Many Requests", 1},
		{"stream cut in the middle", []func(http.ResponseWriter){func(w http.ResponseWriter) { sse(w, chatDelta("Half an ")) }}, 0, 0, "stream ended early", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(hits.Add(1))
				if n <= len(tc.fail) {
					tc.fail[n-1](w)
					return
				}
				ok(w)
			}))
			defer srv.Close()
			c, err := NewChat(Config{BaseURL: srv.URL, Model: "m", Retries: tc.retries, RetryBackoff: time.Millisecond, BreakerFailures: -1})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			var got strings.Builder
			err = c.Stream(ctx, requests(conv("hi")), text(func(_ int, s string) { got.WriteString(s) }))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("err %v", err)
			case tc.wantErr == "" && got.String() != "Hi.":
				t.Fatalf("reply %q", got.String())
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err %v, want one with %q", err, tc.wantErr)
			}
			if int(hits.Load()) != tc.wantHits {
				t.Fatalf("%d calls reached the upstream, want %d", hits.Load(), tc.wantHits)
			}
		})
	}
}

func status(code int, retryAfter string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(code)
		w.Write([]byte(`{"error":{"message":"boom"}}`))
	}
}

// An upstream that is not there: the error says so, after the retries.
func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, _ := NewChat(Config{BaseURL: "http://" + addr, Model: "m", RetryBackoff: time.Millisecond, BreakerFailures: -1})
	err = c.Stream(context.Background(), requests(conv("hi")), text(func(int, string) {}))
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err %v", err)
	}
}

// A slow trickle past the deadline ends with the deadline, not a hang.
func TestSlowTrickle(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 100; i++ {
			sse(w, chatDelta("word "))
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	defer srv.Close()
	c, _ := NewChat(Config{BaseURL: srv.URL, Model: "m", Timeout: 300 * time.Millisecond})
	var got strings.Builder
	err := c.Stream(context.Background(), requests(conv("hi")), text(func(_ int, s string) { got.WriteString(s) }))
	if !errors.Is(err, context.DeadlineExceeded) || got.Len() == 0 {
		t.Fatalf("err %v after %q", err, got.String())
	}
}

// The breaker opens after the configured failures in a row, refuses at
// once while open, lets one trial through after the cooldown, and closes
// when it succeeds.
func TestCircuitBreaker(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var hits atomic.Int32
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if !healthy.Load() {
			status(500, "")(w)
			return
		}
		sse(w, chatDelta("Hi."), "[DONE]")
	}))
	defer srv.Close()
	c, _ := NewChat(Config{BaseURL: srv.URL, Model: "m", Retries: -1, BreakerFailures: 3, BreakerCooldown: 10 * time.Second, Now: clock})
	call := func() error {
		return c.Stream(context.Background(), requests(conv("hi")), text(func(int, string) {}))
	}
	for i := 0; i < 3; i++ {
		if err := call(); err == nil || errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	err := call()
	if !errors.Is(err, ErrCircuitOpen) || !strings.Contains(err.Error(), "failed 3 times in a row") || hits.Load() != 3 {
		t.Fatalf("open circuit: %v after %d calls", err, hits.Load())
	}
	healthy.Store(true)
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	if err := call(); err != nil {
		t.Fatalf("the trial call after the cooldown: %v", err)
	}
	if err := call(); err != nil || hits.Load() != 5 {
		t.Fatalf("closed again: %v, %d calls", err, hits.Load())
	}
}
