package realtime_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/media/pcm"
)

// turn_detection null: the caller's audio is one utterance until the
// client commits it; the commit makes a user item and no response, and
// the client's response.create gets a spoken one. Clear drops the audio.
func TestManualCommit(t *testing.T) {
	s, _ := voiceServer(t, "dropped words", "kept words")
	c := connect(t, s)
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"audio": map[string]any{"input": map[string]any{"turn_detection": nil}}}})
	_, upd := c.waitType(0, "session.updated")
	if v, ok := upd.get("session.audio").(map[string]any)["input"].(map[string]any)["turn_detection"]; !ok || v != nil {
		t.Fatalf("turn_detection %v, want null", v)
	}
	tone := func() {
		b := pcm.Append(nil, testkit.Tone(440, 24000, 24000/2, fakes.Amplitude))
		c.send(map[string]any{"type": "input_audio_buffer.append", "audio": base64.StdEncoding.EncodeToString(b)})
	}
	tone()
	clr := c.send(map[string]any{"type": "input_audio_buffer.clear"})
	c.waitType(0, "input_audio_buffer.cleared")
	_ = clr
	tone()
	// No pause: the call takes the audio queued before a commit (or a
	// clear) first.
	c.send(map[string]any{"type": "input_audio_buffer.commit"})
	_, com := c.waitType(0, "input_audio_buffer.committed")
	_, item := c.waitType(0, "conversation.item.done")
	if com.str("item_id") != item.str("item.id") || !strings.Contains(jsonOf(item), `"transcript":"kept words"`) {
		t.Fatalf("committed %v, item %v", com, item)
	}
	for _, e := range c.all() {
		if e.typ() == "input_audio_buffer.speech_started" || e.typ() == "response.created" || e.typ() == "error" {
			t.Fatalf("manual turn taking sent %v", e)
		}
	}
	mark := len(c.all())
	c.send(map[string]any{"type": "response.create"})
	_, done := c.waitType(mark, "response.done")
	if !strings.Contains(jsonOf(done), `"transcript":"echo: kept words"`) || !strings.Contains(jsonOf(done), `"output_audio"`) {
		t.Fatalf("response.done %v", done)
	}
	if _, e := c.waitType(mark, "response.output_audio.delta"); e.str("response_id") != done.str("response.id") {
		t.Fatalf("audio of %v", e)
	}
}

// A text response in an audio session (the response's own modalities),
// and a format changed between responses: the next audio is in it.
func TestResponseModalitiesAndFormatChange(t *testing.T) {
	s, _ := voiceServer(t)
	c := connect(t, s)
	c.send(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": "hi"}}}})
	c.waitType(0, "conversation.item.done")
	c.send(map[string]any{"type": "response.create", "response": map[string]any{"output_modalities": []any{"text"}, "instructions": "be terse"}})
	_, done := c.waitType(0, "response.done")
	if !strings.Contains(jsonOf(done), `"type":"output_text"`) {
		t.Fatalf("a text response %v", done)
	}
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"audio": map[string]any{"output": map[string]any{"format": map[string]any{"type": "audio/pcmu"}}}}})
	c.waitType(0, "session.updated")
	mark := len(c.all())
	c.send(map[string]any{"type": "response.create"})
	_, delta := c.waitType(mark, "response.output_audio.delta")
	if b, _ := base64.StdEncoding.DecodeString(delta.str("delta")); len(b) != 160 {
		t.Fatalf("a delta of %d bytes after the change to G.711", len(b))
	}
	c.waitType(mark, "response.done")
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"audio": map[string]any{"output": map[string]any{"format": map[string]any{"type": "audio/pcm", "rate": 16000}}}}})
	_, upd := c.waitType(mark, "session.updated")
	if upd.num("session.audio.output.format.rate") != 16000 {
		t.Fatalf("session %v", upd)
	}
	mark = len(c.all())
	c.send(map[string]any{"type": "response.create"})
	_, delta = c.waitType(mark, "response.output_audio.delta")
	if b, _ := base64.StdEncoding.DecodeString(delta.str("delta")); len(b) != 640 {
		t.Fatalf("a delta of %d bytes at 16 kHz", len(b))
	}
}

// conversation.item.delete removes an item from the conversation and
// from what the model sees next.
func TestDeleteItem(t *testing.T) {
	model := &fakes.Echo{}
	s := start(t, model, opts{})
	c := connect(t, s)
	for _, text := range []string{"first", "second"} {
		c.send(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": text}}}})
	}
	c.wait(0, "the second item", func(e ev) bool { return e.typ() == "conversation.item.done" && e.str("item.id") == "item_u2" })
	c.send(map[string]any{"type": "conversation.item.delete", "item_id": "item_u2"})
	_, del := c.waitType(0, "conversation.item.deleted")
	if del.str("item_id") != "item_u2" {
		t.Fatalf("deleted %v", del)
	}
	c.send(map[string]any{"type": "response.create"})
	_, done := c.waitType(0, "response.done")
	if !strings.Contains(jsonOf(done), "echo: first") {
		t.Fatalf("the response after the delete %v", done)
	}
	c.send(map[string]any{"type": "conversation.item.retrieve", "item_id": "item_u2"})
	if e := c.errorFor("client_" + "5"); e.str("error.code") != "item_not_found" {
		t.Fatalf("retrieve of a deleted item %v", e)
	}
}
