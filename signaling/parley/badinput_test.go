package parley_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/signaling"
	"github.com/parleyhq/parley/signaling/parley"
)

// Bad input gets a clear error and the connection goes on; a bystander
// session is not disturbed.
func TestBadInputGetsAClearError(t *testing.T) {
	rdb := newRedis(t)
	r := startReplica(t, rdb, &echoLLM{max: 1}, replicaOpts{ws: signaling.Config{MaxMessage: 4096}, parley: parley.Config{MaxText: 100}})

	bystander := dial(t, r.URL)
	bystander.Hello()

	cases := []struct {
		name      string
		hello     bool // say hello before sending
		kind      int
		msg       string
		code      string
		inMessage string
	}{
		{"malformed JSON", true, websocket.TextMessage, `{"type":"text","text":`, "bad_request", "malformed JSON"},
		{"not an object", true, websocket.TextMessage, `[1,2,3]`, "bad_request", "malformed JSON"},
		{"no type", true, websocket.TextMessage, `{"text":"hi"}`, "bad_request", `needs a "type"`},
		{"unknown type", true, websocket.TextMessage, `{"type":"dance"}`, "bad_request", `unknown message type "dance"`},
		{"text before hello", false, websocket.TextMessage, `{"type":"text","text":"hi"}`, "bad_request", "before hello"},
		{"text without text", true, websocket.TextMessage, `{"type":"text"}`, "bad_request", `needs a "text"`},
		{"text not a string", true, websocket.TextMessage, `{"type":"text","text":42}`, "bad_request", "malformed JSON"},
		{"empty text", true, websocket.TextMessage, `{"type":"text","text":"   "}`, "bad_request", "empty"},
		{"text too long", true, websocket.TextMessage, `{"type":"text","text":"` + strings.Repeat("a", 101) + `"}`, "bad_request", "limit is 100"},
		{"second hello", true, websocket.TextMessage, `{"type":"hello"}`, "bad_request", "already"},
		{"binary frame without audio", true, websocket.BinaryMessage, "\x01\x02\x03", "bad_request", "binary frames carry call audio"},
		{"audio before hello", false, websocket.BinaryMessage, "\xfc\xff\xfe", "bad_request", "binary frames carry call audio"},
		{"wrong codec", false, websocket.TextMessage, `{"type":"hello","audio":{"transport":"ws","codec":"pcmu"}}`, "bad_request", `codec "pcmu": only opus`},
		{"unknown transport", false, websocket.TextMessage, `{"type":"hello","audio":{"transport":"carrier-pigeon"}}`, "bad_request", `use "ws" or "webrtc"`},
		{"offer without a call", true, websocket.TextMessage, `{"type":"offer","sdp":"v=0"}`, "bad_request", "an offer needs a call"},
		{"audio move without a call", true, websocket.TextMessage, `{"type":"audio","transport":"ws"}`, "bad_request", "no call on this connection to move"},
		{"bad last_event", false, websocket.TextMessage, `{"type":"hello","session":"00000000000000000000000000000000","token":"x","last_event":"nope"}`, "bad_request", "not an event id"},
		{"unknown session", false, websocket.TextMessage, `{"type":"hello","session":"00000000000000000000000000000000","token":"x"}`, "session_expired", "expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, r.URL)
			if tc.hello {
				c.Hello()
			}
			c.SendRaw(tc.kind, []byte(tc.msg))
			ev := c.Next()
			if ev.Type != "error" || ev.Code != tc.code || !strings.Contains(ev.Message, tc.inMessage) {
				t.Fatalf("want error %s containing %q, got %s", tc.code, tc.inMessage, ev.Raw)
			}
			// The connection goes on.
			if !tc.hello {
				c.Hello()
			}
			c.Send(map[string]any{"type": "text", "text": "still there?"})
			evs := c.Until("reply.done", 0)
			if got := evs[len(evs)-1].Text; got != "echo: still there?" {
				t.Fatalf("after the error: reply %q", got)
			}
		})
	}

	t.Run("oversized frame closes with message_too_big", func(t *testing.T) {
		c := dial(t, r.URL)
		c.Hello()
		c.SendRaw(websocket.TextMessage, []byte(`{"type":"text","text":"`+strings.Repeat("a", 5000)+`"}`))
		_, err := c.Read(5 * time.Second)
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
			t.Fatalf("want close 1009, got %v", err)
		}
	})

	t.Run("wrong token closes with unauthorized", func(t *testing.T) {
		c := dial(t, r.URL)
		ev := c.Resume(bystander.Session, "not-the-token", "")
		if ev.Type != "error" || ev.Code != "unauthorized" {
			t.Fatalf("want unauthorized, got %s", ev.Raw)
		}
		_, err := c.Read(5 * time.Second)
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != parley.CloseCode(signaling.ReasonUnauthorized) || ce.Text != "unauthorized" {
			t.Fatalf("want close %d unauthorized, got %v", parley.CloseCode(signaling.ReasonUnauthorized), err)
		}
	})

	t.Run("bystander undisturbed", func(t *testing.T) {
		bystander.Send(map[string]any{"type": "text", "text": "fine here"})
		evs := bystander.Until("reply.done", 0)
		for _, ev := range evs {
			if ev.Type == "error" {
				t.Fatalf("bystander got %s", ev.Raw)
			}
		}
	})
}

// The hello's deadline ends with the hello: a client that then listens
// without a word (pings aside) stays connected.
func TestSilentClientOutlivesTheHelloTimeout(t *testing.T) {
	r := startReplica(t, newRedis(t), &echoLLM{max: 1}, replicaOpts{ws: signaling.Config{HelloTimeout: 200 * time.Millisecond, ReadTimeout: time.Minute}})
	c := dial(t, r.URL)
	c.Hello()
	time.Sleep(time.Second) // five hello timeouts of silence
	c.Send(map[string]any{"type": "text", "text": "still there?"})
	if evs := c.Until("reply.done", 1); evs[len(evs)-1].Text != "echo: still there?" {
		t.Fatalf("%v", evs)
	}
}
