package signaling_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/pipeline/session"
)

// A replica drained (SIGTERM) with a turn under way: its client is told to
// reconnect, then closed with 1012; new sockets are refused; the replica
// finishes the turn during its drain; the client, resumed on another
// replica, receives the rest of the turn, each event once.
func TestGracefulDrain(t *testing.T) {
	rdb := newRedis(t)
	slow := newGateLLM()
	r1 := startReplica(t, rdb, slow, replicaOpts{})
	r2 := startReplica(t, rdb, &echoLLM{max: 1}, replicaOpts{})

	c := dial(t, r1.URL)
	c.hello()
	c.send(map[string]any{"type": "text", "text": "tell me a story"})
	<-slow.started
	slow.gate <- "Once "
	c.until("reply.delta", 1)

	drained := make(chan error, 1)
	go func() { drained <- r1.drain(10 * time.Second) }()
	if ev := c.next(); ev.Type != "reconnect" || !strings.Contains(ev.raw, `"reason":"shutdown"`) {
		t.Fatalf("want a reconnect event first, got %s", ev.raw)
	}
	_, err := c.read(5 * time.Second)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseServiceRestart || ce.Text != "shutdown" {
		t.Fatalf("want close 1012 shutdown, got %v", err)
	}
	if _, status, body, _ := tryDial(t, r1.URL, nil); status != http.StatusServiceUnavailable || !strings.HasPrefix(body, "shutdown:") {
		t.Fatalf("a new socket on the draining replica: %d %q", status, body)
	}

	// The model goes on; the draining replica finishes the turn.
	slow.gate <- "upon a time."
	close(slow.gate)
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}

	c2 := dial(t, r2.URL)
	if ev := c2.resume(c.session, c.token, c.lastID); ev.Type != "session" || !ev.Resumed {
		t.Fatalf("resume: %s", ev.raw)
	}
	evs := c2.until("reply.done", 1)
	if done := evs[len(evs)-1]; done.Text != "Once upon a time." {
		t.Fatalf("reply.done %q", done.Text)
	}
	seen := map[string]bool{}
	for _, ev := range evs {
		if ev.ID == "" {
			continue
		}
		if seen[ev.ID] || session.CompareIDs(ev.ID, c.lastID) <= 0 {
			t.Fatalf("event %s sent twice, or again after the resume point %s: %v", ev.ID, c.lastID, evs)
		}
		seen[ev.ID] = true
	}
	// The conversation goes on, on the other replica.
	c2.send(map[string]any{"type": "text", "text": "thanks"})
	if evs := c2.until("reply.done", 2); evs[len(evs)-1].Text != "echo: thanks" {
		t.Fatalf("next turn: %v", evs)
	}
}
