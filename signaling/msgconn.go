package signaling

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// MessageConn is a connection of messages under a Socket that is not a
// WebSocket: a WebRTC data channel (signaling/rtc.DataConn). Its own
// transport keeps it alive and says when it ends (ICE consent, SCTP), so
// the socket sends it no pings and sets it no read deadline. Its methods
// are safe from any goroutine.
type MessageConn interface {
	// Messages are the client's messages, in order.
	Messages() <-chan Message
	// Done is closed when the connection has ended.
	Done() <-chan struct{}
	// WriteMessage sends one message. It does not block for long: a peer
	// too far behind is an error, as a write past its deadline is on a
	// WebSocket.
	WriteMessage(text bool, data []byte) error
	// Close ends the connection (Done is closed).
	Close() error
	RemoteAddr() net.Addr
}

// Message is one message of a MessageConn.
type Message struct {
	Text bool
	Data []byte
}

func newMessageSocket(cfg *Config, proto *Protocol, mc MessageConn, log *slog.Logger) *Socket {
	ctx, cancel := context.WithCancel(context.Background())
	return &Socket{
		cfg: cfg, proto: proto, mc: mc, log: log,
		send: newFrameQueue(cfg.SendQueue),
		done: make(chan struct{}), finished: make(chan struct{}),
		ctx: ctx, cancel: cancel,
	}
}

// serveMessages is Serve over a MessageConn: the client's messages go to
// h, at most MaxMessage bytes each (a larger one closes the socket with
// ReasonTooBig), and every PingInterval while it is open h hears a Pong
// (the transport is alive: it would have ended otherwise).
func (s *Socket) serveMessages(h Handler) {
	limit := s.cfg.MaxMessage
	if s.proto.MaxMessage > 0 {
		limit = s.proto.MaxMessage
	}
	alive := time.NewTicker(s.cfg.PingInterval)
	defer alive.Stop()
	msgs := s.mc.Messages()
loop:
	for {
		select {
		case <-s.mc.Done():
			s.Close(ReasonClientGone)
			break loop
		case m := <-msgs:
			if int64(len(m.Data)) > limit {
				s.Close(ReasonTooBig)
				break loop
			}
			kind := websocket.BinaryMessage
			if m.Text {
				kind = websocket.TextMessage
			}
			h.Frame(kind, m.Data)
		case <-alive.C:
			h.Pong()
		case <-s.done:
			break loop
		}
	}
	s.Close(ReasonClientGone) // no-op if a reason was set first
	<-s.finished
	_ = s.mc.Close()
	s.cancel()
}
