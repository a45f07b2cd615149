package signaling

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// frame is one entry of the writer's queue: a text frame, a control frame,
// a job to run on the writer (a feed's replay), or the order to serve a
// media queue.
type frame struct {
	data  []byte
	run   func(Writer) error // runs on the writer, which may write directly
	pong  bool               // data is a pong's payload
	ping  bool               // send a ping
	media chan []byte        // the writer starts serving this media queue
}

// Writer writes on a socket's writer goroutine, past its queue: a feed's
// replay, which may be long, needs no queue space.
type Writer interface {
	WriteText(data []byte) error
}

// Handler is a protocol's side of a socket. Its calls come from the
// socket's reader, one at a time and in order, each done before the next
// begins; "the reader goroutine" of this package's comments is whichever
// goroutine reads at the time (a socket gives its reading goroutine up
// when quiet, and a later message is read on a new one).
type Handler interface {
	// Frame is one message from the client: websocket.TextMessage or
	// BinaryMessage.
	Frame(kind int, data []byte)
	// Pong says the client answered a ping.
	Pong()
}

// Socket is one WebSocket's transport, whatever the protocol on it: one
// reader (Serve), a writer goroutine only while there is something to
// write, a bounded send queue (a client that does not keep up is
// disconnected), an optional media queue that drops its oldest frame,
// pings, deadlines on every write, a cap on every read, and one close
// with a reason.
//
// Send, SendMedia, Do, Close and Greeted are safe from any goroutine.
type Socket struct {
	cfg   *Config
	proto *Protocol
	ws    *websocket.Conn // nil for a socket over a MessageConn
	mc    MessageConn     // the socket's transport when it is not a WebSocket
	log   *slog.Logger

	send      *frameQueue
	cork      *corkConn   // the TCP connection under ws; nil in tests that build a socket by hand
	media     chan []byte // outbound media frames, the oldest dropped when full; nil until OpenMedia
	pinger    *time.Timer // queues a ping every PingInterval
	done      chan struct{}
	finished  chan struct{} // closed once the close frame is written
	closeOnce sync.Once
	reason    Reason
	ctx       context.Context // ends when the socket closes
	cancel    context.CancelFunc
	ip        string      // the client's address, the key of its per-IP caps
	greeted   atomic.Bool // the client said who it is: the read deadline is the silence allowed

	// The reader's (readLoop): the shallow wait for the client, nil when
	// the connection has none; the handler and the channel of the
	// goroutines that read messages; when the read deadline was last
	// pushed back.
	rd       *readiness
	handler  Handler
	readEnd  chan bool
	burst    func() // s.readBurst, made once
	extended time.Time
	// lastMessage: when the last message came (a busy socket keeps its
	// reading goroutine).
	lastMessage time.Time

	// The hand-over between the reading goroutine and the shallow wait
	// (holdRead, quiet), under rmu: where the reader is, whether it has
	// read since the quiet timer last looked, whether that timer runs, and
	// the read deadline the socket means (a kick moves the real one to
	// now, and the reader puts this one back).
	rmu      sync.Mutex
	rstate   readState
	heard    bool
	quietOn  bool
	quiet    *time.Timer
	deadline time.Time
}

// readState is where a socket's reading stands (Socket.rstate).
type readState uint8

const (
	readShallow readState = iota // the shallow wait has the socket (or no reader yet)
	readBusy                     // the reading goroutine reads or handles a frame
	readHeld                     // the reading goroutine waits for the client
	readKicked                   // told to give the socket back to the shallow wait
)

func newSocket(cfg *Config, proto *Protocol, ws *websocket.Conn, log *slog.Logger) *Socket {
	ctx, cancel := context.WithCancel(context.Background())
	return &Socket{
		cfg: cfg, proto: proto, ws: ws, log: log,
		send: newFrameQueue(cfg.SendQueue),
		done: make(chan struct{}), finished: make(chan struct{}),
		ctx: ctx, cancel: cancel,
	}
}

// Context ends when the socket closes.
func (s *Socket) Context() context.Context { return s.ctx }

// Done is closed when the socket closes.
func (s *Socket) Done() <-chan struct{} { return s.done }

// Log is the socket's logger; SetLog adds to it (before other goroutines
// use it: at the hello).
func (s *Socket) Log() *slog.Logger { return s.log }

// SetLog replaces the socket's logger. Call it on the reader goroutine
// before starting anything that logs through the socket.
func (s *Socket) SetLog(l *slog.Logger) { s.log = l }

