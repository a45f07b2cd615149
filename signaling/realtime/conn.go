package realtime

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/jsonbytes"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/ratelimit"
	"github.com/parleyhq/parley/signaling"
)

// errorBudget: error replies a connection gets per second before bad
// input is only counted; past ten times that, the socket is closed.
const errorBudget = 20

// conn is the Realtime protocol on one socket: a session of its own, the
// client's events, the session's events encoded for it, and the call
// that carries its audio, started at the first need.
type conn struct {
	srv   *Server
	sock  *signaling.Socket
	beta  bool
	model string
	feed  *signaling.Feed
	// Set before the reader starts.
	sessionID  string
	serverStop time.Duration // the server's end-of-turn silence and pre-roll
	serverPre  time.Duration
	rtc        *callPeer       // a WebRTC call's peer; nil on a WebSocket
	initial    json.RawMessage // a WebRTC call's session, from its offer

	// mu guards the protocol's state: the session object and what the
	// client has been told of items and responses. See doc.go for its
	// place among the locks; never held across a network round trip or a
	// wait for the call.
	mu       sync.Mutex
	seq      uint64 // event ids
	conf     conf
	items    []*item
	resps    map[int64]*response
	modes    map[int64]bool // whether a response asked for here is spoken, until it begins
	asked    map[int64]bool // responses asked for here and not done
	lastTurn int64
	cutBy    string // why the next cut comes: turn_detected or client_cancelled
	call     *call.Call
	onDone   func(*response)
	limits   limits            // nil: the engine does not tell
	truncs   map[int64]float64 // audio_end_ms asked for during a response, applied when it is done
	idle     *time.Timer       // server_vad's idle_timeout_ms, armed at a response's end
	heardMs  int64             // input audio appended so far, in ms
	closed   bool              // the socket is gone: no timer is armed again

	// Owned by the reader goroutine.
	callStop  context.CancelFunc
	callDone  chan struct{}
	dec       media.Decoder
	inFormat  format
	errWindow time.Time
	errCount  int
}

func newConn(s *Server, sock *signaling.Socket, beta bool, model string) *conn {
	stop, pre := 600*time.Millisecond, 400*time.Millisecond
	if s.voice != nil {
		if d := s.voice.Config.VAD.Stop; d > 0 {
			stop = d
		}
		if d := s.voice.Config.PreRoll; d > 0 {
			pre = d
		}
	}
	c := &conn{srv: s, sock: sock, beta: beta, model: model, serverStop: stop, serverPre: pre,
		resps: map[int64]*response{}, modes: map[int64]bool{}, asked: map[int64]bool{}, truncs: map[int64]float64{}}
	c.onDone = c.applyTruncation
	c.limits, _ = s.turns.(limits)
	return c
}

// open attaches the socket to a new session, says session.created and,
// for a WebRTC call, starts the call. False: there is no session, and the
// socket is closed with its reason.
func (c *conn) open() bool {
	if !c.attach() {
		c.sock.Close(signaling.ReasonClientGone)
		return false
	}
	if c.rtc != nil && c.ensureCall("") == nil {
		c.sock.Close(signaling.ReasonInternal)
	}
	return true
}

// run runs the reader until the socket closes (at once when it is closed
// already: it writes the close frame), and then, if open made a session,
// ends the call and the feed. It does nothing deep before the reader: on
// a WebSocket, the goroutine that runs it is the one an idle socket keeps,
// on a stack kept small (signaling.Socket), and open runs before it, on
// the HTTP handler's goroutine.
func (c *conn) run(opened bool) {
	c.sock.Serve(c)
	if opened {
		c.ended()
	}
}

// ended is run's end, after the reader.
func (c *conn) ended() {
	c.mu.Lock()
	c.closed = true
	c.disarmLocked()
	c.mu.Unlock()
	c.stopCall()
	c.feed.Close()
	c.sock.Log().Info("realtime session ended", "reason", c.sock.Reason().String())
}

// attach makes the connection's session and says session.created.
func (c *conn) attach() bool {
	ctx, cancel := context.WithTimeout(c.sock.Context(), 5*time.Second)
	defer cancel()
	feed, _, err := c.srv.sessions.Attach(ctx, c.sock, "", "", "", c.stored)
	if err != nil {
		c.sock.Log().Error("realtime: attach", "err", err)
		c.mu.Lock()
		c.emitLocked("error", "error", errorBody(event.CodeInternal, "a session could not be created; try again", "", ""))
		c.mu.Unlock()
		return false
	}
	c.feed, c.sessionID = feed, feed.ID()
	c.conf = newConf(c.sessionID, c.model, c.serverStop, c.serverPre)
	if !isNull(c.initial) {
		c.conf.update(c.initial, c.serverStop, c.serverPre, c.srv.cfg.Tools) // checked before the answer
	}
	if c.srv.voice == nil {
		c.conf.Modalities = []string{"text"}
	}
	if err := c.srv.sessions.Store.SetSettings(ctx, c.sessionID, c.conf.settings()); err != nil {
		c.sock.Log().Error("realtime: settings", "err", err)
	}
	c.sock.Greeted()
	names := "ga"
	if c.beta {
		names = "beta"
	}
	sessionsOpened.WithLabelValues(names).Inc()
	c.sock.Log().Info("realtime session", "names", names, "model", c.model)
	c.mu.Lock()
	c.emitLocked("session.created", "session", c.conf.wire(c.beta))
	c.mu.Unlock()
	feed.Start()
	return true
}

