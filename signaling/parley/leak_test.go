//go:build !nospeech

package parley_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/pipeline/local"
)

// Every goroutine a socket, a call and a replica start ends with them.
func TestNoGoroutinesLeft(t *testing.T) {
	asr, v := offline(t) // loaded first: the decoder pool lives for the process
	rdb := newRedis(t)
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()

	r := startReplica(t, rdb, local.New(local.Config{}), replicaOpts{asr: asr, tts: v})
	for i := 0; i < 20; i++ {
		c := dial(t, r.URL)
		c.Hello()
		c.Send(map[string]any{"type": "text", "text": fmt.Sprintf("hello %d", i)})
		c.Until("reply.done", 1)
		c.WS.Close()
	}
	call := dial(t, r.URL)
	call.Send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "ws"}})
	call.Next()
	call.Send(map[string]any{"type": "text", "text": "what time is it"})
	call.Until("reply.done", 1)
	call.WS.Close()
	r.kill()

	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 { // slack: the HTTP client's idle connections
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), firstStacks(string(buf[:n]), 12))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func firstStacks(all string, n int) string {
	parts := strings.Split(all, "\n\n")
	if len(parts) > n {
		parts = parts[:n]
	}
	return strings.Join(parts, "\n\n")
}
