package parley

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/jsonbytes"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/turn"
	"github.com/parleyhq/parley/signaling"
)

const (
	// Outbound audio frames queued per socket: 1 s.
	mediaQueue = 50
	// Error replies a connection gets per second before bad input is only
	// counted: a flood must not turn into a flood back.
	errorBudget = 20
)

// conn is the Parley protocol on one socket: the hello and its session,
// typed turns, interruptions, and the call (WebSocket audio or WebRTC).
// Its handler runs on the socket's reader goroutine; the fields it owns
// say so.
type conn struct {
	srv  *Server
	sock *signaling.Socket
	feed *signaling.Feed // set at the hello

	call     atomic.Pointer[call.Call] // set once at hello when the client asked for audio
	callDone chan struct{}             // closed when the call's Run returns
	dec      media.Decoder             // the WebSocket audio channel's; owned by the reader
	rtc      *rtcPeer                  // a WebRTC call's peer; owned by the reader
	rtcOut   atomic.Pointer[rtcPeer]   // where the call's audio goes while it is on WebRTC
	moved    bool                      // the call moved from WebRTC to the WebSocket; reader-owned

	// Owned by the reader goroutine.
	sessionID string
	errWindow time.Time
	errCount  int
}

func newConn(s *Server, sock *signaling.Socket) *conn {
	return &conn{srv: s, sock: sock}
}

// serve runs the socket until it closes, then ends what hangs off it:
// the peer connection, the call, the feed.
func (c *conn) serve() {
	c.sock.Serve(c)
	c.served()
}

// served is serve's end, in a function of its own: serve's frame is under
// an idle socket's wait, on a stack kept small (signaling.Socket).
func (c *conn) served() {
	if c.rtc != nil {
		_ = c.rtc.pc.Close() // ends pion's goroutines and the track reader
	}
	if c.callDone != nil {
		<-c.callDone
	}
	if c.feed != nil {
		c.feed.Close()
	}
	c.sock.Log().Info("disconnected", "reason", c.sock.Reason().String())
}

// Frame implements signaling.Handler.
func (c *conn) Frame(kind int, data []byte) {
	if kind == websocket.BinaryMessage {
		messagesByType["binary"].Inc()
		c.audio(data)
		return
	}
	c.handle(data)
}

// Pong implements signaling.Handler: a connected session does not expire.
func (c *conn) Pong() {
	if c.feed != nil {
		c.feed.Touch()
	}
}

func (c *conn) sendJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.sock.Log().Error("encode message", "err", err)
		return
	}
	c.sock.Send(b)
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
			c.sock.Close(signaling.ReasonTooManyErrors)
		}
		return
	}
	c.sock.Send(errorWire(code, message))
}

// decodeMessage parses a client's text frame: a JSON object of a known
// type. Otherwise it says what is wrong, in words for the client.
func decodeMessage(data []byte) (inMsg, string) {
	m, ok := scanMessage(data)
	if !ok {
		m = inMsg{}
		if err := json.Unmarshal(data, &m); err != nil {
			return m, "malformed JSON: " + err.Error()
		}
	}
	if !knownTypes[m.Type] {
		if m.Type == "" {
			return m, `a message needs a "type"`
		}
		return m, fmt.Sprintf("unknown message type %q", truncate(m.Type, 40))
	}
	return m, ""
}

// scanMessage reads by hand the message most frames are, a type and a
// text ({"type":"text","text":"…"}): encoding/json's reflection was
// most of what reading a turn cost, and all of what reading a refused
// one did. ok false: any other key, or anything it does not read, is
// left to encoding/json (FuzzDecodeMessage holds the two alike).
func scanMessage(data []byte) (m inMsg, ok bool) {
	s := jsonbytes.NewScanner(data)
	var seenType, seenText bool
	ok = s.Object(func(key []byte) bool {
		switch {
		case string(key) == "type" && !seenType:
			seenType = true
			t, ok := s.Str()
			m.Type = t
			return ok
		case string(key) == "text" && !seenText:
			seenText = true
			if s.Null() {
				return true
			}
			t, ok := s.Str()
			m.Text = &t
			return ok
		}
		return false
	})
	return m, ok && s.Done()
}

func (c *conn) handle(data []byte) {
	m, bad := decodeMessage(data)
	if bad != "" {
		messagesByType["invalid"].Inc()
		c.sendError(codeBadRequest, bad)
		return
	}
	messagesByType[m.Type].Inc()
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
		c.interrupt()
	case "bye":
		c.sock.Close(signaling.ReasonBye)
	case "offer":
		c.offer(&m)
	case "candidate":
		c.candidate(&m)
	case "audio":
		c.moveAudio(&m)
	case "tool.result":
		c.toolResult(&m)
	}
}

func (c *conn) interrupt() {
	ctx, cancel := context.WithTimeout(c.sock.Context(), 5*time.Second)
	defer cancel()
	if cl := c.call.Load(); cl != nil {
		cl.Interrupt(ctx) // stops the audio too
		return
	}
	if err := c.srv.turns.Interrupt(ctx, c.sessionID); err != nil {
		c.sock.Log().Warn("interrupt failed", "err", err)
		c.sendError(codeInternal, "the reply could not be interrupted")
	}
}

