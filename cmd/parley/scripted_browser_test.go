//go:build !nospeech

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/web"
)

// scripted is a /ws endpoint that plays the server's part of a script, in
// the wire protocol, beside the real page: it can say things the real
// server says only in rare moments (a drain's reconnect event with its
// retry_after_ms), refuse connections, and tell when each came.
type scripted struct {
	srv     *httptest.Server
	conns   chan *scriptedConn
	refuse  chan int // upgrades still to refuse, handed back and forth
	refused chan time.Time
}

type scriptedConn struct {
	ws *websocket.Conn
	at time.Time
}

func newScripted(t *testing.T) *scripted {
	s := &scripted{conns: make(chan *scriptedConn, 8), refuse: make(chan int, 1), refused: make(chan time.Time, 16)}
	s.refuse <- 0
	up := websocket.Upgrader{}
	page := web.Handler()
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			page.ServeHTTP(w, r)
			return
		}
		if !websocket.IsWebSocketUpgrade(r) { // the page asking why it was refused
			http.Error(w, "shutdown: scripted refusal", http.StatusServiceUnavailable)
			return
		}
		n := <-s.refuse
		if n > 0 {
			s.refuse <- n - 1
			s.refused <- time.Now()
			http.Error(w, "shutdown: scripted refusal", http.StatusServiceUnavailable)
			return
		}
		s.refuse <- 0
		at := time.Now()
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		s.conns <- &scriptedConn{ws: ws, at: at}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *scripted) accept(t *testing.T) *scriptedConn {
	t.Helper()
	select {
	case c := <-s.conns:
		t.Cleanup(func() { c.ws.Close() })
		return c
	case <-time.After(40 * time.Second):
		t.Fatal("the page did not connect")
		return nil
	}
}

type helloMsg struct {
	Type, Session, Token string
	LastEvent            string `json:"last_event"`
}

func (c *scriptedConn) hello(t *testing.T) helloMsg {
	t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h helloMsg
	if err := c.ws.ReadJSON(&h); err != nil || h.Type != "hello" {
		t.Fatalf("want hello, got %+v (%v)", h, err)
	}
	return h
}

func (c *scriptedConn) send(t *testing.T, msgs ...string) {
	t.Helper()
	for _, m := range msgs {
		_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
}

func (c *scriptedConn) close(code int, reason string) {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	_ = c.ws.Close()
}

func transcriptWire(id string, turn int, text string) string {
	b, _ := json.Marshal(map[string]any{"id": id, "type": "transcript", "turn": turn, "text": text, "final": true, "source": "text"})
	return string(b)
}

// reconnectPolicy: after the server's reconnect event the page waits its
// retry_after_ms; attempts that do not reach a session back off; every
// attempt resumes with session, token and last_event; a replayed event is
// not shown twice.
func reconnectPolicy(t *testing.T, chromium string) {
	s := newScripted(t)
	b := newBrowser(t, chromium, "")
	b.run(chromedp.Navigate(s.srv.URL + "/"))

	c := s.accept(t)
	if h := c.hello(t); h.Session != "" {
		t.Fatalf("first hello resumes: %+v", h)
	}
	c.send(t, `{"type":"session","session":"s1","token":"t1","resumed":false}`, transcriptWire("100-1", 1, "first"))
	b.poll(`[...document.querySelectorAll('.msg.user')].some(e => e.textContent === 'first')`)
	const retryAfter = 1500 * time.Millisecond
	c.send(t, fmt.Sprintf(`{"type":"reconnect","reason":"shutdown","message":"draining","retry_after_ms":%d}`, retryAfter.Milliseconds()))
	closed := time.Now()
	c.close(websocket.CloseServiceRestart, "shutdown")

	resumes := func(c *scriptedConn) {
		t.Helper()
		if h := c.hello(t); h.Session != "s1" || h.Token != "t1" || h.LastEvent != "100-1" {
			t.Fatalf("the page did not resume: %+v", h)
		}
	}
	// Not before the server said (a lower bound: a loaded machine only
	// makes the wait longer).
	c = s.accept(t)
	if waited := c.at.Sub(closed); waited < retryAfter {
		t.Fatalf("the page reconnected %v after the close; the server said %v", waited, retryAfter)
	}
	resumes(c)
	// Closed before the session, then two upgrades refused: each counts
	// as a failed attempt, and the page keeps trying.
	<-s.refuse
	s.refuse <- 2
	c.close(1013, "try_again_later")
	for range 2 {
		select {
		case <-s.refused:
		case <-time.After(40 * time.Second):
			t.Fatal("the page stopped trying")
		}
	}
	c = s.accept(t)
	resumes(c)
	// The replay overlaps what the page has: shown once.
	c.send(t, `{"type":"session","session":"s1","token":"t1","resumed":true}`, transcriptWire("100-1", 1, "first"), transcriptWire("100-2", 2, "second"))
	b.poll(`[...document.querySelectorAll('.msg.user')].map(e => e.textContent).join('|') === 'first|second'`)
	b.poll(`[...document.querySelectorAll('.msg.sys')].some(e => e.textContent.startsWith('Reconnected'))`)

	// The backoff itself: exponential from 0.5 s to 10 s, full jitter.
	got := b.evalAsync(`import('/client.js').then((m) => {
		const top = () => 0.999999;
		const caps = [0, 1, 2, 3, 4, 5, 8].map((n) => m.backoffDelay(n, top));
		const xs = Array.from({ length: 200 }, () => m.backoffDelay(3));
		return JSON.stringify({ caps, zero: m.backoffDelay(3, () => 0), inRange: xs.every((x) => x >= 0 && x < 4000), distinct: new Set(xs).size > 50 });
	})`)
	if want := `{"caps":[499,999,1999,3999,7999,9999,9999],"zero":0,"inRange":true,"distinct":true}`; got != want {
		t.Fatalf("backoff: %s, want %s", got, want)
	}
	if !strings.Contains(b.eval(`document.getElementById('status').textContent`), "reconnected") {
		t.Fatalf("status %q", b.eval(`document.getElementById('status').textContent`))
	}
}

// read returns the next client message, skipping candidates.
func (c *scriptedConn) read(t *testing.T) map[string]any {
	t.Helper()
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		kind, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var m map[string]any
		if kind != websocket.TextMessage || json.Unmarshal(b, &m) != nil {
			t.Fatalf("unexpected frame %q", b)
		}
		if m["type"] != "candidate" {
			return m
		}
	}
}

