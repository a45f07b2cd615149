package parley_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/signaling"
)

// A replica drained (SIGTERM) with a turn under way: its client is told to
// reconnect, with a delay within the default spread, then closed with
// 1012; so are its idle sockets and a WebSocket call, each told before its
// close frame; new sockets are refused; the replica finishes the turn
// during its drain; the client, resumed on another replica, receives the
// rest of the turn, each event once.
func TestGracefulDrain(t *testing.T) {
	rdb := newRedis(t)
	slow := newGateLLM()
	r1 := startReplica(t, rdb, slow, replicaOpts{asr: fakeASR(), tts: fakeTTS()})
	r2 := startReplica(t, rdb, &echoLLM{max: 1}, replicaOpts{})

	c := dial(t, r1.URL)
	c.Hello()
	idle := make([]*client, 20)
	for i := range idle {
		idle[i] = dial(t, r1.URL)
		idle[i].Hello()
	}
	call := dial(t, r1.URL)
	call.Send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "ws", "codec": "opus"}})
	if ev := call.Next(); ev.Type != "session" {
		t.Fatalf("call hello: %s", ev.Raw)
	}
	call.Until("state", 0) // the call is on: its writer serves audio now
	c.Send(map[string]any{"type": "text", "text": "tell me a story"})
	<-slow.started
	slow.gate <- "Once "
	c.Until("reply.delta", 1)

	drained := make(chan error, 1)
	go func() { drained <- r1.drain(10 * time.Second) }()
	delays := map[int64]bool{}
	for _, cl := range append([]*client{c, call}, idle...) {
		ev := toldToReconnect(t, cl)
		if ev.RetryAfterMs < 0 || ev.RetryAfterMs >= 2000 {
			t.Fatalf("retry_after_ms %d: want a delay within the default 2 s spread", ev.RetryAfterMs)
		}
		delays[ev.RetryAfterMs] = true
	}
	if len(delays) < 2 {
		t.Fatalf("22 sockets were all told to wait the same %v ms: the delay is not spread", delays)
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
	if ev := c2.Resume(c.Session, c.Token, c.LastID); ev.Type != "session" || !ev.Resumed {
		t.Fatalf("resume: %s", ev.Raw)
	}
	evs := c2.Until("reply.done", 1)
	if done := evs[len(evs)-1]; done.Text != "Once upon a time." {
		t.Fatalf("reply.done %q", done.Text)
	}
	seen := map[string]bool{}
	for _, ev := range evs {
		if ev.ID == "" {
			continue
		}
		if seen[ev.ID] || session.CompareIDs(ev.ID, c.LastID) <= 0 {
			t.Fatalf("event %s sent twice, or again after the resume point %s: %v", ev.ID, c.LastID, evs)
		}
		seen[ev.ID] = true
	}
	// The conversation goes on, on the other replica.
	c2.Send(map[string]any{"type": "text", "text": "thanks"})
	if evs := c2.Until("reply.done", 2); evs[len(evs)-1].Text != "echo: thanks" {
		t.Fatalf("next turn: %v", evs)
	}
}

// toldToReconnect reads a drained socket to its end: a reconnect event
// (after any call state), then the close frame 1012 shutdown.
func toldToReconnect(t *testing.T, c *client) msg {
	t.Helper()
	ev := c.Next()
	for ev.Type == "state" {
		ev = c.Next()
	}
	if ev.Type != "reconnect" || !strings.Contains(ev.Raw, `"reason":"shutdown"`) || !strings.Contains(ev.Raw, `"retry_after_ms":`) {
		t.Fatalf("want a reconnect event with retry_after_ms before the close, got %s", ev.Raw)
	}
	_, err := c.Read(5 * time.Second)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseServiceRestart || ce.Text != "shutdown" {
		t.Fatalf("want close 1012 shutdown after the reconnect event, got %v", err)
	}
	return ev
}

