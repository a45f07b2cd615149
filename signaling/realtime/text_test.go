package realtime_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/signaling"
)

// A text turn as the clients expect it: session.created with the whole
// session; a partial session.update that changes only what it names,
// answered with the whole session; a user item; a response whose events
// come in the order the agents SDK reads them, each with an event_id.
func TestTextTurn(t *testing.T) {
	s := start(t, &fakes.Echo{}, opts{})
	c := dial(t, s.URL+"?model=gpt-realtime", nil)
	_, created := c.waitType(0, "session.created")
	if created.str("session.model") != "gpt-realtime" || created.str("session.type") != "realtime" ||
		created.get("session.output_modalities") == nil || created.str("session.audio.output.format.type") != "audio/pcm" {
		t.Fatalf("session.created %v", created)
	}
	// Text only: this server has no voice.
	if mods := created.get("session.output_modalities").([]any); len(mods) != 1 || mods[0] != "text" {
		t.Fatalf("modalities %v on a server without voice", mods)
	}
	upd := c.send(map[string]any{"type": "session.update", "session": map[string]any{"type": "realtime", "instructions": "be brief", "tracing": "auto", "unknown_field": 1}})
	i, updated := c.waitType(0, "session.updated")
	if updated.str("session.instructions") != "be brief" || updated.str("session.model") != "gpt-realtime" || updated.str("session.tracing") != "auto" {
		t.Fatalf("session.updated %v", updated)
	}
	for _, e := range c.all() {
		if e.typ() == "error" {
			t.Fatalf("session.update %s: %v", upd, e)
		}
	}
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"type": "realtime", "tracing": nil}})
	_, again := c.waitType(i+1, "session.updated")
	if again.str("session.instructions") != "be brief" {
		t.Fatalf("a partial update lost the instructions: %v", again)
	}

	c.send(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user",
		"content": []any{map[string]any{"type": "input_text", "text": "hello there"}}}})
	_, added := c.waitType(0, "conversation.item.added")
	if added.str("item.id") != "item_u1" || added.str("item.role") != "user" || added.get("previous_item_id") != nil {
		t.Fatalf("item added %v", added)
	}
	_, done := c.waitType(0, "conversation.item.done")
	if done.str("item.content.0") != "" || !strings.Contains(jsonOf(done), `"text":"hello there"`) {
		t.Fatalf("item done %v", done)
	}
	if n := len(c.all()); n == 0 {
		t.Fatal("no events")
	}
	before := len(c.all())
	c.send(map[string]any{"type": "response.create"})
	end, rd := c.waitType(before, "response.done")
	evs := c.all()[before : end+1]
	want := []string{"response.created", "response.output_item.added", "conversation.item.added", "response.content_part.added",
		"response.output_text.done", "response.content_part.done", "response.output_item.done", "conversation.item.done", "response.done"}
	if got := typesOf(evs, "response.output_text.delta"); !reflect.DeepEqual(got, want) {
		t.Fatalf("response events %v, want %v", got, want)
	}
	var text string
	for _, e := range evs {
		if e.str("event_id") == "" {
			t.Fatalf("an event without event_id: %v", e)
		}
		if e.typ() == "response.output_text.delta" {
			text += e.str("delta")
			if e.str("response_id") != "resp_1" || e.str("item_id") != "item_a1" {
				t.Fatalf("delta %v", e)
			}
		}
	}
	if text != "echo: hello there" {
		t.Fatalf("deltas %q", text)
	}
	if rd.str("response.status") != "completed" || !strings.Contains(jsonOf(rd.get("response.output")), `"text":"echo: hello there"`) {
		t.Fatalf("response.done %v", rd)
	}
	_, itemAdded := c.wait(before, "the assistant item", func(e ev) bool {
		return e.typ() == "conversation.item.added" && e.str("item.id") == "item_a1"
	})
	if itemAdded.str("previous_item_id") != "item_u1" {
		t.Fatalf("the assistant item's previous_item_id: %v", itemAdded)
	}
	c.send(map[string]any{"type": "conversation.item.retrieve", "item_id": "item_a1"})
	_, got := c.waitType(0, "conversation.item.retrieved")
	if !strings.Contains(jsonOf(got), `"type":"output_text"`) || !strings.Contains(jsonOf(got), "echo: hello there") {
		t.Fatalf("retrieved %v", got)
	}
}