// failedFallback: a WebRTC call that does not connect, and a server that
// refuses to move it. The page says the call failed, gives the Call
// button back, and shows no state of a dead call, whatever comes after.
func failedFallback(t *testing.T, chromium, mic string) {
	s := newScripted(t)
	b := newBrowser(t, chromium, mic)
	b.run(chromedp.Navigate(s.srv.URL + "/"))
	c := s.accept(t)
	c.hello(t)
	c.send(t, `{"type":"session","session":"s1","token":"t1","resumed":false}`)
	b.run(chromedp.WaitVisible("#call"))
	b.eval(`document.getElementById('transport').value = 'webrtc'`)
	b.run(chromedp.Click("#call"))

	c = s.accept(t)
	if m := c.read(t); m["type"] != "hello" || fmt.Sprint(m["audio"]) != "map[codec:opus transport:webrtc]" {
		t.Fatalf("want the call's hello, got %v", m)
	}
	c.send(t, `{"type":"session","session":"s1","token":"t1","resumed":true}`, `{"type":"state","state":"listening"}`)
	if m := c.read(t); m["type"] != "offer" {
		t.Fatalf("want the offer, got %v", m)
	}
	// No answer: WebRTC cannot connect, and the page asks to move.
	if m := c.read(t); m["type"] != "audio" || m["transport"] != "ws" {
		t.Fatalf("want the move, got %v", m)
	}
	c.send(t, `{"type":"error","code":"bad_request","message":"scripted: no move"}`)
	b.poll(`[...document.querySelectorAll('.msg.err')].some(e => e.textContent.includes('could not move to the WebSocket: scripted: no move'))`)
	b.poll(`document.getElementById('state').textContent === 'call failed' && document.getElementById('call').textContent === 'Call'`)

	// The page hangs up: hello without audio. A late state of the dead
	// call changes nothing.
	c = s.accept(t)
	if h := c.hello(t); h.Session != "s1" {
		t.Fatalf("%+v", h)
	}
	c.send(t, `{"type":"session","session":"s1","token":"t1","resumed":true}`, `{"type":"state","state":"listening"}`, transcriptWire("100-1", 1, "typed"))
	b.poll(`[...document.querySelectorAll('.msg.user')].some(e => e.textContent === 'typed')`)
	if got := b.eval(`document.getElementById('state').textContent + ' | ' + document.getElementById('status').textContent`); got != "call failed | connected" {
		t.Fatalf("after the failed call: %s", got)
	}
	b.expectNoLine(fallbackLine)
}