// Frame implements signaling.Handler.
func (c *conn) Frame(kind int, data []byte) {
	if kind == websocket.BinaryMessage {
		messagesIn.WithLabelValues("invalid").Inc()
		c.fail("", "invalid_request_error", "invalid_event", "", "binary frames are not events: send JSON text frames (audio goes base64 in input_audio_buffer.append)")
		return
	}
	c.handle(data)
}

// Pong implements signaling.Handler: a connected session does not expire.
func (c *conn) Pong() { c.feed.Touch() }

// clientEvent is any client event; which fields matter depends on Type.
type clientEvent struct {
	Type         string          `json:"type"`
	EventID      string          `json:"event_id"`
	Session      json.RawMessage `json:"session"`
	Audio        *string         `json:"audio"`
	Item         json.RawMessage `json:"item"`
	ItemID       *string         `json:"item_id"`
	ContentIndex int             `json:"content_index"`
	AudioEndMs   *float64        `json:"audio_end_ms"`
	Response     json.RawMessage `json:"response"`
}

var handlers = map[string]func(*conn, *clientEvent){
	"session.update":             (*conn).sessionUpdate,
	"input_audio_buffer.append":  (*conn).appendAudio,
	"input_audio_buffer.commit":  (*conn).commit,
	"input_audio_buffer.clear":   (*conn).clear,
	"conversation.item.create":   (*conn).itemCreate,
	"conversation.item.retrieve": (*conn).itemRetrieve,
	"conversation.item.truncate": (*conn).itemTruncate,
	"conversation.item.delete":   (*conn).itemDelete,
	"response.create":            (*conn).responseCreate,
	"response.cancel":            (*conn).responseCancel,
	"output_audio_buffer.clear":  (*conn).outputClear,
	"transcription_session.update": func(c *conn, ev *clientEvent) {
		c.fail(ev.EventID, "invalid_request_error", "unsupported", "type", "transcription sessions are not served; use a realtime session")
	},
}

func (c *conn) handle(data []byte) {
	ev, ok := scanAppend(data)
	if !ok {
		ev = clientEvent{}
		if err := json.Unmarshal(data, &ev); err != nil {
			messagesIn.WithLabelValues("invalid").Inc()
			c.fail("", "invalid_request_error", "invalid_json", "", "the event is not valid JSON: "+err.Error())
			return
		}
	}
	h := handlers[ev.Type]
	if h == nil {
		messagesIn.WithLabelValues("invalid").Inc()
		msg := "an event needs a \"type\""
		if ev.Type != "" {
			msg = fmt.Sprintf("unknown event type %q", clip(ev.Type, 60))
		}
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", "type", msg)
		return
	}
	messagesIn.WithLabelValues(ev.Type).Inc()
	h(c, &ev)
}

// scanAppend reads by hand the event most of a voice call's are, an
// input_audio_buffer.append: a type, an event id and the audio (base64:
// kilobytes a message, which encoding/json scanned twice). ok false: the
// event has any other key, or anything it does not read, and
// encoding/json reads it (FuzzScanAppend holds the two alike).
func scanAppend(data []byte) (ev clientEvent, ok bool) {
	s := jsonbytes.NewScanner(data)
	var seenType, seenID, seenAudio bool
	ok = s.Object(func(key []byte) bool {
		var field *string
		switch {
		case string(key) == "type" && !seenType:
			seenType, field = true, &ev.Type
		case string(key) == "event_id" && !seenID:
			seenID, field = true, &ev.EventID
		case string(key) == "audio" && !seenAudio:
			seenAudio, field = true, new(string)
			ev.Audio = field
		default:
			return false
		}
		v, ok := s.Str()
		*field = v
		return ok
	})
	return ev, ok && s.Done()
}

// fail tells the client what was wrong with one of its events (eventID:
// the offending event's, "" for none), within the error budget.
func (c *conn) fail(eventID, typ, code, param, message string) {
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
	c.sendError(eventID, typ, code, param, message)
}

