package redistest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// LossyLink is a TCP relay to a Redis that can lose a reply: after
// DropNextReply, the next bytes Redis sends on any connection are not
// passed on and that client's connection is closed, as when a link fails
// after Redis ran the commands and before their reply came back. Its
// connections end with the test.
type LossyLink struct {
	Addr string // 127.0.0.1:port, for a client to dial

	to    string
	ln    net.Listener
	drop  atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
}

// NewLossyLink relays to the Redis at to until tb ends.
func NewLossyLink(tb testing.TB, to string) *LossyLink {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	l := &LossyLink{Addr: ln.Addr().String(), to: to, ln: ln}
	go l.accept() // ends when the listener closes
	tb.Cleanup(l.close)
	return l
}

// DropNextReply loses the next reply Redis sends.
func (l *LossyLink) DropNextReply() { l.drop.Store(true) }

// StartLossy runs a fresh redis-server behind a LossyLink and returns
// them with a client through the link, on go-redis's defaults (its
// retries included, which is what sends a script again after its reply
// is lost), closed when tb ends.
func StartLossy(tb testing.TB) (*Server, *LossyLink, *redis.Client) {
	tb.Helper()
	srv := Start(tb)
	link := NewLossyLink(tb, srv.Addr)
	c := redis.NewClient(&redis.Options{Addr: link.Addr})
	tb.Cleanup(func() { c.Close() })
	return srv, link, c
}

// LoseScriptReply runs f with the next reply lost, and fails tb unless
// Redis ran a script twice meanwhile: the run whose reply was lost and
// the client's retry. direct is a client of the Redis itself.
func (l *LossyLink) LoseScriptReply(tb testing.TB, direct redis.UniversalClient, f func()) {
	tb.Helper()
	before := Calls(tb, direct, "evalsha", "eval")
	l.DropNextReply()
	f()
	if runs := Calls(tb, direct, "evalsha", "eval") - before; runs != 2 {
		tb.Fatalf("the script ran %d times, want 2 (the lost run and the client's retry)", runs)
	}
}

func (l *LossyLink) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		r, err := net.Dial("tcp", l.to)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, c, r)
		l.mu.Unlock()
		go func() { _, _ = io.Copy(r, c) }() // ends when either side closes
		go l.replies(c, r)                   // likewise
	}
}

// replies passes Redis's bytes to the client, but for a dropped reply.
func (l *LossyLink) replies(c, r net.Conn) {
	defer c.Close()
	defer r.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if err != nil {
			return
		}
		if l.drop.CompareAndSwap(true, false) {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (l *LossyLink) close() {
	l.ln.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}
