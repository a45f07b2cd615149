package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/turn"
)

// frame is one entry of the writer's queue: a text frame, or the order to
// send the session's missed events from the log.
type frame struct {
	data   []byte
	replay bool
	pong   bool        // data is a pong's payload
	ping   bool        // send a ping
	media  chan []byte // the writer starts serving this media queue
}

const (
	replayPage = 256
	// Live events held while a replay runs; past this the replay simply
	// runs once more from the last id sent.
	maxPending = 1024
	// Outbound audio frames queued per socket: 1 s.
	mediaQueue = 50
	// Error replies a connection gets per second before bad input is only
	// counted: a flood must not turn into a flood back.
	errorBudget = 20
)

type conn struct {
	srv *Server
	ws  *websocket.Conn
	log *slog.Logger

	send      *frameQueue
	cork      *corkConn   // the TCP connection under ws; nil in tests that build a conn by hand
	media     chan []byte // outbound Opus packets, the oldest dropped when full; nil without a ws call
	pinger    *time.Timer // queues a ping every PingInterval
	done      chan struct{}
	finished  chan struct{} // closed once the close frame is written and the socket closed
	closeOnce sync.Once
	reason    Reason
	ctx       context.Context // ends when the connection closes
	cancel    context.CancelFunc

	call     atomic.Pointer[call.Call] // set once at hello when the client asked for audio
	callDone chan struct{}             // closed when the call's Run returns
	dec      media.Decoder             // the WebSocket audio channel's; owned by the reader
	rtc      *rtcPeer                  // a WebRTC call's peer; owned by the reader
	rtcOut   atomic.Pointer[rtcPeer]   // where the call's audio goes while it is on WebRTC
	moved    bool                      // the call moved from WebRTC to the WebSocket; reader-owned

	// Owned by the reader goroutine.
	sessionID  string
	stopFollow func()
	lastTouch  time.Time
	errWindow  time.Time
	errCount   int

	// The feed: which stored events the client has been sent.
	fmu       sync.Mutex
	lastID    string // the newest stored event queued for the client
	replaying bool   // a replay is queued or running: live events wait in pending
	pending   [][]byte
	overflow  bool
}

func newConn(s *Server, ws *websocket.Conn, log *slog.Logger) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		srv: s, ws: ws, log: log,
		send: newFrameQueue(s.cfg.SendQueue),
		done: make(chan struct{}), finished: make(chan struct{}),
		ctx: ctx, cancel: cancel,
		replaying: true, // until the first replay has run
	}
}

// serve runs the reader on the calling goroutine, and returns when the
// connection has closed. Writers run on their own goroutine, only while
// there is something to write (see writer).
func (c *conn) serve() {
	c.pinger = time.AfterFunc(c.srv.cfg.PingInterval, func() { c.enqueue(frame{ping: true}) })
	c.readLoop()
	c.close(ReasonClientGone) // no-op if a reason was set first
	<-c.finished
	// Linger: read (and drop) until the client answers the close frame, or
	// for a second. Closing at once, with the client's frames unread,
	// makes the kernel reset the connection, and the client may lose the
	// close frame that says why.
	_ = c.ws.SetReadDeadline(time.Now().Add(time.Second))
	for {
		if _, _, err := c.ws.NextReader(); err != nil {
			break
		}
	}
	_ = c.ws.Close()
	c.pinger.Stop()
	c.cancel()
	if c.rtc != nil {
		_ = c.rtc.pc.Close() // ends pion's goroutines and the track reader
	}
	if c.callDone != nil {
		<-c.callDone
	}
	if c.stopFollow != nil {
		c.stopFollow()
	}
	c.cancel()
	disconnects.WithLabelValues(c.reason.String()).Inc()
	c.log.Info("disconnected", "reason", c.reason.String())
}

// close ends the connection once, for the first reason given.
func (c *conn) close(r Reason) {
	c.closeOnce.Do(func() {
		c.reason = r
		close(c.done)
		c.cancel()
		if c.send.closeKick() {
			go c.writer() // writes the close frame; ends at once
		}
	})
}

