package signaling_test

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/signaling"
)

// The sockets' clocks: pings, and the deadlines of reads and writes.
// These tests shorten them from their defaults (30 s of pings, 75 s of
// silence, 10 s for a write) so that a test sees them run.

// A socket is pinged every PingInterval, and a client that answers stays
// past the read timeout.
func TestSocketsArePinged(t *testing.T) {
	// A read timeout of twenty pings: a loaded machine that delays a few
	// does not close the socket.
	ws, rec := greeted(t, signaling.Config{PingInterval: 50 * time.Millisecond, ReadTimeout: time.Second})
	var pings atomic.Int32
	ws.SetPingHandler(func(data string) error {
		pings.Add(1)
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() { // reads (and so answers pings) until the socket closes
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	eventually(t, "4 pings", func() bool { return pings.Load() >= 4 })
	time.Sleep(1500 * time.Millisecond) // past the read timeout: the pongs kept it open
	if err := ws.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, rec, 1)
	select {
	case <-rec.sock.Done():
		t.Fatalf("the socket closed: %v", rec.sock.Reason())
	default:
	}
}

// A write to a client that reads nothing fails at its deadline, and the
// socket closes saying so, before its send queue fills.
func TestStuckWriteFails(t *testing.T) {
	_, rec := greeted(t, signaling.Config{WriteTimeout: 200 * time.Millisecond, SendQueue: 4096})
	big := bytes.Repeat([]byte("x"), 1<<20) // the same slice each time: the queue holds no copies
	for range 100 {                         // more than loopback's buffers hold
		rec.sock.Send(big)
	}
	closedFor(t, rec, signaling.ReasonWriteFailed, "the stuck write")
}

// A client that says hello and then nothing, not even a pong, is closed
// once the read timeout has passed.
func TestSilentSocketTimesOut(t *testing.T) {
	_, rec := greeted(t, signaling.Config{ReadTimeout: 200 * time.Millisecond})
	closedFor(t, rec, signaling.ReasonReadTimeout, "the silent client")
}

// greeted dials a socket of cfg's and says hello on it; it returns the
// client's connection and the server side's recorder.
func greeted(t *testing.T, cfg signaling.Config) (*websocket.Conn, *recorder) {
	t.Helper()
	url, recs := socketServer(t, cfg)
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	rec := <-recs
	waitFor(t, rec, 1)
	return ws, rec
}

// closedFor waits for rec's socket to close and checks why.
func closedFor(t *testing.T, rec *recorder, want signaling.Reason, what string) {
	t.Helper()
	select {
	case <-rec.sock.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the socket is still open", what)
	}
	if r := rec.sock.Reason(); r != want {
		t.Fatalf("%s: closed for %v, want %v", what, r, want)
	}
}