// RemoteAddr is the TCP peer's address.
func (s *Socket) RemoteAddr() net.Addr {
	if s.mc != nil {
		return s.mc.RemoteAddr()
	}
	return s.ws.NetConn().RemoteAddr()
}

// Greeted says the client has introduced itself (a hello): from now on the
// read deadline is the silence allowed (ReadTimeout), no longer the
// hello's, and a timeout is read_timeout, not hello_timeout.
func (s *Socket) Greeted() {
	s.greeted.Store(true)
	if s.mc != nil {
		return // its transport says when it is gone
	}
	s.setReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
}

// setReadDeadline sets the socket's read deadline; while a kick has moved
// it to now, it is only recorded, for the reader to put back.
func (s *Socket) setReadDeadline(t time.Time) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.deadline = t
	if s.rstate != readKicked {
		_ = s.ws.SetReadDeadline(t)
	}
}

// Serve runs the reader on the calling goroutine until the socket closes,
// then lingers for the client's close frame and closes the connection.
// Writers run on their own goroutine, only while there is something to
// write.
func (s *Socket) Serve(h Handler) {
	if s.mc != nil {
		s.serveMessages(h)
		return
	}
	s.readLoop(h)
	s.endReads()
}

// endReads closes the socket once its reader is done, lingering for the
// client's close frame. It is a function of its own, not the tail of
// Serve, so that Serve's frame stays small on the idle socket's shallow
// stack (readLoop).
func (s *Socket) endReads() {
	s.Close(ReasonClientGone) // no-op if a reason was set first
	<-s.finished
	if s.rd != nil {
		s.rd.take() // gorilla reads the client's close frame through it
	}
	// Linger: read (and drop) until the client answers the close frame, or
	// for a second. Closing at once, with the client's frames unread,
	// makes the kernel reset the connection, and the client may lose the
	// close frame that says why.
	s.setReadDeadline(time.Now().Add(time.Second))
	var err error
	for err == nil {
		_, _, err = s.ws.NextReader()
	}
	// After a read error other than the client's close frame (a frame over
	// the cap, say) gorilla reads no more: drop the bytes the client is
	// still sending, until it closes or the second is up, for the same
	// reason. After its close frame, the server closes first (RFC 6455).
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		_, _ = io.Copy(io.Discard, s.ws.NetConn())
	}
	_ = s.ws.Close()
	s.pinger.Stop()
	s.rmu.Lock()
	if s.quiet != nil {
		s.quiet.Stop()
	}
	s.rmu.Unlock()
	s.cancel()
}

// Reason is why the socket closed; valid once Done is closed.
func (s *Socket) Reason() Reason {
	<-s.done
	return s.reason
}

// Close ends the socket once, for the first reason given: the frames
// queued before go out, then the close frame.
func (s *Socket) Close(r Reason) {
	s.closeOnce.Do(func() {
		s.reason = r
		close(s.done)
		s.cancel()
		if s.send.closeKick() {
			go s.writer() // writes the close frame; ends at once
		}
	})
}

// Send queues a text frame without blocking. A full queue means the
// client does not keep up: it is disconnected, not waited for.
func (s *Socket) Send(data []byte) { s.enqueue(frame{data: data}) }

// Do queues f to run on the writer, in order with the frames queued.
func (s *Socket) Do(f func(Writer) error) { s.enqueue(frame{run: f}) }

func (s *Socket) enqueue(f frame) {
	select {
	case <-s.done:
		return
	default:
	}
	ok, start := s.send.push(f)
	if start {
		go s.writer() // ends when the queue is empty or the socket closes
	}
	if !ok {
		s.log.Warn("send queue full; disconnecting slow client", "queue", s.send.max)
		s.Close(ReasonSlowClient)
		// The writer is stuck in a write to a client that does not read:
		// fail that write now rather than at its deadline.
		if s.ws != nil {
			_ = s.ws.NetConn().SetWriteDeadline(time.Now())
		}
	}
}

// OpenMedia gives the socket a media queue of n frames, which the writer
// serves from then on, before the text frames queued after each media
// frame. Call it once, on the reader goroutine.
func (s *Socket) OpenMedia(n int) {
	s.media = make(chan []byte, n)
	s.enqueue(frame{media: s.media})
}

// ErrClosed is returned by SendMedia once the socket is closed.
var ErrClosed = errors.New("signaling: the socket is closed")

