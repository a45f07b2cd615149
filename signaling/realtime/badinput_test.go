package realtime_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/signaling/realtime"
)

// Each bad input gets an error of the right type and code that names the
// offending event, and the session goes on: the next event is answered.
func TestBadInput(t *testing.T) {
	s := start(t, &fakes.Echo{}, opts{
		// A small cap, so that a test append can pass it (the default,
		// 512 KiB, holds a frame of its own: see TestAppendCapDefault).
		realtime: realtime.Config{MaxAppend: 1000},
		asr:      &fakes.ASR{Rate: 24000}, tts: &fakes.TTS{Rate: 24000},
	})
	tests := []struct {
		name  string
		event map[string]any // nil: raw
		raw   string
		code  string
		param string
	}{
		{"unknown event type", map[string]any{"type": "conversation.frobnicate"}, "", "invalid_value", "type"},
		{"no type", map[string]any{"item_id": "x"}, "", "invalid_value", "type"},
		{"malformed JSON", nil, `{"type": "session.update", "event_id": "broken",`, "invalid_json", ""},
		{"base64 that is not", map[string]any{"type": "input_audio_buffer.append", "audio": "%%% not base64 %%%"}, "", "invalid_value", "audio"},
		{"audio that is not whole samples", map[string]any{"type": "input_audio_buffer.append", "audio": base64.StdEncoding.EncodeToString([]byte{1, 2, 3})}, "", "invalid_value", "audio"},
		{"an append over the cap", map[string]any{"type": "input_audio_buffer.append", "audio": base64.StdEncoding.EncodeToString(make([]byte, 2000))}, "", "invalid_value", "audio"},
		{"an append without audio", map[string]any{"type": "input_audio_buffer.append"}, "", "missing_required_parameter", "audio"},
		{"a commit of nothing", map[string]any{"type": "input_audio_buffer.commit"}, "", "input_audio_buffer_commit_empty", ""},
		{"cancel with nothing active", map[string]any{"type": "response.cancel"}, "", "response_cancel_not_active", ""},
		{"output for an unknown call", map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "function_call_output", "call_id": "call_nobody", "output": "x"}}, "", "invalid_value", "item.call_id"},
		{"retrieve of an unknown item", map[string]any{"type": "conversation.item.retrieve", "item_id": "item_nope"}, "", "item_not_found", "item_id"},
		{"delete of an unknown item", map[string]any{"type": "conversation.item.delete", "item_id": "item_nope"}, "", "item_not_found", "item_id"},
		{"an assistant message", map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "assistant", "content": []any{}}}, "", "invalid_value", "item.role"},
		{"an empty message", map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user", "content": []any{}}}, "", "invalid_value", "item.content"},
		{"audio with no transcript", map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_audio", "audio": "AAAA"}}}}, "", "unsupported", "item.content[0]"},
		{"a bad format", map[string]any{"type": "session.update", "session": map[string]any{"audio": map[string]any{"input": map[string]any{"format": map[string]any{"type": "audio/flac"}}}}}, "", "invalid_value", "session.audio.input.format"},
		{"a bad turn detection", map[string]any{"type": "session.update", "session": map[string]any{"turn_detection": map[string]any{"type": "psychic_vad"}}}, "", "invalid_value", "session.audio.input.turn_detection"},
		{"bad tools", map[string]any{"type": "session.update", "session": map[string]any{"tools": "all of them"}}, "", "invalid_value", "session.tools"},
		{"a bad tool choice", map[string]any{"type": "response.create", "response": map[string]any{"tool_choice": "maybe"}}, "", "invalid_value", "response.tool_choice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A connection each: the error budget (20 a second) is not
			// what this tests. A user item to point at, and to look at
			// after the bad input.
			c := connect(t, s)
			c.send(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": "hi"}}}})
			c.waitType(0, "conversation.item.done")
			id := "broken"
			if tc.event != nil {
				id = c.send(tc.event)
			} else {
				c.raw(tc.raw)
			}
			var e ev
			if tc.event == nil {
				_, e = c.wait(0, "the error", func(e ev) bool { return e.typ() == "error" && e.str("error.code") == tc.code })
			} else {
				e = c.errorFor(id)
			}
			if e.str("error.code") != tc.code || e.str("error.type") != "invalid_request_error" || e.str("error.param") != tc.param || e.str("error.message") == "" {
				t.Fatalf("error %v, want code %s param %q", e, tc.code, tc.param)
			}
			// The session goes on.
			ret := c.send(map[string]any{"type": "conversation.item.retrieve", "item_id": "item_u1"})
			_, got := c.wait(0, "the retrieved item", func(e ev) bool {
				return e.typ() == "conversation.item.retrieved" && e.str("item.id") == "item_u1"
			})
			_ = ret
			if !strings.Contains(jsonOf(got), `"text":"hi"`) {
				t.Fatalf("retrieved %v", got)
			}
		})
	}
}

