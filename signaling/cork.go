package signaling

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// corkConn is a socket's TCP connection that can hold writes back: while
// corked, frames are gathered and go out in one write when uncorked. The
// writer corks when it has several frames queued (a reply's last delta
// and its reply.done, say): one syscall instead of one per frame.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    *[]byte // from corkBuffers while corked, nil between

	dmu sync.Mutex
	wdl time.Time // the write deadline set on Conn
}

// SetWriteDeadline sets the deadline of later writes, except that it
// keeps the one already set when that one still leaves at least half the
// time asked for and the new one would only push it back: gorilla sets a
// deadline for every frame it writes, and each reset a runtime timer,
// whose heaps the scheduler then scans. A deadline brought forward (a
// close that ends a stuck write) or cleared is always set.
func (c *corkConn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if !t.IsZero() && !c.wdl.IsZero() && !t.Before(c.wdl) {
		now := time.Now()
		if c.wdl.Sub(now) >= t.Sub(now)/2 {
			return nil
		}
	}
	c.wdl = t
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines; the write one as SetWriteDeadline
// knows it.
func (c *corkConn) SetDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.wdl = t
	return c.Conn.SetDeadline(t)
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.corked {
		if c.buf == nil {
			c.buf = corkBuffers.Get().(*[]byte)
		}
		*c.buf = append(*c.buf, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// corkBuffers holds the buffers of the sockets that are not corked: an
// idle socket keeps none (the hello's left 140 B of its 4.5 KB of live
// heap, docs/benchmarks.md, "Idle scale").
var corkBuffers = sync.Pool{New: func() any { return new([]byte) }}

// uncork writes what was gathered, with its own deadline, and lets later
// writes through.
func (c *corkConn) uncork(timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	b := c.buf
	if b == nil {
		return nil
	}
	c.buf = nil
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.Conn.Write(*b)
	if cap(*b) <= 64<<10 { // a big one goes: a pool's buffers are kept for a while
		*b = (*b)[:0]
		corkBuffers.Put(b)
	}
	return err
}

// corkWriter hands gorilla's upgrader a corkConn when it hijacks, and a
// read buffer of our own, of readBuffer bytes, in place of the HTTP
// server's 4 KiB one: gorilla reads through it (Upgrader.ReadBufferSize 0
// reuses the hijacked reader), and the socket's readiness can see what it
// holds.
type corkWriter struct {
	http.ResponseWriter
	conn *corkConn
	br   *bufio.Reader // nil when the client sent bytes before the upgrade
}

// readBuffer holds a client message (a typed turn, an Opus frame); a
// longer one is read past the buffer. Against 1 KiB: 0.6–0.9 KB less RSS
// per idle socket (docs/benchmarks.md, "Idle scale").
const readBuffer = 512

func (w *corkWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &corkConn{Conn: nc}
	if brw.Reader.Buffered() == 0 { // else gorilla refuses the early bytes
		w.br = bufio.NewReaderSize(w.conn, readBuffer)
		brw = bufio.NewReadWriter(w.br, brw.Writer)
	}
	return w.conn, brw, nil
}

// readiness is the socket's, when its connection is a plain socket.
func (w *corkWriter) readiness() *readiness {
	sc, ok := w.conn.Conn.(syscall.Conn)
	if !ok || w.br == nil || !canWait {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return newReadiness(w.br, w.conn, rc)
}