// The handshake: a bearer key or the key subprotocol, checked against
// the server's tokens; "realtime" answered when offered; the beta switch
// by header or subprotocol.
func TestHandshake(t *testing.T) {
	// Authentication on: this test is about it (the default, off, is
	// every other test's).
	s := start(t, &fakes.Echo{}, opts{gateway: signaling.Config{Auth: signaling.AuthConfig{Tokens: []string{"sk-good"}}}})
	t.Run("bearer", func(t *testing.T) {
		c := dial(t, s.URL, http.Header{"Authorization": {"Bearer sk-good"}})
		c.waitType(0, "session.created")
	})
	t.Run("subprotocol", func(t *testing.T) {
		d := websocket.Dialer{Subprotocols: []string{"realtime", "openai-insecure-api-key.sk-good", "openai-agents-sdk.0.20.0"}}
		ws, resp, err := d.Dial(s.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "realtime" {
			t.Fatalf("answered subprotocol %q, want realtime", p)
		}
		var e ev
		if err := ws.ReadJSON(&e); err != nil || e.typ() != "session.created" || e.get("session.modalities") != nil {
			t.Fatalf("first event %v, %v: want GA's session.created", e, err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		d := websocket.Dialer{Subprotocols: []string{"realtime", "openai-insecure-api-key.sk-bad"}}
		_, resp, err := d.Dial(s.URL, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a wrong key: %v, %v", resp, err)
		}
	})
	t.Run("beta by header", func(t *testing.T) {
		c := dial(t, s.URL, http.Header{"Authorization": {"Bearer sk-good"}, "Openai-Beta": {"realtime=v1"}})
		_, e := c.waitType(0, "session.created")
		if e.get("session.modalities") == nil || e.str("session.output_audio_format") != "pcm16" || e.get("session.audio") != nil {
			t.Fatalf("beta session %v", e)
		}
	})
	t.Run("beta by subprotocol", func(t *testing.T) {
		d := websocket.Dialer{Subprotocols: []string{"openai-insecure-api-key.sk-good", "openai-beta.realtime-v1"}}
		ws, resp, err := d.Dial(s.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "openai-beta.realtime-v1" {
			t.Fatalf("answered subprotocol %q", p)
		}
		var e ev
		if err := ws.ReadJSON(&e); err != nil || e.get("session.modalities") == nil {
			t.Fatalf("first event %v, %v: want beta's session", e, err)
		}
	})
}

// A session.update sent at once, before session.created is read (the
// agents SDK sends its configuration as soon as the socket opens): it is
// taken, after session.created.
func TestUpdateBeforeCreated(t *testing.T) {
	s := start(t, &fakes.Echo{}, opts{})
	c := dial(t, s.URL, nil)
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"instructions": "early"}})
	i, _ := c.waitType(0, "session.created")
	j, upd := c.waitType(0, "session.updated")
	if j < i || upd.str("session.instructions") != "early" {
		t.Fatalf("session.created at %d, session.updated at %d: %v", i, j, upd)
	}
}

// response.cancel during a response: it stops, and its response.done says
// cancelled, client_cancelled, with what was said; a second cancel finds
// nothing active.
func TestCancel(t *testing.T) {
	model := fakes.NewGate()
	s := start(t, model, opts{})
	c := connect(t, s)
	c.send(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": "talk"}}}})
	c.send(map[string]any{"type": "response.create"})
	<-model.Started
	model.Send("Once upon ")
	c.waitType(0, "response.output_text.delta")
	c.send(map[string]any{"type": "response.cancel"})
	_, done := c.waitType(0, "response.done")
	if done.str("response.status") != "cancelled" || done.str("response.status_details.reason") != "client_cancelled" ||
		!strings.Contains(jsonOf(done), `"text":"Once upon "`) {
		t.Fatalf("response.done %v", done)
	}
	id := c.send(map[string]any{"type": "response.cancel"})
	if e := c.errorFor(id); e.str("error.code") != "response_cancel_not_active" {
		t.Fatalf("a second cancel: %v", e)
	}
}