// conversation.item.truncate of a spoken reply: within its audio (or to
// its end) it is truncated and its transcript cut to the words heard;
// past the end, of an unknown item or of a user's, an error (OpenAI's
// code and words) and the item is left as it was; the session goes on.
func TestTruncate(t *testing.T) {
	s, _ := voiceServer(t)
	const said = "one two three four five six"
	tests := []struct {
		name    string
		item    string
		endMs   func(sentMs float64) float64 // nil: no audio_end_ms
		code    string                       // "": truncated
		param   string
		shorter bool // OpenAI's words: "… is already shorter than …"
		cut     bool // the transcript is cut
	}{
		{"within the audio", "item_a1", func(ms float64) float64 { return float64(int64(ms / 2)) }, "", "", false, true},
		{"to its end", "item_a1", func(ms float64) float64 { return ms }, "", "", false, false},
		{"nothing of it", "item_a1", func(float64) float64 { return 0 }, "", "", false, true},
		{"past the end", "item_a1", func(ms float64) float64 { return ms + 100 }, "invalid_value", "audio_end_ms", true, false},
		{"far past the end", "item_a1", func(float64) float64 { return 1e9 }, "invalid_value", "audio_end_ms", true, false},
		{"negative", "item_a1", func(float64) float64 { return -5 }, "invalid_value", "audio_end_ms", false, false},
		{"no audio_end_ms", "item_a1", nil, "invalid_value", "audio_end_ms", false, false},
		{"an unknown item", "item_nope", func(float64) float64 { return 10 }, "item_not_found", "item_id", false, false},
		{"a user item", "item_u1", func(float64) float64 { return 10 }, "invalid_value", "item_id", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, s) // a session each: an item as spoken
			c.send(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": said}}}})
			c.send(map[string]any{"type": "response.create"})
			end, _ := c.wait(0, "the spoken reply", func(e ev) bool { return e.typ() == "response.done" && e.str("response.id") == "resp_1" })
			var sent int
			for _, e := range c.all()[:end] {
				if e.typ() == "response.output_audio.delta" {
					b, _ := base64.StdEncoding.DecodeString(e.str("delta"))
					sent += len(b)
				}
			}
			sentMs := float64(sent) / 48 // PCM16 at 24 kHz
			if sentMs < 200 {
				t.Fatalf("%v ms of audio: no spoken reply to truncate", sentMs)
			}
			whole := transcriptOf(t, c)
			trunc := map[string]any{"type": "conversation.item.truncate", "item_id": tc.item, "content_index": 0}
			if tc.endMs != nil {
				trunc["audio_end_ms"] = tc.endMs(sentMs)
			}
			id := c.send(trunc)
			if tc.code == "" {
				_, tr := c.waitType(0, "conversation.item.truncated")
				if tr.num("audio_end_ms") != tc.endMs(sentMs) || tr.str("item_id") != tc.item {
					t.Fatalf("truncated %v, asked %v ms", tr, trunc["audio_end_ms"])
				}
			} else {
				e := c.errorFor(id)
				if e.str("error.code") != tc.code || e.str("error.type") != "invalid_request_error" || e.str("error.param") != tc.param || e.str("error.message") == "" {
					t.Fatalf("error %v, want code %s param %q", e, tc.code, tc.param)
				}
				if msg := e.str("error.message"); tc.shorter && !strings.Contains(msg, "is already shorter than") {
					t.Fatalf("a truncate past the end says %q, not OpenAI's words", msg)
				}
			}
			// The session goes on, the item as the truncate left it.
			got := transcriptOf(t, c)
			switch {
			case tc.cut && (len(got) >= len(whole) || !strings.HasPrefix(whole, got)):
				t.Fatalf("truncated to %q from %q", got, whole)
			case !tc.cut && got != whole:
				t.Fatalf("the item says %q, was %q", got, whole)
			}
			if tc.code != "" {
				for _, e := range c.all() {
					if e.typ() == "conversation.item.truncated" {
						t.Fatalf("truncated after an error: %v", e)
					}
				}
			}
			if got != "" {
				waitHistory(t, s, c, got)
			}
		})
	}
}