// Config.ReconnectSpread sets the window of the suggested delays.
func TestReconnectSpread(t *testing.T) {
	rdb := newRedis(t)
	const spread = 50 * time.Millisecond
	r := startReplica(t, rdb, &echoLLM{max: 1}, replicaOpts{ws: signaling.Config{ReconnectSpread: spread}})
	cs := make([]*client, 10)
	for i := range cs {
		cs[i] = dial(t, r.URL)
		cs[i].Hello()
	}
	go func() { _ = r.drain(10 * time.Second) }()
	for _, c := range cs {
		if ev := toldToReconnect(t, c); ev.RetryAfterMs < 0 || ev.RetryAfterMs >= spread.Milliseconds() {
			t.Fatalf("retry_after_ms %d, want within [0, %d)", ev.RetryAfterMs, spread.Milliseconds())
		}
	}
}

// Sockets that are being upgraded while the replica starts draining are
// either refused (503 shutdown) or told to reconnect and closed: none is
// left open, unseen by the drain, until its client gives up.
func TestDrainWhileClientsConnect(t *testing.T) {
	rdb := newRedis(t)
	r := startReplica(t, rdb, &echoLLM{max: 1}, replicaOpts{})
	const dialers = 20
	var dials, checks sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(msg string) {
		mu.Lock()
		failures = append(failures, msg)
		mu.Unlock()
	}
	for range dialers {
		dials.Add(1)
		go func() { // ends at the first refusal, or a failed dial
			defer dials.Done()
			for {
				ws, resp, err := websocket.DefaultDialer.Dial(r.URL, nil)
				if err != nil {
					if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
						fail("dial: " + err.Error())
					}
					return
				}
				checks.Add(1)
				go func() { // ends when the server has ended the socket
					defer checks.Done()
					defer ws.Close()
					if msg := endsWithReconnect(ws); msg != "" {
						fail(msg)
					}
				}()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // dials under way
	done := make(chan error, 1)
	go func() { done <- r.gw.Shutdown(t.Context()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Error("Shutdown still waits for a socket 20 s later: one was never told to reconnect")
	}
	dials.Wait()
	checks.Wait()
	for _, f := range failures {
		t.Error(f)
	}
}

// endsWithReconnect reads a socket until the server ends it: with the
// reconnect event, then 1012. It returns what went wrong, or "".
func endsWithReconnect(ws *websocket.Conn) string {
	_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil {
		return "no reconnect event before the socket ended: " + err.Error()
	}
	var ev struct{ Type string }
	if json.Unmarshal(b, &ev) != nil || ev.Type != "reconnect" {
		return "want reconnect first, got " + string(b)
	}
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseServiceRestart {
		return fmt.Sprintf("want close 1012 after reconnect, got %v", err)
	}
	return ""
}

// WebSocket calls drained while their replies are being spoken: the
// reconnect event still comes before the close frame (the call's writer,
// busy with audio, must not skip the queued event when the socket closes).
func TestDrainDuringSpokenReplies(t *testing.T) {
	rdb := newRedis(t)
	r := startReplica(t, rdb, &echoLLM{max: 1}, replicaOpts{asr: fakeASR(), tts: fakeTTS()})
	long := strings.TrimSpace(strings.Repeat("word ", 300)) // 6 s of audio
	calls := make([]*client, 8)
	for i := range calls {
		calls[i] = dial(t, r.URL)
		calls[i].Send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "ws", "codec": "opus"}})
		if ev := calls[i].Next(); ev.Type != "session" {
			t.Fatalf("call hello: %s", ev.Raw)
		}
		calls[i].Send(map[string]any{"type": "text", "text": long})
	}
	for _, c := range calls {
		_ = c.WS.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			kind, _, err := c.WS.ReadMessage()
			if err != nil {
				t.Fatalf("before the drain: %v", err)
			}
			if kind == websocket.BinaryMessage {
				break // the reply is being spoken
			}
		}
	}
	go func() { _ = r.drain(10 * time.Second) }()
	for i, c := range calls {
		_ = c.WS.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			kind, b, err := c.WS.ReadMessage()
			if err != nil {
				t.Fatalf("call %d ended without a reconnect event: %v", i, err)
			}
			if kind == websocket.TextMessage && strings.Contains(string(b), `"type":"reconnect"`) {
				break
			}
		}
		kind, b, err := c.WS.ReadMessage()
		for err == nil && kind == websocket.BinaryMessage { // audio already queued may follow
			kind, b, err = c.WS.ReadMessage()
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseServiceRestart {
			t.Fatalf("call %d: want close 1012 after reconnect, got %v %s", i, err, b)
		}
	}
}