// sendError sends an error event, whatever the budget.
func (c *conn) sendError(eventID, typ, code, param, message string) {
	body := map[string]any{"type": typ, "code": code, "message": message, "param": nilIfEmpty(param), "event_id": nilIfEmpty(eventID)}
	c.mu.Lock()
	c.emitLocked("error", "error", body)
	c.mu.Unlock()
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// errorBody is a Parley error code as a Realtime error: the type the
// SDKs read, and a code of the Realtime API's where one fits.
func errorBody(code event.Code, message, param, eventID string) map[string]any {
	typ, c := "server_error", string(code)
	switch code {
	case event.CodeRateLimited:
		typ, c = "invalid_request_error", "rate_limit_exceeded"
	case event.CodeBusy:
		c = "server_busy"
	case event.CodeBadRequest:
		typ, c = "invalid_request_error", "invalid_value"
	case event.CodeSessionExpired:
		typ, c = "invalid_request_error", "session_expired"
	case event.CodeTurnLimit:
		typ = "invalid_request_error"
	}
	return map[string]any{"type": typ, "code": c, "message": message, "param": nilIfEmpty(param), "event_id": nilIfEmpty(eventID)}
}

// turnError tells the client of a refused turn or response (rate
// limited, busy, Redis down), linked to its event.
func (c *conn) turnError(eventID string, err error) {
	if te, ok := err.(interface{ Event() event.Error }); ok {
		e := te.Event()
		msg := e.Message
		if e.RetryAfterMs > 0 {
			msg = fmt.Sprintf("%s (retry after %d ms)", msg, e.RetryAfterMs)
		}
		c.mu.Lock()
		c.emitLocked("error", "error", errorBody(e.Code, msg, "", eventID))
		c.mu.Unlock()
		return
	}
	c.sock.Log().Error("realtime: turn", "err", err)
	c.mu.Lock()
	c.emitLocked("error", "error", errorBody(event.CodeInternal, "the server could not store that; try again", "", eventID))
	c.mu.Unlock()
}

func (c *conn) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.sock.Context(), 5*time.Second)
}

// sessionUpdate applies a partial session: only the fields it names,
// unknown ones ignored; the whole session is echoed in session.updated.
// The settings that any replica needs go to the session in Redis; a
// change of audio format restarts the call, unless it is speaking.
func (c *conn) sessionUpdate(ev *clientEvent) {
	if isNull(ev.Session) {
		c.fail(ev.EventID, "invalid_request_error", "missing_required_parameter", "session", "session.update needs a \"session\" object")
		return
	}
	c.mu.Lock()
	next := c.conf
	param, bad := next.update(ev.Session, c.serverStop, c.serverPre, c.srv.cfg.Tools)
	// A WebRTC call's audio is Opus on its tracks, whatever the formats.
	formats := c.rtc == nil && (next.In != c.conf.In || next.Out != c.conf.Out)
	busy := formats && c.call != nil && c.activeLocked()
	if bad == "" && next.audio() && c.srv.voice == nil {
		param, bad = "session.output_modalities", "this server has no speech recogniser or synthesiser: audio is off; use [\"text\"]"
	}
	c.mu.Unlock()
	switch {
	case bad != "":
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", param, bad)
		return
	case busy:
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", "session.audio",
			"the audio format cannot change while a response is under way; cancel it or wait for its response.done")
		return
	}
	ctx, cancel := c.ctx()
	defer cancel()
	if err := c.srv.sessions.Store.SetSettings(ctx, c.sessionID, next.settings()); err != nil {
		c.sock.Log().Error("realtime: settings", "err", err)
		c.sendError(ev.EventID, "server_error", "internal", "", "the session could not be updated; try again")
		return
	}
	if formats {
		c.stopCall() // the next audio starts a call in the new formats
	}
	c.mu.Lock()
	c.conf = next
	cl := c.call
	c.emitLocked("session.updated", "session", c.conf.wire(c.beta))
	c.mu.Unlock()
	if cl != nil {
		cl.SetTurnTaking(next.taking())
	}
}

// textOf checks a text the client sent.
func textOf(s string, maxText int) (string, string) {
	switch n := utf8.RuneCountInString(s); {
	case !utf8.ValidString(s):
		return "", "the text is not valid UTF-8"
	case n == 0:
		return "", "the text is empty"
	case n > maxText:
		return "", fmt.Sprintf("the text has %d characters; the limit is %d", n, maxText)
	}
	return s, ""
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// limits is a turn engine that tells what is left of a session's turn
// rate (turn.Engine).
type limits interface {
	SessionLimit(ctx context.Context, sessionID string) (ratelimit.Rule, ratelimit.Result, bool, error)
}

// rateLimits says what is left of the session's turn rate, after a
// response: rate_limits.updated with the "requests" bucket (Parley limits
// turns, not tokens).
func (c *conn) rateLimits() {
	ctx, cancel := c.ctx()
	defer cancel()
	rule, left, ok, err := c.limits.SessionLimit(ctx, c.sessionID)
	if err != nil || !ok {
		return
	}
	remaining := math.Floor(left.Remaining)
	reset := (float64(rule.Burst) - left.Remaining) / rule.Rate
	c.mu.Lock()
	defer c.mu.Unlock()
	c.emitLocked("rate_limits.updated", "rate_limits", []any{map[string]any{
		"name": "requests", "limit": rule.Burst, "remaining": remaining, "reset_seconds": math.Round(max(0, reset)*1000) / 1000}})
}
