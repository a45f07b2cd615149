package twilio

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/jsonbytes"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/g711"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/signaling"
)

const (
	// floodBudget: bad messages in a second past which the socket closes
	// (too_many_errors). One bad message is only dropped: Twilio sends
	// 50 a second, and one odd one must not hang up a call.
	floodBudget = 200
	// maxCustomParams bounds the custom parameters kept of a start.
	maxCustomParams = 32
)

// stream is one Media Stream: Twilio's messages in, the call's audio out.
// Its handler runs on the socket's reader goroutine, which owns the
// fields marked so.
type stream struct {
	srv  *Server
	sock *signaling.Socket
	out  output

	// Owned by the reader goroutine.
	sessionID string
	dec       media.Decoder
	call      *call.Call
	callDone  chan struct{} // closed when the call's Run returns; nil before start
	buf       []byte        // a media payload, decoded
	errWindow time.Time
	errCount  int
	warned    bool // a bad message was logged at warning level
}

func newStream(s *Server, sock *signaling.Socket) *stream {
	return &stream{srv: s, sock: sock, out: output{sock: sock}}
}

// serve runs the socket until it closes, then waits for the call to end.
func (st *stream) serve() {
	st.sock.Serve(st)
	st.served()
}

// served is serve's end, in a function of its own: serve's frame is under
// an idle socket's wait, on a stack kept small (signaling.Socket).
func (st *stream) served() {
	if st.callDone != nil {
		<-st.callDone
	}
	st.sock.Log().Info("phone call ended", "reason", st.sock.Reason().String(), "frames_sent", st.out.sentFrames())
}

// Frame implements signaling.Handler.
func (st *stream) Frame(kind int, data []byte) {
	if kind != websocket.TextMessage {
		st.bad("binary", "a binary frame: Twilio sends JSON text")
		return
	}
	if track, payload, ok := scanMedia(data); ok {
		st.audio(track, payload)
		messagesIn.WithLabelValues("media").Inc()
		return
	}
	var m inMsg
	if err := json.Unmarshal(data, &m); err != nil {
		st.bad("malformed", "malformed JSON: "+err.Error())
		return
	}
	switch m.Event {
	case "connected":
	case "start":
		st.start(&m)
	case "media":
		st.media(&m)
	case "dtmf":
		st.dtmf(&m)
	case "mark":
		st.mark(&m)
	case "stop":
		st.sock.Close(signaling.ReasonBye)
	default:
		st.bad("unknown_event", fmt.Sprintf("unknown event %.40q", m.Event))
		return
	}
	messagesIn.WithLabelValues(m.Event).Inc()
}

// Pong implements signaling.Handler: a call in progress keeps its session.
func (st *stream) Pong() {
	if st.sessionID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(st.sock.Context(), 2*time.Second)
	defer cancel()
	if err := st.srv.sessions.Touch(ctx, st.sessionID); err != nil {
		st.sock.Log().Warn("touch session", "err", err)
	}
}

// bad drops a message that is not what Twilio sends, counting it; past
// the flood budget the socket closes. Twilio reads no error replies, so
// none is sent: the log says what was wrong (the first at warning level,
// the rest at debug, so that a flood does not flood the log).
func (st *stream) bad(why, what string) {
	messagesIn.WithLabelValues("invalid").Inc()
	invalidIn.WithLabelValues(why).Inc()
	logf := st.sock.Log().Debug
	if !st.warned {
		st.warned, logf = true, st.sock.Log().Warn
	}
	logf("twilio message dropped", "why", why, "what", what)
	now := time.Now()
	if now.Sub(st.errWindow) > time.Second {
		st.errWindow, st.errCount = now, 0
	}
	if st.errCount++; st.errCount > floodBudget {
		st.sock.Log().Warn("a flood of bad messages; closing the stream", "per_second", floodBudget)
		st.sock.Close(signaling.ReasonTooManyErrors)
	}
}

// start begins the call: a new session, its metadata, the call at 8 kHz
// mu-law both ways. A stream whose audio is anything else is refused and
// closed: the call could not be heard.
func (st *stream) start(m *inMsg) {
	switch {
	case st.sessionID != "":
		st.bad("start_again", "a second start on one stream")
		return
	case m.Start == nil:
		st.bad("bad_start", `a start without its "start"`)
		return
	}
	s := m.Start
	sid := s.StreamSid
	if sid == "" {
		sid = m.StreamSid
	}
	log := st.sock.Log().With("call_sid", clip(s.CallSid), "stream_sid", clip(sid))
	if sid == "" {
		st.bad("bad_start", "a start without a streamSid")
		return
	}
	if bad := formatProblem(s.MediaFormat); bad != "" {
		invalidIn.WithLabelValues("bad_format").Inc()
		log.Error("phone call refused: "+bad, "tracks", s.Tracks)
		st.sock.Close(signaling.ReasonUnsupported)
		return
	}
	if st.srv.voice == nil {
		log.Error("phone call refused: this server has no speech recogniser or synthesiser (-asr, -tts)")
		st.sock.Close(signaling.ReasonUnsupported)
		return
	}
	ctx, cancel := context.WithTimeout(st.sock.Context(), 5*time.Second)
	defer cancel()
	id, _, err := st.srv.sessions.Create(ctx) // the resume token is nobody's: a phone call does not resume
	if err == nil {
		err = st.srv.sessions.SetMetadata(ctx, id, metadataOf(sid, s))
	}
	if err != nil {
		log.Error("phone call failed: no session", "err", err)
		st.sock.Close(signaling.ReasonInternal)
		return
	}
	st.sock.Greeted()
	st.sock.SetLog(log.With("session", id))
	st.sessionID = id
	st.dec, _ = g711.MuLaw.NewDecoder(g711.Rate) // cannot fail
	st.out.start(sid)
	st.startCall()
	st.sock.Log().Info("phone call started")
}

