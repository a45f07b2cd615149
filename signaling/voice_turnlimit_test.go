//go:build !nospeech

package signaling_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/pipeline/openai"
	"github.com/parleyhq/parley/pipeline/session"
)

// A call past the session's turn cap: the spoken turn gets the error
// turn_limit (and no reply), and the call and the socket go on.
func TestTurnLimitInACall(t *testing.T) {
	_, v := offline(t) // flite only makes the caller's speech
	base, _ := fakeSpeechServer(t, "what time is it")
	rasr, err := openai.NewTranscription(openai.Config{BaseURL: base, Model: "whisper-1"}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	rtts, err := openai.NewSpeech(openai.Config{BaseURL: base, Model: "tts-1"}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, newRedis(t), local.New(local.Config{}), replicaOpts{
		asr: rasr, tts: rtts, store: session.Config{MaxTurns: 1},
	})
	speech := opusSpeech(t, v, "what time is it", 500*time.Millisecond, 1500*time.Millisecond)
	c := dial(t, r.URL)
	callOn(t, c, speech) // turn 1, answered and played

	go func() { // the caller speaks again; ends when the packets are sent
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for _, p := range speech {
			<-tick.C
			c.sendMu.Lock()
			_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
			err := c.ws.WriteMessage(websocket.BinaryMessage, p)
			c.sendMu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	for {
		ev := c.next()
		if (ev.Type == "reply.done" || ev.Type == "reply.delta") && ev.Turn > 1 {
			t.Fatalf("a turn past the cap has a reply: %s", ev.raw)
		}
		if ev.Type == "error" {
			if ev.Code != "turn_limit" || !strings.Contains(ev.Message, "1 turns") {
				t.Fatalf("spoken turn past the cap: %s", ev.raw)
			}
			break
		}
	}
	// The socket goes on: a typed turn gets the same answer.
	c.send(map[string]any{"type": "text", "text": "hello?"})
	for {
		ev := c.next()
		if ev.Type == "error" {
			if ev.Code != "turn_limit" {
				t.Fatalf("typed turn past the cap: %s", ev.raw)
			}
			break
		}
	}
}