// enqueue queues a frame for the writer without blocking. A full queue
// means the client does not keep up: it is disconnected, not waited for.
func (c *conn) enqueue(f frame) {
	select {
	case <-c.done:
		return
	default:
	}
	ok, start := c.send.push(f)
	if start {
		go c.writer() // ends when the queue is empty or the connection closes
	}
	if !ok {
		c.log.Warn("send queue full; disconnecting slow client", "queue", c.send.max)
		c.close(ReasonSlowClient)
		// The writer is stuck in a write to a client that does not read:
		// fail that write now rather than at its deadline.
		_ = c.ws.NetConn().SetWriteDeadline(time.Now())
	}
}

func (c *conn) sendJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.log.Error("encode message", "err", err)
		return
	}
	c.enqueue(frame{data: b})
}

// sendError tells the client what was wrong, within the error budget.
func (c *conn) sendError(code event.Code, message string) {
	now := time.Now()
	if now.Sub(c.errWindow) > time.Second {
		c.errWindow, c.errCount = now, 0
	}
	c.errCount++
	if c.errCount > errorBudget {
		if c.errCount > 10*errorBudget {
			c.close(ReasonTooManyErrors)
		}
		return
	}
	c.enqueue(frame{data: errorWire(code, message)})
}

// Deliver implements session.Sink; it runs on the Hub's goroutine.
func (c *conn) Deliver(wire []byte) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if c.replaying {
		if len(c.pending) >= maxPending {
			c.overflow = true
			return
		}
		c.pending = append(c.pending, wire)
		return
	}
	c.deliverLocked(wire)
}

func (c *conn) deliverLocked(wire []byte) {
	if id := event.IDOf(wire); id != "" {
		if c.lastID != "" && session.CompareIDs(id, c.lastID) <= 0 {
			return // already sent (replay and live overlap)
		}
		c.lastID = id
	}
	c.enqueue(frame{data: wire})
}

// Resync implements session.Sink: the Hub may have missed events, so read
// the log again from the last id sent.
func (c *conn) Resync() {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if !c.replaying {
		c.replaying = true
		c.enqueue(frame{replay: true})
	}
}

// writer writes the queued frames and returns when the queue is empty:
// an idle socket has no writer goroutine (its memory decides how many
// sockets fit in a replica). At most one writer runs at a time (see
// frameQueue.running). When the connection has closed it writes the close
// frame and closes the socket, which ends the reader. A WebSocket call's
// audio turns it into callWriter, which runs until the connection closes.
func (c *conn) writer() {
	failed := false // a write failed: the rest is dropped
	corked := false // frames gathered for one write (see corkConn)
	uncork := func() {
		if corked {
			corked = false
			if err := c.cork.uncork(c.srv.cfg.WriteTimeout); err != nil && !failed {
				failed = true
				c.close(ReasonWriteFailed)
			}
		}
	}
	for {
		f, st := c.send.popOrStop()
		switch st {
		case popStopped:
			uncork()
			return
		case popClosing:
			uncork()
			c.finish()
			return
		}
		switch {
		case failed:
		case f.media != nil:
			uncork()
			c.callWriter(f.media)
			return
		default:
			if !corked && c.cork != nil && !f.replay && c.send.queued() {
				c.cork.cork()
				corked = true
			}
			if err := c.writeFrame(f, nil); err != nil {
				failed = true
				c.close(ReasonWriteFailed)
			}
			if corked && !c.send.queued() {
				uncork()
			}
		}
	}
}

// callWriter is the writer of a socket with a WebSocket call: it stays on,
// and writes audio as it comes, before the text frames queued after it.
func (c *conn) callWriter(media chan []byte) {
	for {
		select {
		case <-c.send.ready:
			if err := c.writeQueued(media); err != nil {
				c.close(ReasonWriteFailed)
			}
		case pkt := <-media:
			if err := c.write(websocket.BinaryMessage, pkt); err != nil {
				c.close(ReasonWriteFailed)
			}
		case <-c.done:
			// Frames queued before the close (the reconnect event of a
			// drain) go before its close frame, as in writer: the select
			// may pick done first while both are ready.
			_ = c.writeQueued(media)
			c.finish()
			return
		}
	}
}

// writeQueued writes the text frames queued for a call's writer, until
// the queue is empty or a write fails.
func (c *conn) writeQueued(media chan []byte) error {
	for {
		f, ok := c.send.pop()
		if !ok {
			return nil
		}
		if f.media != nil {
			continue
		}
		if err := c.writeFrame(f, media); err != nil {
			return err
		}
	}
}

