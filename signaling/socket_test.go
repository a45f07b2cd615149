package signaling_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/signaling"
)

// recorder is a Handler that keeps what it is given; its first frame
// greets the socket, as a protocol's hello does.
type recorder struct {
	sock   *signaling.Socket
	mu     sync.Mutex
	frames []string
	pongs  int
	got    chan struct{}
}

func (r *recorder) Frame(kind int, data []byte) {
	if r.sock != nil {
		r.sock.Greeted()
	}
	r.mu.Lock()
	r.frames = append(r.frames, fmt.Sprintf("%d:%s", kind, data))
	r.mu.Unlock()
	r.got <- struct{}{}
}

func (r *recorder) Pong() {
	r.mu.Lock()
	r.pongs++
	r.mu.Unlock()
	r.got <- struct{}{}
}

// socketServer serves one protocol whose sockets hand their frames to a
// recorder, and returns its URL and the recorders as they come.
func socketServer(t *testing.T, cfg signaling.Config) (string, chan *recorder) {
	t.Helper()
	gw := signaling.NewGateway(cfg, slog.New(slog.DiscardHandler))
	ep := gw.Endpoint(signaling.Protocol{CloseCode: func(signaling.Reason) int { return 4000 }})
	recs := make(chan *recorder, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := ep.Accept(w, r)
		if s == nil {
			return
		}
		rec := &recorder{sock: s, got: make(chan struct{}, 1024)}
		recs <- rec
		ep.Serve(s, func() { s.Serve(rec) })
	}))
	t.Cleanup(func() {
		_ = gw.Shutdown(t.Context())
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http"), recs
}

// goroutinesIn counts the goroutines whose stack has fn in it.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(fn)) {
			n++
		}
	}
	return n
}

// eventually polls cond for up to 5 s: a reading goroutine ends just
// after its handler's call returns.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("still not so after 5 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitFor(t *testing.T, rec *recorder, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-rec.got:
		case <-time.After(5 * time.Second):
			t.Fatalf("the handler heard %d of %d calls", i, n)
		}
	}
}

