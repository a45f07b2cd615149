//go:build !nospeech

package parley_test

import (
	"fmt"
	"testing"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/pipeline/local"
)

// Every goroutine a socket, a call and a replica start ends with them.
func TestNoGoroutinesLeft(t *testing.T) {
	asr, v := offline(t) // loaded first: the decoder pool lives for the process
	testkit.CheckGoroutines(t)
	rdb := newRedis(t)

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

	// What is left is the test kit's to find once the cleanups (Redis's
	// client and server) have run.
}