// SendMedia queues a binary media frame, dropping the oldest when the
// client is behind (late audio is worth less than current audio); drop is
// called for each frame dropped. OpenMedia must have been called.
func (s *Socket) SendMedia(pkt []byte, drop func()) error {
	for {
		select {
		case s.media <- pkt:
			return nil
		case <-s.done:
			return ErrClosed
		default:
		}
		select {
		case <-s.media:
			drop()
		default:
		}
	}
}

// writer writes the queued frames and returns when the queue is empty:
// an idle socket has no writer goroutine (its memory decides how many
// sockets fit in a replica). At most one writer runs at a time (see
// frameQueue.running). When the socket has closed it writes the close
// frame, which ends the reader. A media queue turns it into mediaWriter,
// which runs until the socket closes.
func (s *Socket) writer() {
	failed := false // a write failed: the rest is dropped
	corked := false // frames gathered for one write (see corkConn)
	uncork := func() {
		if corked {
			corked = false
			if err := s.cork.uncork(s.cfg.WriteTimeout); err != nil && !failed {
				failed = true
				s.Close(ReasonWriteFailed)
			}
		}
	}
	for {
		f, st := s.send.popOrStop()
		switch st {
		case popStopped:
			uncork()
			return
		case popClosing:
			uncork()
			s.finish()
			return
		}
		switch {
		case failed:
		case f.media != nil:
			uncork()
			s.mediaWriter(f.media)
			return
		default:
			if !corked && s.cork != nil && f.run == nil && s.send.queued() {
				s.cork.cork()
				corked = true
			}
			if err := s.writeFrame(f, nil); err != nil {
				failed = true
				s.Close(ReasonWriteFailed)
			}
			if corked && !s.send.queued() {
				uncork()
			}
		}
	}
}

// mediaWriter is the writer of a socket with a media queue: it stays on,
// and writes media as it comes, before the text frames queued after it.
func (s *Socket) mediaWriter(media chan []byte) {
	for {
		select {
		case <-s.send.ready:
			if err := s.writeQueued(media); err != nil {
				s.Close(ReasonWriteFailed)
			}
		case pkt := <-media:
			if err := s.write(websocket.BinaryMessage, pkt); err != nil {
				s.Close(ReasonWriteFailed)
			}
		case <-s.done:
			// Frames queued before the close (the reconnect event of a
			// drain) go before its close frame, as in writer: the select
			// may pick done first while both are ready.
			_ = s.writeQueued(media)
			s.finish()
			return
		}
	}
}

// writeQueued writes the frames queued for a media writer, until the
// queue is empty or a write fails.
func (s *Socket) writeQueued(media chan []byte) error {
	for {
		f, ok := s.send.pop()
		if !ok {
			return nil
		}
		if f.media != nil {
			continue
		}
		if err := s.writeFrame(f, media); err != nil {
			return err
		}
	}
}

// finish writes the close frame with the reason, as the protocol codes
// it, and lets Serve go on; the reader ends when the client answers it,
// or within a second. Once only: no writer starts after it.
func (s *Socket) finish() {
	s.send.finish()
	if s.mc != nil {
		_ = s.mc.Close() // ends the reader: a message connection has no close frame
		close(s.finished)
		return
	}
	msg := websocket.FormatCloseMessage(s.proto.CloseCode(s.reason), s.reason.String())
	_ = s.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	s.setReadDeadline(time.Now().Add(time.Second))
	close(s.finished)
}

// writeFrame writes one queued frame.
func (s *Socket) writeFrame(f frame, media chan []byte) error {
	// Media queued before a frame goes first: a turn's audio precedes its
	// reply.done.
	if err := s.drainMedia(media); err != nil {
		return err
	}
	switch {
	case f.run != nil:
		return f.run(s)
	case f.pong:
		return s.ws.WriteControl(websocket.PongMessage, f.data, time.Now().Add(s.cfg.WriteTimeout))
	case f.ping:
		s.pinger.Reset(s.cfg.PingInterval)
		return s.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.cfg.WriteTimeout))
	}
	return s.write(websocket.TextMessage, f.data)
}