// metadataOf is what the session keeps of the stream: its Twilio
// identifiers and the custom parameters (the webhook's CallSid, From, To,
// or an operator's own), each cut to maxParam bytes.
func metadataOf(sid string, s *startBody) map[string]string {
	md := map[string]string{"twilio.stream_sid": clip(sid)}
	for k, v := range map[string]string{"twilio.call_sid": s.CallSid, "twilio.account_sid": s.AccountSid} {
		if v != "" {
			md[k] = clip(v)
		}
	}
	n := 0
	for name, raw := range s.CustomParameters {
		if n++; n > maxCustomParams {
			break
		}
		var v string
		if json.Unmarshal(raw, &v) != nil {
			v = string(raw) // not a string: kept as its JSON
		}
		md["twilio.param."+clip(name)] = clip(v)
	}
	return md
}

// startCall runs the voice call of the stream; its goroutines end when
// the socket's context does.
func (st *stream) startCall() {
	cl := st.srv.voice.NewCall(st.sessionID, call.Media{InRate: g711.Rate, Out: g711.MuLaw}, &st.out, st.sock.Log())
	st.call = cl
	st.callDone = make(chan struct{})
	go func() { // ends with the socket
		defer close(st.callDone)
		if err := cl.Run(st.sock.Context()); err != nil {
			st.sock.Log().Error("phone call failed", "err", err)
			st.sock.Close(signaling.ReasonInternal)
		}
	}()
}

// media feeds the caller's audio to the call.
func (st *stream) media(m *inMsg) {
	var track, payload string
	if m.Media != nil {
		track, payload = m.Media.Track, m.Media.Payload
	}
	st.audio(track, []byte(payload))
}

// audio is a media message's payload, base64 of the caller's audio on
// track.
func (st *stream) audio(track string, payload []byte) {
	switch {
	case st.call == nil:
		st.bad("before_start", "media before the stream's start")
		return
	case len(payload) == 0:
		st.bad("bad_payload", "media without a payload")
		return
	case track != "" && track != "inbound":
		return // not the caller's (a bidirectional stream has only theirs)
	}
	if n := base64.StdEncoding.DecodedLen(len(payload)); cap(st.buf) < n {
		st.buf = make([]byte, n)
	}
	n, err := base64.StdEncoding.Decode(st.buf[:cap(st.buf)], payload)
	if err != nil {
		st.bad("bad_payload", "the payload is not base64: "+err.Error())
		return
	}
	pcm, err := st.dec.Decode(st.buf[:n])
	if err != nil {
		st.bad("bad_payload", err.Error())
		return
	}
	st.call.Audio(pcm)
}

// scanMedia reads by hand the message nearly all of a call's are, 50 a
// second: a media message, its track and its payload (a view into data,
// valid while data is). ok false: the message has anything else (another
// event, a start's or a mark's body, a key it does not know as
// encoding/json would match it, an escape in the payload), and
// encoding/json reads it (FuzzScanMedia holds the two alike).
func scanMedia(data []byte) (track string, payload []byte, ok bool) {
	s := jsonbytes.NewScanner(data)
	var seenEvent, seenMedia bool
	ok = s.Object(func(key []byte) bool {
		switch {
		case string(key) == "event" && !seenEvent:
			seenEvent = true
			ev, ok := s.Raw()
			return ok && string(ev) == "media"
		case string(key) == "media" && !seenMedia:
			seenMedia = true
			return scanMediaBody(&s, &track, &payload)
		case string(key) == "streamSid":
			if s.Null() {
				return true
			}
			_, ok := s.Str() // a string, or encoding/json refuses the message
			return ok
		case foldsTo(key, "event", "media", "streamSid", "start", "dtmf", "mark"):
			return false
		}
		return s.Skip()
	})
	return track, payload, ok && s.Done() && seenEvent && seenMedia
}

