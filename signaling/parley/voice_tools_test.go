//go:build !nospeech

package parley_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/llm"
)

// callMsgs reads a call's socket on a goroutine of its own (it ends when
// the socket closes): text messages decoded, audio frames counted.
type callMsgs struct {
	t  *testing.T
	ch chan callItem
}

type callItem struct {
	ev    msg
	audio bool
}

func readCall(t *testing.T, c *client) *callMsgs {
	m := &callMsgs{t: t, ch: make(chan callItem, 10000)}
	go func() {
		for {
			kind, b, err := c.WS.ReadMessage()
			if err != nil {
				close(m.ch)
				return
			}
			it := callItem{audio: kind == websocket.BinaryMessage}
			if !it.audio {
				_ = json.Unmarshal(b, &it.ev)
				it.ev.Raw = string(b)
			}
			m.ch <- it
		}
	}()
	return m
}

// next is the next message, or nothing within d (ok false).
func (m *callMsgs) next(d time.Duration) (callItem, bool) {
	select {
	case it, open := <-m.ch:
		if !open {
			m.t.Fatal("socket closed")
		}
		return it, true
	case <-time.After(d):
		return callItem{}, false
	}
}

// until reads until an event of type typ, counting the audio frames on
// the way.
func (m *callMsgs) until(typ string) (msg, int) {
	m.t.Helper()
	frames := 0
	for {
		it, ok := m.next(30 * time.Second)
		if !ok {
			m.t.Fatalf("no %s within 30 s", typ)
		}
		if it.audio {
			frames++
			continue
		}
		if it.ev.Type == "error" {
			m.t.Fatalf("error: %s", it.ev.Raw)
		}
		if it.ev.Type == typ {
			return it.ev, frames
		}
	}
}

// framesFor is how many 20 ms frames flite makes of text.
func framesFor(v interface {
	Synthesize(context.Context, string, func([]int16) error) error
}, text string) int {
	n := 0
	_ = v.Synthesize(context.Background(), text, func(p []int16) error { n += len(p); return nil })
	return (n + 319) / 320
}

// A spoken turn whose model calls the client's tool: while the tool runs
// the bot says the filler once; the answer is spoken after the result; a
// barge-in during the wait ends the turn.
func TestVoiceCallWithATool(t *testing.T) {
	asr, v := offline(t)
	model := &fakes.Tooler{Calls: []llm.ToolCall{{Name: "weather", Arguments: "{}"}}}
	r := startReplica(t, newRedis(t), model, replicaOpts{asr: asr, tts: v})
	filler := framesFor(v, call.DefaultFiller)
	// Silence after the words long enough for any end of turn (a
	// recogniser behind on a loaded machine stretches it to 1.2 s): the
	// client sends nothing after it.
	speech := opusSpeech(t, v, "what time is it", 300*time.Millisecond, 2*time.Second)

	t.Run("the filler, then the answer", func(t *testing.T) {
		c := dial(t, r.URL)
		c.Send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "ws"}, "tools": []any{weatherTool}})
		m := readCall(t, c)
		m.until("session")
		go func() { _ = speak(c, speech) }() // ends when sent
		tc, _ := m.until("tool.call")
		var callID string
		_ = json.Unmarshal([]byte(tc.Raw), &struct {
			CallID *string `json:"call_id"`
		}{&callID})
		// Four seconds of waiting: the filler once, and nothing else.
		frames, deadline := 0, time.Now().Add(4*time.Second)
		for time.Now().Before(deadline) {
			if it, ok := m.next(time.Until(deadline)); ok && it.audio {
				frames++
			} else if ok && it.ev.Type == "reply.done" {
				t.Fatalf("the turn ended while its tool ran: %s", it.ev.Raw)
			}
		}
		if frames < filler*8/10 || frames > filler+5 {
			t.Fatalf("%d frames while the tool ran; the filler once is %d", frames, filler)
		}
		c.Send(map[string]any{"type": "tool.result", "call_id": callID, "output": "sunny"})
		done, answer := m.until("reply.done")
		if done.Text != "done: sunny" || done.Interrupted {
			t.Fatalf("reply.done %s", done.Raw)
		}
		if want := framesFor(v, "done: sunny"); answer < want*8/10 {
			t.Fatalf("%d frames of the answer, want about %d", answer, want)
		}
	})

	t.Run("a barge-in while the tool runs", func(t *testing.T) {
		c := dial(t, r.URL)
		c.Send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "ws"}, "tools": []any{weatherTool}})
		m := readCall(t, c)
		m.until("session")
		spoken := make(chan struct{})
		go func() { _ = speak(c, speech); close(spoken) }()
		m.until("tool.call")
		// It speaks over the wait once its first words' trailing silence
		// is sent: one microphone, one encoder. (Two encoders' packets
		// interleaved are not a voice: a CELT decoder fed them hears
		// near silence.)
		go func() { <-spoken; _ = speak(c, speech) }()
		m.until("interrupted")
		done, _ := m.until("reply.done")
		if !done.Interrupted || done.Turn != 1 {
			t.Fatalf("reply.done %s", done.Raw)
		}
		// The caller's words are the next turn, which calls the tool again.
		if tc, _ := m.until("tool.call"); tc.Turn != 2 {
			t.Fatalf("tool.call %s", tc.Raw)
		}
	})
}
