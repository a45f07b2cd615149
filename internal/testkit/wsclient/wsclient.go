package wsclient

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Msg is any server message, decoded loosely; Raw is its text.
type Msg struct {
	Type         string `json:"type"`
	ID           string `json:"id"`
	Turn         int64  `json:"turn"`
	Text         string `json:"text"`
	Final        bool   `json:"final"`
	Reset        bool   `json:"reset"`
	Interrupted  bool   `json:"interrupted"`
	Session      string `json:"session"`
	Token        string `json:"token"`
	Resumed      bool   `json:"resumed"`
	Code         string `json:"code"`
	Message      string `json:"message"`
	RetryAfterMs int64  `json:"retry_after_ms"`
	Raw          string `json:"-"`
}

// Client is one socket of a test.
type Client struct {
	t      testing.TB
	sendMu sync.Mutex
	WS     *websocket.Conn
	// Session and Token are the session's, once Hello or Resume has run;
	// LastID is the id of the last stored event read.
	Session, Token, LastID string
}

// Dial connects to url (ws://host/ws), or fails the test. The socket is
// closed when the test ends.
func Dial(t testing.TB, url string) *Client {
	t.Helper()
	return DialWith(t, url, nil)
}

// DialWith is Dial with request headers.
func DialWith(t testing.TB, url string, h http.Header) *Client {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return Wrap(t, ws)
}

// Wrap makes a Client of a socket the test dialled itself.
func Wrap(t testing.TB, ws *websocket.Conn) *Client {
	t.Cleanup(func() { ws.Close() })
	return &Client{t: t, WS: ws}
}

// Send writes v as a JSON text frame.
func (c *Client) Send(v any) {
	c.t.Helper()
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	_ = c.WS.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.WS.WriteJSON(v); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// SendRaw writes one frame as it is.
func (c *Client) SendRaw(kind int, b []byte) {
	c.t.Helper()
	if err := c.Write(kind, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// Write writes one frame and returns what went wrong (a socket the server
// closed, say), for a test that expects it may.
func (c *Client) Write(kind int, b []byte) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	_ = c.WS.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.WS.WriteMessage(kind, b)
}

// Next reads the next message, failing the test after a generous timeout
// (a hang, not a timing assertion).
func (c *Client) Next() Msg {
	c.t.Helper()
	return c.NextWithin(10 * time.Second)
}

// NextWithin is Next with its own timeout.
func (c *Client) NextWithin(d time.Duration) Msg {
	c.t.Helper()
	ev, err := c.Read(d)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return ev
}

// Read returns the next text message; audio frames are skipped.
func (c *Client) Read(timeout time.Duration) (Msg, error) {
	_ = c.WS.SetReadDeadline(time.Now().Add(timeout))
	kind, b, err := c.WS.ReadMessage()
	for err == nil && kind == websocket.BinaryMessage {
		kind, b, err = c.WS.ReadMessage()
	}
	if err != nil {
		return Msg{}, err
	}
	var ev Msg
	if err := json.Unmarshal(b, &ev); err != nil {
		return Msg{}, fmt.Errorf("bad JSON from server %q: %v", b, err)
	}
	ev.Raw = string(b)
	if ev.ID != "" {
		c.LastID = ev.ID
	}
	return ev, nil
}

// Until reads until a message of type typ (for turn, if turn > 0) and
// returns everything read, that message last.
func (c *Client) Until(typ string, turn int64) []Msg {
	c.t.Helper()
	var evs []Msg
	for {
		ev := c.Next()
		evs = append(evs, ev)
		if ev.Type == typ && (turn == 0 || ev.Turn == turn) {
			return evs
		}
	}
}

// Hello starts a new session.
func (c *Client) Hello() {
	c.t.Helper()
	c.Send(map[string]any{"type": "hello"})
	ev := c.Next()
	if ev.Type != "session" || ev.Session == "" || ev.Token == "" || ev.Resumed {
		c.t.Fatalf("hello: got %s", ev.Raw)
	}
	c.Session, c.Token = ev.Session, ev.Token
}

// Resume resumes a session from last and returns the server's answer.
func (c *Client) Resume(session, token, last string) Msg {
	c.t.Helper()
	c.Send(map[string]any{"type": "hello", "session": session, "token": token, "last_event": last})
	c.Session, c.Token = session, token
	return c.Next()
}