// transcriptOf retrieves item_a1 and returns its transcript.
func transcriptOf(t *testing.T, c *rt) string {
	t.Helper()
	from := len(c.all())
	c.send(map[string]any{"type": "conversation.item.retrieve", "item_id": "item_a1"})
	_, ret := c.wait(from, "the retrieved item", func(e ev) bool { return e.typ() == "conversation.item.retrieved" && e.str("item.id") == "item_a1" })
	content, _ := ret.get("item.content").([]any)
	if len(content) != 1 {
		t.Fatalf("item_a1 is %v", ret)
	}
	part, _ := content[0].(map[string]any)
	tr, _ := part["transcript"].(string)
	return tr
}

// A binary frame is no event: an error, and the session goes on.
func TestBinaryFrame(t *testing.T) {
	s := start(t, &fakes.Echo{}, opts{})
	c := connect(t, s)
	if err := c.ws.WriteMessage(2, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	_, e := c.waitType(0, "error")
	if e.str("error.code") != "invalid_event" {
		t.Fatalf("error %v", e)
	}
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"instructions": "x"}})
	c.waitType(0, "session.updated")
}

// A frame over the cap closes the socket with 1009; a flood of bad events
// with 1008, after at most the error budget's answers.
func TestCloses(t *testing.T) {
	// A small frame cap: the default (1 MiB) would take a large frame to
	// pass.
	s := start(t, &fakes.Echo{}, opts{realtime: realtime.Config{MaxMessage: 4096}})
	t.Run("too big", func(t *testing.T) {
		c := connect(t, s)
		// The server closes at the frame's header: the rest of the write
		// may find the socket closed.
		_ = c.writeText([]byte(`{"type":"input_audio_buffer.append","audio":"` + strings.Repeat("A", 8192) + `"}`))
		<-c.done
		if code := closeCode(c); code != 1009 {
			t.Fatalf("closed with %d", code)
		}
	})
	t.Run("flood", func(t *testing.T) {
		c := connect(t, s)
		for range 250 {
			// The server closes the socket mid-flood: a write may then
			// find it reset, which is the end this test waits for.
			if err := c.writeText([]byte(`{"type":"nope"}`)); err != nil {
				break
			}
		}
		<-c.done
		if code := closeCode(c); code != 1008 {
			t.Fatalf("closed with %d", code)
		}
		n := 0
		for _, e := range c.all() {
			if e.typ() == "error" {
				n++
			}
		}
		if n > 20 {
			t.Fatalf("%d errors answered; the budget is 20 a second", n)
		}
	})
}

// A drained replica tells its sockets (an error, server_shutdown), then
// closes them with 1012.
func TestDrain(t *testing.T) {
	s := start(t, &fakes.Echo{}, opts{})
	c := connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-c.done
	if code := closeCode(c); code != 1012 {
		t.Fatalf("closed with %d", code)
	}
	evs := c.all()
	if last := evs[len(evs)-1]; last.str("error.code") != "server_shutdown" {
		t.Fatalf("the last event %v", last)
	}
}
