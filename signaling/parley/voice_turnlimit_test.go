//go:build !nospeech

package parley_test

import (
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/pipeline/session"
)

// A call past the session's turn cap: the spoken turn gets the error
// turn_limit (and no reply), and the call and the socket go on.
func TestTurnLimitInACall(t *testing.T) {
	_, v := offline(t) // flite only makes the caller's speech
	rasr, rtts, _ := remoteSpeech(t, "what time is it")
	r := startReplica(t, newRedis(t), local.New(local.Config{}), replicaOpts{
		asr: rasr, tts: rtts, store: session.Config{MaxTurns: 1},
	})
	speech := opusSpeech(t, v, "what time is it", 500*time.Millisecond, 1500*time.Millisecond)
	c := dial(t, r.URL)
	callOn(t, c, speech) // turn 1, answered and played

	go func() { _ = speak(c, speech) }() // the caller speaks again; ends with the packets or the socket
	for {
		ev := c.Next()
		if (ev.Type == "reply.done" || ev.Type == "reply.delta") && ev.Turn > 1 {
			t.Fatalf("a turn past the cap has a reply: %s", ev.Raw)
		}
		if ev.Type == "error" {
			if ev.Code != "turn_limit" || !strings.Contains(ev.Message, "1 turns") {
				t.Fatalf("spoken turn past the cap: %s", ev.Raw)
			}
			break
		}
	}
	// The socket goes on: a typed turn gets the same answer.
	c.Send(map[string]any{"type": "text", "text": "hello?"})
	for {
		ev := c.Next()
		if ev.Type == "error" {
			if ev.Code != "turn_limit" {
				t.Fatalf("typed turn past the cap: %s", ev.Raw)
			}
			break
		}
	}
}