// finish writes the close frame with the reason and lets serve return;
// the reader ends when the client answers it, or within a second (serve
// then closes the socket). Once only: no writer starts after it.
func (c *conn) finish() {
	c.send.finish()
	msg := websocket.FormatCloseMessage(c.reason.CloseCode(), c.reason.String())
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	_ = c.ws.SetReadDeadline(time.Now().Add(time.Second))
	close(c.finished)
}

// writeFrame writes one queued frame.
func (c *conn) writeFrame(f frame, media chan []byte) error {
	// Audio queued before an event goes first: a turn's audio precedes
	// its reply.done.
	if err := c.drainMedia(media); err != nil {
		return err
	}
	switch {
	case f.replay:
		return c.replay()
	case f.pong:
		return c.ws.WriteControl(websocket.PongMessage, f.data, time.Now().Add(c.srv.cfg.WriteTimeout))
	case f.ping:
		c.pinger.Reset(c.srv.cfg.PingInterval)
		return c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.srv.cfg.WriteTimeout))
	}
	return c.write(websocket.TextMessage, f.data)
}

// drainMedia writes the audio frames already queued.
func (c *conn) drainMedia(media chan []byte) error {
	for {
		select {
		case pkt := <-media:
			if err := c.write(websocket.BinaryMessage, pkt); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

func (c *conn) write(kind int, data []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	return c.ws.WriteMessage(kind, data)
}

// replay sends the stored events after the last id sent, page by page,
// then the live events that arrived meanwhile, and switches the feed to
// live only once it has caught up. It runs on the writer, so a long
// replay, or a burst during one, needs no queue space.
func (c *conn) replay() error {
	for {
		if err := c.replayLog(); err != nil {
			return err
		}
		for {
			c.fmu.Lock()
			pend, overflow := c.pending, c.overflow
			c.pending, c.overflow = nil, false
			if len(pend) == 0 && !overflow {
				c.replaying = false
				c.fmu.Unlock()
				return nil
			}
			c.fmu.Unlock()
			if overflow {
				break // events were dropped from pending: read the log again
			}
			for _, w := range pend {
				if !c.advance(event.IDOf(w)) {
					continue
				}
				if err := c.write(websocket.TextMessage, w); err != nil {
					return err
				}
			}
		}
	}
}

// advance records id as sent and reports whether it is new; events without
// an id are always new.
func (c *conn) advance(id string) bool {
	if id == "" {
		return true
	}
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if c.lastID != "" && session.CompareIDs(id, c.lastID) <= 0 {
		return false
	}
	c.lastID = id
	return true
}

// replayLog sends the stored events after the last id sent.
func (c *conn) replayLog() error {
	for {
		c.fmu.Lock()
		after := c.lastID
		c.fmu.Unlock()
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		evs, err := c.srv.store.Range(ctx, c.sessionID, after, replayPage)
		cancel()
		if err != nil {
			c.log.Warn("replay failed", "err", err)
			if c.ctx.Err() != nil {
				return err
			}
			// Tell the client, and carry on live; the next Resync retries.
			return c.write(websocket.TextMessage, errorWire(codeInternal, "missed events could not be read; reconnect to receive them"))
		}
		for _, ev := range evs {
			if !c.advance(ev.ID) {
				continue
			}
			if err := c.write(websocket.TextMessage, ev.Wire); err != nil {
				return err
			}
			replayed.Inc()
		}
		if len(evs) < replayPage {
			return nil
		}
	}
}

func (c *conn) readLoop() {
	cfg := &c.srv.cfg
	c.ws.SetReadLimit(cfg.MaxMessage)
	_ = c.ws.SetReadDeadline(time.Now().Add(cfg.HelloTimeout))
	// Pongs go through the writer: only the writer writes.
	c.ws.SetPingHandler(func(data string) error {
		c.enqueue(frame{data: []byte(data), pong: true})
		return nil
	})
	c.ws.SetPongHandler(func(string) error {
		if c.sessionID != "" {
			_ = c.ws.SetReadDeadline(time.Now().Add(cfg.ReadTimeout))
			c.touch()
		}
		return nil
	})
	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			c.close(readReason(err, c.sessionID == ""))
			return
		}
		if kind == websocket.BinaryMessage {
			messagesIn.WithLabelValues("binary").Inc()
			c.audio(data)
		} else {
			c.handle(data)
		}
		// After the hello too: from then on the read deadline is the
		// silence allowed (pongs count), no longer the hello's.
		if c.sessionID != "" {
			_ = c.ws.SetReadDeadline(time.Now().Add(cfg.ReadTimeout))
		}
		select {
		case <-c.done:
			return
		default:
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

// touch refreshes the session's expiry now and then while the socket is
// open, so a connected session does not expire.
func (c *conn) touch() {
	if c.sessionID == "" || time.Since(c.lastTouch) < c.srv.store.TTL()/4 {
		return
	}
	c.lastTouch = time.Now()
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	defer cancel()
	if err := c.srv.store.Touch(ctx, c.sessionID); err != nil {
		c.log.Warn("refresh session expiry", "err", err)
	}
}

// decodeMessage parses a client's text frame: a JSON object of a known
// type. Otherwise it says what is wrong, in words for the client.
func decodeMessage(data []byte) (inMsg, string) {
	var m inMsg
	if err := json.Unmarshal(data, &m); err != nil {
		return m, "malformed JSON: " + err.Error()
	}
	if !knownTypes[m.Type] {
		if m.Type == "" {
			return m, `a message needs a "type"`
		}
		return m, fmt.Sprintf("unknown message type %q", truncate(m.Type, 40))
	}
	return m, ""
}

func (c *conn) handle(data []byte) {
	m, bad := decodeMessage(data)
	if bad != "" {
		messagesIn.WithLabelValues("invalid").Inc()
		c.sendError(codeBadRequest, bad)
		return
	}
	messagesIn.WithLabelValues(m.Type).Inc()
	if m.Type != "hello" && c.sessionID == "" {
		c.sendError(codeBadRequest, fmt.Sprintf("%q before hello: the first message must be hello", m.Type))
		return
	}
	switch m.Type {
	case "hello":
		c.hello(&m)
	case "text":
		c.text(&m)
	case "interrupt":
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		defer cancel()
		if cl := c.call.Load(); cl != nil {
			cl.Interrupt(ctx) // stops the audio too
			return
		}
		if err := c.srv.turns.Interrupt(ctx, c.sessionID); err != nil {
			c.log.Warn("interrupt failed", "err", err)
			c.sendError(codeInternal, "the reply could not be interrupted")
		}
	case "bye":
		c.close(ReasonBye)
	case "offer":
		c.offer(&m)
	case "candidate":
		c.candidate(&m)
	case "audio":
		c.moveAudio(&m)
	}
}

func (c *conn) hello(m *inMsg) {
	if c.sessionID != "" {
		c.sendError(codeBadRequest, "hello was already said on this connection")
		return
	}
	transport := ""
	if a := m.Audio; a != nil {
		if bad := audioProblem(a.Transport, a.Codec); bad != "" {
			c.sendError(codeBadRequest, bad)
			return
		}
		switch {
		case c.srv.voice == nil:
			c.sendError(codeUnsupported, "this server has no speech recogniser or synthesiser configured; the session is text only")
		case a.Transport == "webrtc" && c.srv.rtc == nil:
			c.sendError(codeUnsupported, `WebRTC is off on this server; use "transport": "ws"; the session is text only`)
		default:
			transport = a.Transport
		}
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	store := c.srv.store
	id, token, resumed := m.Session, m.Token, m.Session != ""
	if resumed {
		if m.LastEvent != "" && !session.ValidEventID(m.LastEvent) {
			c.sendError(codeBadRequest, fmt.Sprintf("last_event %q is not an event id", truncate(m.LastEvent, 40)))
			return
		}
		switch err := store.Authenticate(ctx, id, token); {
		case errors.Is(err, session.ErrNotFound):
			c.sendError(codeExpired, "that session has expired or never existed; say hello without a session to start a new one")
			return
		case errors.Is(err, session.ErrBadToken), errors.Is(err, session.ErrBadID):
			c.log.Warn("resume refused", "err", err)
			c.enqueue(frame{data: errorWire(codeUnauthorized, "the session id or token is wrong")})
			c.close(ReasonUnauthorized)
			return
		case err != nil:
			c.log.Error("resume failed", "err", err)
			c.sendError(codeInternal, "the session could not be loaded; try again")
			return
		}
	} else {
		var err error
		if id, token, err = store.Create(ctx); err != nil {
			c.log.Error("create session failed", "err", err)
			c.sendError(codeInternal, "a session could not be created; try again")
			return
		}
	}
	// Follow before reading the log: an event appended from now on arrives
	// live, one appended before is in the replay, and the ids dedupe the
	// overlap. The feed is in replay mode, so live events wait.
	c.log = c.log.With("session", id) // before Follow: the Hub's goroutine logs with it
	c.fmu.Lock()
	c.lastID = m.LastEvent
	c.fmu.Unlock()
	stop, err := c.srv.hub.Follow(ctx, id, c)
	if err != nil {
		c.log.Error("follow session failed", "err", err)
		c.sendError(codeInternal, "live delivery is unavailable; try again")
		return
	}
	c.stopFollow = stop
	c.sessionID = id
	c.lastTouch = time.Now()
	c.log.Info("hello", "resumed", resumed, "last_event", m.LastEvent)
	c.sendJSON(sessionMsg{Type: "session", Session: id, Token: token, Resumed: resumed})
	c.enqueue(frame{replay: true})
	if transport != "" {
		c.startCall(id, transport)
	}
}

// startCall starts the voice call of this socket. Its goroutines end when
// the connection's context does.
func (c *conn) startCall(id, transport string) {
	v := c.srv.voice
	// One Opus codec both ways; it decodes the caller's audio to the
	// recogniser's rate where it can (no resampler).
	codec, rate := c.srv.opus(), c.srv.callRate()
	if transport == "webrtc" {
		dec, err := codec.NewDecoder(rate)
		if err != nil {
			c.log.Error("opus decoder", "err", err)
			c.notify(codeCallFailed, "the audio decoder could not start")
			return
		}
		p, err := c.startRTC(dec)
		if err != nil {
			c.log.Error("webrtc peer", "err", err)
			c.notify(codeCallFailed, "the WebRTC peer could not start: "+err.Error())
			return
		}
		c.rtc = p
		c.rtcOut.Store(p)
	} else if err := c.openAudioChannel(); err != nil {
		c.log.Error("opus decoder", "err", err)
		c.notify(codeCallFailed, "the audio decoder could not start")
		return
	}
	cl := v.NewCall(id, call.Media{InRate: rate, Out: codec}, c, c.log.With("call", transport))
	if c.rtc != nil {
		c.rtc.call = cl
	}
	c.callDone = make(chan struct{})
	c.call.Store(cl)
	go func() { // ends with the connection
		defer close(c.callDone)
		if err := cl.Run(c.ctx); err != nil {
			c.log.Error("call failed", "err", err)
			c.notify(codeCallFailed, "the call could not start: "+err.Error())
		}
	}()
}

// openAudioChannel opens the WebSocket audio channel: the caller's Opus
// decoder, and the media queue, which the writer is told of through its
// own queue. It exists only for a call over the WebSocket.
func (c *conn) openAudioChannel() error {
	dec, err := c.srv.opus().NewDecoder(c.srv.callRate())
	if err != nil {
		return err
	}
	c.dec = dec
	c.media = make(chan []byte, mediaQueue)
	c.enqueue(frame{media: c.media})
	return nil
}

// moveAudio moves the call's audio to another transport on the client's
// word ({"type":"audio","transport":"ws"}): a page does so when WebRTC
// does not connect. Only from WebRTC to the WebSocket: the peer closes,
// the WebSocket audio channel opens, and the call itself goes on (its
// turns, its history, the reply being spoken), on the same socket.
func (c *conn) moveAudio(m *inMsg) {
	if c.call.Load() == nil {
		c.sendError(codeBadRequest, `there is no call on this connection to move: say hello with "audio": {"transport": "webrtc"} for one`)
		return
	}
	if bad := audioProblem(m.Transport, m.Codec); bad != "" {
		c.sendError(codeBadRequest, bad)
		return
	}
	from := "webrtc"
	if c.dec != nil {
		from = "ws"
	}
	switch {
	case m.Transport == from:
		c.sendError(codeBadRequest, fmt.Sprintf("the call's audio is already over %s", m.Transport))
		return
	case m.Transport == "webrtc":
		c.sendError(codeBadRequest, `a call moves from WebRTC to the WebSocket, not back; for WebRTC, say hello with "transport": "webrtc" on a new connection`)
		return
	}
	if err := c.openAudioChannel(); err != nil {
		c.log.Error("opus decoder", "err", err)
		c.notify(codeCallFailed, "the audio decoder could not start; the call stays on WebRTC")
		return
	}
	// From here the call's audio goes to the media queue; the track gets
	// no more of it, and the peer can close.
	c.rtcOut.Store(nil)
	p := c.rtc
	c.rtc, c.moved = nil, true
	_ = p.pc.Close()
	movedCalls.Inc()
	c.log.Info("call moved", "from", from, "to", m.Transport, "webrtc_audio_heard", p.heard.Load())
	c.sendJSON(audioMsg{Type: "audio", Transport: "ws", Codec: "opus"})
}

// audio handles one binary frame: an Opus packet of the caller's.
func (c *conn) audio(data []byte) {
	cl := c.call.Load()
	if cl == nil || c.dec == nil {
		c.sendError(codeBadRequest, `binary frames carry call audio, and this session has no WebSocket audio channel (say hello with "audio": {"transport": "ws"})`)
		return
	}
	pcm, err := c.dec.Decode(data)
	if err != nil {
		droppedAudio.WithLabelValues("bad_packet").Inc()
		c.sendError(codeBadRequest, "a binary frame was not a 20 ms Opus packet and was dropped: "+err.Error())
		return
	}
	cl.Audio(pcm)
}

// SendAudio implements call.Output: it sends a packet on the call's
// transport, WebRTC's track or the socket's media queue; the queue drops
// its oldest packet when the client is behind.
func (c *conn) SendAudio(pkt []byte) error {
	if p := c.rtcOut.Load(); p != nil {
		p.sendAudio(pkt)
		return nil
	}
	// c.media was set before rtcOut was cleared (or the call started).
	for {
		select {
		case c.media <- pkt:
			return nil
		case <-c.done:
			return errors.New("connection closed")
		default:
		}
		select {
		case <-c.media:
			droppedAudio.WithLabelValues("slow_client").Inc()
		default:
		}
	}
}

// SendEvent implements call.Output.
func (c *conn) SendEvent(ev event.Event) { c.enqueue(frame{data: event.Marshal(ev)}) }

// notify sends an error that the server raises itself (a call that
// failed), from any goroutine. The error budget is for replies to the
// client's bad input, and is the reader's.
func (c *conn) notify(code event.Code, message string) {
	c.enqueue(frame{data: errorWire(code, message)})
}

// turnText is a text message's turn, trimmed, or what is wrong with it.
func turnText(m *inMsg, maxText int) (string, string) {
	if m.Text == nil {
		return "", `a text message needs a "text" string`
	}
	text := strings.TrimSpace(*m.Text)
	switch n := utf8.RuneCountInString(text); {
	case n == 0:
		return "", "the text is empty"
	case n > maxText:
		return "", fmt.Sprintf("the text has %d characters; the limit is %d", n, maxText)
	}
	if !utf8.ValidString(text) {
		return "", "the text is not valid UTF-8"
	}
	return text, ""
}

func (c *conn) text(m *inMsg) {
	text, bad := turnText(m, c.srv.cfg.MaxText)
	if bad != "" {
		c.sendError(codeBadRequest, bad)
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	submit := c.srv.turns.Submit
	if cl := c.call.Load(); cl != nil {
		// During a call a typed turn is answered aloud too.
		submit = func(ctx context.Context, _, text string, _ event.Source) (int64, error) {
			return cl.SubmitText(ctx, text)
		}
	}
	if _, err := submit(ctx, c.sessionID, text, event.SourceText); err != nil {
		var te *turn.TurnError
		if errors.As(err, &te) {
			// Not counted against the error budget: the client did nothing wrong.
			c.enqueue(frame{data: event.Marshal(te.Event())})
			return
		}
		c.log.Error("submit failed", "err", err)
		c.sendError(codeInternal, "the turn could not be accepted; try again")
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) { // not in the middle of a character
		n--
	}
	return s[:n] + "…"
}