// drainMedia writes the media frames already queued.
func (s *Socket) drainMedia(media chan []byte) error {
	for {
		select {
		case pkt := <-media:
			if err := s.write(websocket.BinaryMessage, pkt); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// WriteText implements Writer.
func (s *Socket) WriteText(data []byte) error { return s.write(websocket.TextMessage, data) }

func (s *Socket) write(kind int, data []byte) error {
	if s.mc != nil {
		return s.mc.WriteMessage(kind == websocket.TextMessage, data)
	}
	_ = s.ws.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	return s.ws.WriteMessage(kind, data)
}

// armReads sets what the reader reads under: the size cap, the hello's
// deadline, the handlers of pings and pongs, the pinger, and what the
// shallow wait uses. Accept calls it, on the HTTP handler's goroutine: on
// the reader's, these calls' deep frames (a deadline resets a runtime
// timer) would double the stack that an idle socket keeps.
func (s *Socket) armReads() {
	limit := s.cfg.MaxMessage
	if s.proto.MaxMessage > 0 {
		limit = s.proto.MaxMessage
	}
	s.ws.SetReadLimit(limit)
	s.setReadDeadline(time.Now().Add(s.cfg.HelloTimeout))
	// Pongs go through the writer: only the writer writes.
	s.ws.SetPingHandler(func(data string) error {
		s.ping([]byte(data))
		return nil
	})
	s.ws.SetPongHandler(func(string) error {
		s.pong()
		return nil
	})
	// Made far off, then set: its first ping's writer reads s.pinger,
	// which a timer that fires before the assignment would race with.
	s.pinger = time.AfterFunc(time.Hour, func() { s.enqueue(frame{ping: true}) })
	s.pinger.Reset(s.cfg.PingInterval)
	// The waiter allocates nothing: an allocation that refills the
	// allocator's cache runs deep enough to double its stack. "go
	// s.readBurst()" would allocate a closure each time.
	s.readEnd = make(chan bool)
	s.burst = s.readBurst
}

// readLoop hands every frame to h until a read fails or the socket
// closes. With readiness (a plain TCP socket) the calling goroutine only
// waits for the client, on a shallow stack: when bytes come, a goroutine
// of its own reads and handles them (readBurst), and, once the socket is
// busy (two messages within QuietAfter), stays, waiting for the next frame
// itself (holdRead). Once the socket has read nothing for QuietAfter, the
// quiet timer sends that goroutine back (quietCheck), and the shallow wait
// has the socket again: an idle socket parks no goroutine in gorilla's
// deep read path, and its one goroutine keeps a small stack (every call
// the wait makes counts: a frame past about 1 KB of them doubles the
// stack). The handler's calls stay one at a time, in order: the waiter
// waits for each reading goroutine to end.
func (s *Socket) readLoop(h Handler) {
	s.handler = h
	if s.rd == nil {
		s.readMessages()
		return
	}
	for {
		if err := s.rd.wait(); err != nil {
			s.Close(readReason(err, !s.greeted.Load()))
			return
		}
		go s.burst() // ends when the socket is quiet, or closes
		if !<-s.readEnd {
			return
		}
	}
}

// readBurst is the reading goroutine: it reads until the socket is quiet
// (true to the waiter) or done (false).
func (s *Socket) readBurst() {
	s.rmu.Lock()
	s.rstate, s.heard = readBusy, true
	if !s.quietOn {
		s.quietOn = true
		if s.quiet == nil {
			s.quiet = time.AfterFunc(s.cfg.QuietAfter, s.quietCheck)
		} else {
			s.quiet.Reset(s.cfg.QuietAfter)
		}
	}
	s.rmu.Unlock()
	s.rd.take()
	more := s.readMessages()
	if more {
		s.rd.release() // quiet: the shallow wait holds no buffer
	}
	s.rmu.Lock()
	s.rstate = readShallow
	s.rmu.Unlock()
	s.readEnd <- more
}

// quietCheck runs every QuietAfter while a reading goroutine has the
// socket, and not past the socket's close: one that has read nothing
// since the last look, and waits for the client, is sent back to the
// shallow wait (its wait's deadline moved to now; holdRead puts the
// socket's back).
func (s *Socket) quietCheck() {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	select {
	case <-s.done:
		s.quietOn = false // the reader ends with the socket: the timer stops here
		return
	default:
	}
	switch {
	case s.heard || s.rstate == readBusy:
		s.heard = false
		s.quiet.Reset(s.cfg.QuietAfter)
	case s.rstate == readHeld:
		s.rstate = readKicked
		_ = s.ws.SetReadDeadline(time.Now())
		s.quietOn = false
	default:
		s.quietOn = false
	}
}

// holdRead waits, on the reading goroutine, for the client's next frame.
// stay: it has begun to come. Otherwise ok says whether the socket goes on
// (the quiet timer sent the reader back to the shallow wait) or is done
// (the reason is set). It waits in a plain read into the buffer, not in
// the shallow wait's peek: a busy socket's message then costs the
// syscalls it did before (the peek's cost 10 % more server CPU per turn
// at the seed's load). A kick's timeout ends that read outside gorilla,
// at a frame's start, so nothing of gorilla's state is lost; the buffer
// keeps any bytes that came, for the next reader.
func (s *Socket) holdRead() (stay, ok bool) {
	s.rmu.Lock()
	s.rstate, s.heard = readHeld, true
	s.rmu.Unlock()
	err := s.heldPeek()
	s.rmu.Lock()
	kicked := s.rstate == readKicked
	s.rstate = readBusy
	if kicked {
		_ = s.ws.SetReadDeadline(s.deadline)
	}
	s.rmu.Unlock()
	switch {
	case kicked:
		return false, true
	case err != nil:
		s.Close(readReason(err, !s.greeted.Load()))
		return false, false
	}
	return true, true
}

// heldPeek is holdRead's wait for the next byte. Its frame keeps 3 KB
// unused: Go's collector shrinks the stack of a goroutine parked on less
// than a quarter of it, and the busy reader's next message grows it back,
// a copy through every frame. Parked this shallow without it, that churn
// cost 7-10 % of the server's CPU per turn and 5 ms of p99 at the seed's
// load (GODEBUG=gcshrinkstackoff=1 took it away); 1 KB kept an 8 KB
// stack, not every 16 KB one, and p99 stayed 4-7 ms worse
// (docs/benchmarks.md, "Idle scale"). The idle socket's 2 KB are not
// this goroutine's: it ends when the socket is quiet.
//
//go:noinline
func (s *Socket) heldPeek() error {
	var keep [3072]byte
	_, err := s.rd.br.Peek(1)
	keepFrame(keep[:])
	return err
}

//go:noinline
func keepFrame([]byte) {}

// ping answers a client's ping, through the writer.
func (s *Socket) ping(data []byte) { s.enqueue(frame{data: data, pong: true}) }

// pong: the client is there (once greeted: before, only a hello counts).
func (s *Socket) pong() {
	if s.greeted.Load() {
		s.setReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
		s.handler.Pong()
	}
}

// readMessages reads frames and hands messages to the handler until a
// read fails or the socket closes (false), or, with readiness, until the
// socket is quiet (true: the shallow wait has it again). With readiness
// it reads the pings and pongs between messages itself: gorilla handles
// them inside its read of a message, and would then go on to wait, deep,
// for the message after them. A control frame with nothing after it goes
// straight back to the shallow wait: it is how an idle client answers the
// server's ping every PingInterval.
func (s *Socket) readMessages() bool {
	for {
		if s.rd != nil {
			op, payload, err := s.rd.control()
			switch {
			case err != nil:
				s.Close(readReason(err, !s.greeted.Load()))
				return false
			case op == opPing:
				s.ping(payload)
			case op == opPong:
				s.pong()
			}
			if op != 0 {
				if s.rd.br.Buffered() == 0 {
					return true
				}
				continue
			}
		}
		kind, data, err := readMessage(s.ws)
		if err != nil {
			s.Close(readReason(err, !s.greeted.Load()))
			return false
		}
		s.handler.Frame(kind, data)
		// Pushed back at most once a second: a busy socket's messages do not
		// each pay for a timer reset, and the timeout moves by under a second.
		now := time.Now()
		if s.greeted.Load() && now.Sub(s.extended) >= time.Second {
			s.setReadDeadline(now.Add(s.cfg.ReadTimeout))
			s.extended = now
		}
		// Busy: this message came within QuietAfter of the one before. Only
		// then does the reading goroutine stay for the next: a socket's first
		// message (a hello, and then silence) gives its 8 KB back at once,
		// and so does one that speaks seldom.
		busy := now.Sub(s.lastMessage) < s.cfg.QuietAfter
		s.lastMessage = now
		select {
		case <-s.done:
			return false
		default:
		}
		if s.rd != nil && s.rd.br.Buffered() == 0 {
			if !busy {
				return true
			}
			if stay, ok := s.holdRead(); !stay {
				return ok
			}
		}
	}
}

func readReason(err error, beforeHello bool) Reason {
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return ReasonTooBig
	case errors.As(err, &ne) && ne.Timeout():
		if beforeHello {
			return ReasonHelloTimeout
		}
		return ReasonReadTimeout
	case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
		return ReasonClientClosed
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ReasonClientClosed
	}
	return ReasonClientGone
}