// maskedFrame is a client's frame, masked as RFC 6455 asks of clients.
func maskedFrame(op byte, payload []byte) []byte {
	f := []byte{0x80 | op}
	switch n := len(payload); {
	case n <= 125:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	key := []byte{0x12, 0x34, 0x56, 0x78}
	f = append(f, key...)
	for i, b := range payload {
		f = append(f, b^key[i%4])
	}
	return f
}

// An idle socket parks no goroutine in gorilla's read path (whose stack
// grows to 8 KB, half an idle socket's memory): once quiet, it waits on a
// shallow one, without a read buffer, and the pings and pongs between
// messages are read outside gorilla. Every message still reaches the handler once, in order,
// whatever way its bytes come: many in one write, split across writes,
// larger than the read buffer, with pings and pongs between them.
func TestIdleSocketWaitsShallow(t *testing.T) {
	// Quiet after 50 ms (default 5 s), so that each step's hand-back to the
	// shallow wait comes quickly.
	url, recs := socketServer(t, signaling.Config{QuietAfter: 50 * time.Millisecond})
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	rec := <-recs
	var pongs sync.WaitGroup
	ws.SetPongHandler(func(string) error { pongs.Done(); return nil })
	go func() { // the client reads, so that its pong handler runs
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	raw := ws.NetConn() // past the handshake: frames written by hand
	idle := func(step string) {
		t.Helper()
		// Both at once: between a reading goroutine's end and the wait's
		// park, neither is there. The wait holds no read buffer: it is in
		// the pool for the next socket that reads.
		eventually(t, step+": no goroutine reads messages, one waits for the client, without a read buffer", func() bool {
			return goroutinesIn("signaling.(*Socket).readMessages") == 0 && goroutinesIn("signaling.(*readiness).wait") == 1 &&
				!rec.sock.ReadBufferHeldForTest()
		})
	}

	big := strings.Repeat("x", 5000) // ten read buffers
	var want []string
	steps := []struct {
		name   string
		writes [][]byte // each its own write, with a pause between them
		calls  int      // the handler's calls it makes (frames and pongs)
		pings  int      // pongs the client should get
		frames []string
	}{
		{name: "hello", writes: [][]byte{maskedFrame(0x1, []byte("hello"))}, calls: 1, frames: []string{"1:hello"}},
		{name: "a ping while idle", writes: [][]byte{maskedFrame(0x9, []byte("p1"))}, pings: 1},
		{name: "a pong while idle", writes: [][]byte{maskedFrame(0xa, nil)}, calls: 1},
		{name: "three messages and a ping in one write", writes: [][]byte{bytes.Join([][]byte{
			maskedFrame(0x1, []byte("a")), maskedFrame(0x9, nil), maskedFrame(0x2, []byte("b")), maskedFrame(0x1, []byte(big)),
		}, nil)}, calls: 3, pings: 1, frames: []string{"1:a", "2:b", "1:" + big}},
		{name: "a message split in three writes", writes: func() [][]byte {
			f := maskedFrame(0x1, []byte("split"))
			return [][]byte{f[:1], f[1:5], f[5:]}
		}(), calls: 1, frames: []string{"1:split"}},
		{name: "a ping split in two writes, then a message", writes: func() [][]byte {
			f := maskedFrame(0x9, []byte("ping!"))
			return [][]byte{f[:3], append(f[3:], maskedFrame(0x1, []byte("after"))...)}
		}(), calls: 1, pings: 1, frames: []string{"1:after"}},
		{name: "a fragmented message with a ping inside", writes: [][]byte{
			{0x01, 0x80 | 2, 0, 0, 0, 0, 'f', 'r'}, // text, not final, mask key 0
			maskedFrame(0x9, nil),
			{0x80, 0x80 | 3, 0, 0, 0, 0, 'a', 'g', '!'}, // continuation, final
		}, calls: 1, pings: 1, frames: []string{"1:frag!"}},
	}
	for _, st := range steps {
		pongs.Add(st.pings)
		for i, w := range st.writes {
			if i > 0 {
				time.Sleep(20 * time.Millisecond) // the server reads what came so far
			}
			if _, err := raw.Write(w); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
		waitFor(t, rec, st.calls)
		pongsDone := make(chan struct{})
		go func() { pongs.Wait(); close(pongsDone) }()
		select {
		case <-pongsDone:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the client's pings were not all answered", st.name)
		}
		want = append(want, st.frames...)
		idle(st.name)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if strings.Join(rec.frames, "|") != strings.Join(want, "|") {
		t.Fatalf("frames %q\nwant %q", rec.frames, want)
	}
	if rec.pongs != 1 {
		t.Fatalf("the handler heard %d pongs, want 1", rec.pongs)
	}
}

// What the shallow wait sees goes where a read error went: a client that
// says nothing is closed at the hello's deadline with its reason, a frame
// the wait does not read itself goes to gorilla, which judges it (an
// oversized message, a ping without a mask, reserved bits: gorilla's own
// close frame), and a client that hangs up ends the socket; each
// socket's goroutines end.
func TestShallowWaitReasons(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   signaling.Config
		write []byte
		code  int    // the close frame's code; 0 for none (the client hung up)
		want  string // in the close frame's text
	}{
		// A short hello deadline (default 10 s), so that the test need not wait.
		{name: "silent", cfg: signaling.Config{HelloTimeout: 200 * time.Millisecond}, code: 4000, want: "hello_timeout"},
		{name: "too big", cfg: signaling.Config{}, write: maskedFrame(0x1, make([]byte, 2<<20)), code: websocket.CloseMessageTooBig},
		{name: "unmasked ping", cfg: signaling.Config{}, write: []byte{0x89, 0}, code: websocket.CloseProtocolError, want: "bad MASK"},
		{name: "reserved bits on a pong", cfg: signaling.Config{}, write: []byte{0xca, 0x80, 0, 0, 0, 0}, code: websocket.CloseProtocolError, want: "RSV1"},
		{name: "hang up", cfg: signaling.Config{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, recs := socketServer(t, tc.cfg)
			ws, _, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			<-recs
			if tc.write != nil {
				go func() { _, _ = ws.NetConn().Write(tc.write) }()
			}
			if tc.code == 0 {
				_ = ws.NetConn().Close()
			} else {
				_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, _, err = ws.ReadMessage()
				ce, ok := err.(*websocket.CloseError)
				if !ok || ce.Code != tc.code || !strings.Contains(ce.Text, tc.want) {
					t.Fatalf("read %v, want a close frame %d saying %q", err, tc.code, tc.want)
				}
				_ = ws.Close()
			}
			eventually(t, "the socket's goroutines end", func() bool {
				return goroutinesIn("signaling.(*Socket)") == 0
			})
		})
	}
}

// An idle socket's one goroutine keeps the smallest stack Go gives (2 KB):
// every call its wait makes counts, and one frame too many doubles it for
// every idle socket (the reader's 8 KB were half an idle socket's memory).
// Sockets that said hello, were pinged by their client and answered it,
// then went quiet.
func TestIdleSocketStack(t *testing.T) {
	// (The server's figure, with Go's defaults, is in docs/benchmarks.md,
	// "Idle scale".)
	if !testkit.WithoutAdaptiveStacks(t) {
		return
	}
	// Quiet after 20 ms (default 5 s): the sockets give their readers back
	// soon after their hello.
	url, recs := socketServer(t, signaling.Config{QuietAfter: 20 * time.Millisecond})
	const n = 1000 // beside the noise of the Ps' stack caches (StackPer)
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, ws := range conns {
			ws.Close()
		}
	}()
	// The client side's goroutines are the test's: none reads, none is
	// started. What the server's sockets hold is the difference.
	testkit.StackPer(t, n, stackBound, func(int) {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, ws)
		rec := <-recs
		raw := ws.NetConn()
		if _, err := raw.Write(append(maskedFrame(0x1, []byte(`{"type":"hello"}`)), maskedFrame(0x9, nil)...)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, rec, 1)
	})
}

// stackBound is what an idle socket's stack may take in
// TestIdleSocketStack: 2 KB (one goroutine on Go's smallest stack) and
// the noise of 1,000 sockets; under the race
// detector, whose frames are larger, under the 8 KB of a reader parked in
// gorilla (make test also runs the test without it, for the 2 KB).
var stackBound = map[bool]float64{false: 2560, true: 4608}[testkit.Race]

// A socket's first message (a hello, then silence, say) gives its reading
// goroutine back at once; a busy socket (its messages within QuietAfter
// of each other) keeps it between messages (handing each message to a new
// goroutine cost 10 % more server CPU per turn), and gives it back once
// it has been quiet for QuietAfter; a message after that is read as
// before.
func TestBusySocketKeepsItsReader(t *testing.T) {
	// Quiet after 1 s (default 5 s): long enough to see the reader stay
	// between messages 20 ms apart, on a loaded machine too, short enough
	// for the test (the hand-back takes one to two times it).
	url, recs := socketServer(t, signaling.Config{QuietAfter: time.Second})
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	rec := <-recs
	readers := func() int { return goroutinesIn("signaling.(*Socket).readMessages") }
	for i := 0; i < 10; i++ {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, rec, 1)
		if i == 0 {
			eventually(t, "the first message's reader ends", func() bool { return readers() == 0 })
			continue
		}
		time.Sleep(20 * time.Millisecond)
		if n := readers(); n != 1 {
			t.Fatalf("after message %d: %d reading goroutines, want the one that stays", i, n)
		}
	}
	eventually(t, "the quiet socket gives its reader back", func() bool { return readers() == 0 })
	if err := ws.WriteMessage(websocket.TextMessage, []byte("after")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, rec, 1)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if got := strings.Join(rec.frames, ","); got != "1:0,1:1,1:2,1:3,1:4,1:5,1:6,1:7,1:8,1:9,1:after" {
		t.Fatalf("frames %s", got)
	}
}