func scanMediaBody(s *jsonbytes.Scanner, track *string, payload *[]byte) bool {
	var seenTrack, seenPayload bool
	return s.Object(func(key []byte) bool {
		switch {
		case string(key) == "track" && !seenTrack:
			seenTrack = true
			t, ok := s.Str()
			*track = t
			return ok
		case string(key) == "payload" && !seenPayload:
			seenPayload = true
			p, ok := s.Raw()
			*payload = p
			return ok
		case foldsTo(key, "track", "payload"):
			return false
		}
		return s.Skip()
	})
}

// foldsTo reports whether key is one of names as encoding/json matches a
// key to a field: exactly or without regard to case.
func foldsTo(key []byte, names ...string) bool {
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return true
		}
	}
	return false
}

// dtmf stores a key press, and by default answers it as a user turn.
func (st *stream) dtmf(m *inMsg) {
	switch {
	case st.call == nil:
		st.bad("before_start", "dtmf before the stream's start")
		return
	case m.DTMF == nil || !validDigit(m.DTMF.Digit):
		st.bad("bad_digit", "dtmf without a key (0-9, *, #, A-D)")
		return
	}
	digit := m.DTMF.Digit
	ctx, cancel := context.WithTimeout(st.sock.Context(), 5*time.Second)
	defer cancel()
	var turn int64
	if st.srv.cfg.DTMF == DTMFTurn {
		var err error
		if turn, err = st.call.SubmitText(ctx, keyText(digit)); err != nil {
			st.sock.Log().Warn("the key press's turn was not taken", "digit", digit, "err", err)
		}
	}
	if _, err := st.srv.sessions.AppendEvent(ctx, st.sessionID, event.DTMF{Turn: turn, Digit: digit}); err != nil {
		st.sock.Log().Error("store a key press", "digit", digit, "err", err)
	}
}

func validDigit(d string) bool {
	return len(d) == 1 && strings.Contains("0123456789*#ABCD", d)
}

// keyText is the user turn a key press makes.
func keyText(d string) string {
	switch d {
	case "*":
		return "The caller pressed the star key."
	case "#":
		return "The caller pressed the hash key."
	}
	return "The caller pressed " + d + "."
}

// mark is Twilio's word that the audio before one of our marks has been
// played (or dropped by a clear).
func (st *stream) mark(m *inMsg) {
	if st.call == nil {
		st.bad("before_start", "mark before the stream's start")
		return
	}
	var n int64
	if m.Mark != nil {
		n, _ = strconv.ParseInt(m.Mark.Name, 10, 64)
	}
	if !st.out.echoed(n) {
		st.bad("bad_mark", "a mark the server did not send")
	}
}

// output is the call's Output on the stream: each frame as a media
// message and a mark after it, a clear when the call drops its queued
// audio, and what was played from the marks that come back. Safe for
// concurrent use: the pacer sends, the call flushes, the reader reads
// the marks.
type output struct {
	sock *signaling.Socket

	mu      sync.Mutex
	sid     []byte // the streamSid, as a JSON string; set at start
	sent    int64  // frames sent, ever: the last mark's name
	cleared int64  // frames sent when the last clear went: their marks come back unplayed
	played  int64  // the last mark Twilio echoed of what it played
}

func (o *output) start(sid string) {
	o.mu.Lock()
	o.sid = quoteSid(sid)
	o.mu.Unlock()
}

// SendAudio implements call.Output: a 20 ms mu-law frame, and its mark.
// Both are queued on the socket, under o.mu, so that a clear falls before
// or after a frame's pair, never between them.
func (o *output) SendAudio(frame []byte) error {
	select {
	case <-o.sock.Done():
		return signaling.ErrClosed
	default:
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent++
	o.sock.Send(mediaMsg(o.sid, frame))
	o.sock.Send(markMsg(o.sid, o.sent))
	return nil
}

// SendEvent implements call.Output. Twilio takes audio only: the call's
// state, transcripts and figures are not sent; its errors are logged.
func (o *output) SendEvent(ev event.Event) {
	if e, ok := ev.(event.Error); ok {
		o.sock.Log().Warn("phone call error", "code", e.Code, "message", e.Message)
	}
}

// Flush implements call.Flusher: Twilio drops the audio it has queued. A
// flush with nothing sent since the last one sends nothing.
func (o *output) Flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.sent == o.cleared {
		return
	}
	o.cleared = o.sent
	o.sock.Send(clearMsg(o.sid))
}

// Played implements call.Played: the frames played, as the last mark
// echoed says (marks come back in order).
func (o *output) Played() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.played
}

// echoed takes a mark Twilio sent back, and reports whether it is one of
// ours. The marks of frames sent before the last clear that come back
// after it went were dropped, not played (Twilio returns them at once):
// they do not count. (One that came back before the clear counted when it
// came: the caller had heard those frames.)
func (o *output) echoed(n int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if n <= 0 || n > o.sent {
		return false
	}
	if n > o.cleared && n > o.played {
		o.played = n
	}
	return true
}

func (o *output) sentFrames() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sent
}
