package signaling

import (
	"log/slog"
)

// SocketForTest is a socket with no connection under it, for the tests of
// a protocol's handler: nothing is written, what it is sent stays queued
// (SentForTest reads it), and it closes like any other. The protocol's
// close codes are not used.
func SocketForTest(cfg Config, log *slog.Logger) *Socket {
	cfg.setDefaults()
	s := newSocket(&cfg, &Protocol{}, nil, log)
	s.send.running = true // no writer starts: there is no socket to write to
	return s
}

// SentForTest is the text frames queued on a SocketForTest so far.
func (s *Socket) SentForTest() [][]byte {
	s.send.mu.Lock()
	defer s.send.mu.Unlock()
	out := make([][]byte, 0, len(s.send.items))
	for _, f := range s.send.items {
		if f.data != nil && !f.pong {
			out = append(out, f.data)
		}
	}
	return out
}

// OpenForTest is how many sockets the gateway holds open.
func (g *Gateway) OpenForTest() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sockets)
}

// ReadBufferHeldForTest says whether the socket holds a read buffer: only
// while a reading goroutine has it, never in the shallow wait.
func (s *Socket) ReadBufferHeldForTest() bool {
	s.rmu.Lock() // the reading goroutine lets go of the buffer before it takes rmu to end
	defer s.rmu.Unlock()
	return s.rd != nil && s.rd.held
}
