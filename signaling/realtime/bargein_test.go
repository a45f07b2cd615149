package realtime_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/pipeline/session"
)

// The caller speaks over a long reply: speech_started, the response
// cancelled (turn_detected), its audio stops; the client's truncate cuts
// the item's transcript to the audio it played, and the history too.
func TestBargeInAndTruncate(t *testing.T) {
	long := strings.Repeat("and then it rained again ", 12) // 6 s of speech
	s, _ := voiceServer(t, long, "stop")
	c := connect(t, s)
	speak(c, 24000, 0, 600*time.Millisecond)
	first, _ := c.waitType(0, "response.output_audio.delta")
	time.Sleep(600 * time.Millisecond) // some of the reply plays
	speak(c, 24000, 0, 600*time.Millisecond)
	i, started := c.wait(first, "speech over the reply", func(e ev) bool { return e.typ() == "input_audio_buffer.speech_started" })
	end, done := c.wait(i, "the cancelled response", func(e ev) bool { return e.typ() == "response.done" && e.str("response.id") == "resp_1" })
	if done.str("response.status") != "cancelled" || done.str("response.status_details.reason") != "turn_detected" {
		t.Fatalf("response.done %v", done)
	}
	_ = started
	var sent int
	for _, e := range c.all()[:end] {
		if e.typ() == "response.output_audio.delta" && e.str("response_id") == "resp_1" {
			b, _ := base64.StdEncoding.DecodeString(e.str("delta"))
			sent += len(b)
		}
	}
	sentMs := float64(sent) / 48
	if sentMs > 5000 {
		t.Fatalf("%v ms of a 6 s reply sent: it was not cut", sentMs)
	}
	for _, e := range c.all()[end:] {
		if e.typ() == "response.output_audio.delta" && e.str("response_id") == "resp_1" {
			t.Fatalf("audio of the cancelled response after its response.done")
		}
	}
	_, item := c.wait(0, "the cut item", func(e ev) bool {
		return e.typ() == "response.output_item.done" && e.str("item.id") == "item_a1"
	})
	if item.str("item.status") != "incomplete" {
		t.Fatalf("item %v", item)
	}
	heard := item.get("item.content").([]any)[0].(map[string]any)["transcript"].(string)
	if heard == "" || len(heard) >= len("echo: "+long) {
		t.Fatalf("the cut item says %q", heard)
	}
	// The client played three quarters of what was sent (the SDK's count).
	played := int64(sentMs * 3 / 4)
	c.send(map[string]any{"type": "conversation.item.truncate", "item_id": "item_a1", "content_index": 0, "audio_end_ms": played})
	_, tr := c.waitType(0, "conversation.item.truncated")
	if int64(tr.num("audio_end_ms")) != played || tr.str("item_id") != "item_a1" {
		t.Fatalf("truncated %v", tr)
	}
	c.send(map[string]any{"type": "conversation.item.retrieve", "item_id": "item_a1"})
	_, ret := c.wait(0, "the retrieved item", func(e ev) bool { return e.typ() == "conversation.item.retrieved" && e.str("item.id") == "item_a1" })
	cut := ret.get("item.content").([]any)[0].(map[string]any)["transcript"].(string)
	if cut == "" || len(cut) >= len(heard) || !strings.HasPrefix(heard, cut) {
		t.Fatalf("truncated to %q from %q", cut, heard)
	}
	waitHistory(t, s, c, cut)

	// Past the end of the audio sent: an error, and the cut stands.
	past := c.send(map[string]any{"type": "conversation.item.truncate", "item_id": "item_a1", "content_index": 0, "audio_end_ms": sentMs + 500})
	if e := c.errorFor(past); e.str("error.code") != "invalid_value" || e.str("error.param") != "audio_end_ms" {
		t.Fatalf("a truncate past the end: %v", e)
	}
	waitHistory(t, s, c, cut)
}

// waitHistory waits until the session's history holds the assistant's
// reply as text.
func waitHistory(t *testing.T, s *server, c *rt, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var hist []session.Turn
	for time.Now().Before(deadline) {
		hist, _ = s.store.History(context.Background(), c.session, 50)
		for _, h := range hist {
			if h.Role == "assistant" && h.Content == text {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the history never held the assistant's %q: %+v", text, hist)
}