// hello checks the client's hello, attaches the socket to its session,
// answers with the session, replays what the client missed and starts the
// call it asked for.
func (c *conn) hello(m *inMsg) {
	if c.sessionID != "" {
		c.sendError(codeBadRequest, "hello was already said on this connection")
		return
	}
	transport, ok := c.callTransport(m.Audio)
	if !ok {
		return
	}
	tools, serverTools, bad := c.helloTools(m)
	if bad != "" {
		c.sendError(codeBadRequest, bad)
		return
	}
	ctx, cancel := context.WithTimeout(c.sock.Context(), 5*time.Second)
	defer cancel()
	feed, token, err := c.srv.sessions.Attach(ctx, c.sock, m.Session, m.Token, m.LastEvent, nil)
	if err != nil {
		c.attachFailed(m, err)
		return
	}
	c.feed, c.sessionID = feed, feed.ID()
	if tools != nil || serverTools != nil {
		if err := c.setTools(ctx, tools, serverTools); err != nil {
			c.sock.Log().Error("store the client's tools", "err", err)
			c.sendError(codeInternal, "the tools could not be stored; say hello again")
			feed.Close()
			c.feed, c.sessionID = nil, ""
			return
		}
	}
	c.sock.Greeted()
	resumed := m.Session != ""
	c.sock.Log().Info("hello", "resumed", resumed, "last_event", m.LastEvent)
	c.sendJSON(sessionMsg{Type: "session", Session: c.sessionID, Token: token, Resumed: resumed})
	feed.Start()
	if transport != "" {
		c.startCall(c.sessionID, transport)
	}
}

// callTransport checks the hello's audio: the transport of the call to
// start ("" for none, the session being text only, with the client told
// why), or false when the hello is refused.
func (c *conn) callTransport(a *audioSpec) (string, bool) {
	if a == nil {
		return "", true
	}
	if bad := audioProblem(a.Transport, a.Codec); bad != "" {
		c.sendError(codeBadRequest, bad)
		return "", false
	}
	switch {
	case c.srv.voice == nil:
		c.sendError(codeUnsupported, "this server has no speech recogniser or synthesiser configured; the session is text only")
	case a.Transport == "webrtc" && c.srv.rtc == nil:
		c.sendError(codeUnsupported, `WebRTC is off on this server; use "transport": "ws"; the session is text only`)
	default:
		return a.Transport, true
	}
	return "", true
}

// attachFailed tells the client why its hello found no session.
func (c *conn) attachFailed(m *inMsg, err error) {
	log := c.sock.Log()
	switch {
	case errors.Is(err, signaling.ErrBadEventID):
		c.sendError(codeBadRequest, fmt.Sprintf("last_event %q is not an event id", truncate(m.LastEvent, 40)))
	case errors.Is(err, signaling.ErrExpired):
		c.sendError(codeExpired, "that session has expired or never existed; say hello without a session to start a new one")
	case errors.Is(err, signaling.ErrBadToken):
		log.Warn("resume refused", "err", err)
		c.sock.Send(errorWire(codeUnauthorized, "the session id or token is wrong"))
		c.sock.Close(signaling.ReasonUnauthorized)
	case m.Session != "":
		log.Error("resume failed", "err", err)
		c.sendError(codeInternal, "the session could not be loaded; try again")
	default:
		log.Error("attach failed", "err", err)
		c.sendError(codeInternal, "a session could not be created; try again")
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
			c.sock.Log().Error("opus decoder", "err", err)
			c.notify(codeCallFailed, "the audio decoder could not start")
			return
		}
		p, err := c.startRTC(dec)
		if err != nil {
			c.sock.Log().Error("webrtc peer", "err", err)
			c.notify(codeCallFailed, "the WebRTC peer could not start: "+err.Error())
			return
		}
		c.rtc = p
		c.rtcOut.Store(p)
	} else if err := c.openAudioChannel(); err != nil {
		c.sock.Log().Error("opus decoder", "err", err)
		c.notify(codeCallFailed, "the audio decoder could not start")
		return
	}
	cl := v.NewCall(id, call.Media{InRate: rate, Out: codec}, c, c.sock.Log().With("call", transport))
	if c.rtc != nil {
		c.rtc.call = cl
	}
	c.callDone = make(chan struct{})
	c.call.Store(cl)
	go func() { // ends with the connection
		defer close(c.callDone)
		if err := cl.Run(c.sock.Context()); err != nil {
			c.sock.Log().Error("call failed", "err", err)
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
	c.sock.OpenMedia(mediaQueue)
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
		c.sock.Log().Error("opus decoder", "err", err)
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
	c.sock.Log().Info("call moved", "from", from, "to", m.Transport, "webrtc_audio_heard", p.heard.Load())
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
	// The media queue was opened before rtcOut was cleared (or the call
	// started).
	return c.sock.SendMedia(pkt, func() { droppedAudio.WithLabelValues("slow_client").Inc() })
}

// SendEvent implements call.Output.
func (c *conn) SendEvent(ev event.Event) { c.sock.Send(event.Marshal(ev)) }

// notify sends an error that the server raises itself (a call that
// failed), from any goroutine. The error budget is for replies to the
// client's bad input, and is the reader's.
func (c *conn) notify(code event.Code, message string) {
	c.sock.Send(errorWire(code, message))
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
	// The engine bounds the time it takes once a turn is admitted: a
	// turn refused at once costs no timer.
	ctx := c.sock.Context()
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
			c.sock.Send(c.srv.turnErrorWire(te.Event()))
			return
		}
		c.sock.Log().Error("submit failed", "err", err)
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
