package realtime

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/g711"
	"github.com/parleyhq/parley/media/pcm"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
)

// codec is the media codec of a format: PCM16 at its rate, or a G.711 law.
func codec(f format) media.Codec {
	switch f.Type {
	case "audio/pcmu":
		return g711.MuLaw
	case "audio/pcma":
		return g711.ALaw
	}
	return pcm.Codec{Rate: f.Rate}
}

// ensureCall is the connection's call, started in the session's formats
// if there is none. nil when the server has no voice (the client is
// told). On the reader goroutine.
func (c *conn) ensureCall(eventID string) *call.Call {
	c.mu.Lock()
	cl, conf := c.call, c.conf
	c.mu.Unlock()
	if cl != nil {
		return cl
	}
	if c.srv.voice == nil {
		c.fail(eventID, "invalid_request_error", "unsupported", "", "this server has no speech recogniser or synthesiser: the session is text only")
		return nil
	}
	m, kind, err := c.callMedia(conf)
	if err != nil {
		c.fail(eventID, "server_error", "call_failed", "", "the audio decoder could not start: "+err.Error())
		return nil
	}
	cl = c.srv.voice.NewCall(c.sessionID, m, c, c.sock.Log().With("call", kind))
	cl.SetTurnTaking(conf.taking())
	if c.rtc != nil {
		c.rtc.setCall(cl) // the caller's packets go to it from now on
	}
	ctx, cancel := context.WithCancel(c.sock.Context())
	done := make(chan struct{})
	c.callStop, c.callDone = cancel, done
	c.mu.Lock()
	c.call = cl
	c.mu.Unlock()
	go func() { // ends with the socket, or when stopCall cancels it
		defer close(done)
		if err := cl.Run(ctx); err != nil {
			c.sock.Log().Error("call failed", "err", err)
			c.sendError("", "server_error", "call_failed", "", "the call could not start: "+err.Error())
		}
	}()
	return cl
}

// callMedia is the call's media: the session's formats on a WebSocket
// (the decoder of the appends set up), Opus both ways on WebRTC.
func (c *conn) callMedia(conf conf) (call.Media, string, error) {
	if c.rtc != nil {
		return call.Media{InRate: c.rtc.dec.Rate(), Out: c.srv.cfg.Opus}, "webrtc", nil
	}
	dec, err := codec(conf.In).NewDecoder(conf.In.Rate)
	if err != nil {
		return call.Media{}, "", err
	}
	c.dec, c.inFormat = dec, conf.In
	return call.Media{InRate: dec.Rate(), Out: codec(conf.Out)}, "realtime", nil
}

// stopCall ends the call, if there is one, and waits for it.
func (c *conn) stopCall() {
	if c.callStop == nil {
		return
	}
	c.callStop()
	<-c.callDone
	c.callStop, c.callDone, c.dec = nil, nil, nil
	c.mu.Lock()
	c.call = nil
	c.mu.Unlock()
}

// appendAudio takes a chunk of the caller's audio, base64 in the input
// format, at most MaxAppend bytes, and gives it to the call in 20 ms
// frames (the VAD decides at that grain).
func (c *conn) appendAudio(ev *clientEvent) {
	if c.rtc != nil {
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", "type",
			"this is a WebRTC call: the caller's audio comes on its audio track, not in input_audio_buffer.append")
		return
	}
	if ev.Audio == nil {
		c.fail(ev.EventID, "invalid_request_error", "missing_required_parameter", "audio", "input_audio_buffer.append needs \"audio\": base64 of the input audio")
		return
	}
	if n := base64.StdEncoding.DecodedLen(len(*ev.Audio)); n > c.srv.cfg.MaxAppend {
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", "audio",
			fmt.Sprintf("an append of %d bytes of audio: at most %d at once; send the audio as it comes, in smaller chunks", n, c.srv.cfg.MaxAppend))
		return
	}
	raw, err := base64.StdEncoding.DecodeString(*ev.Audio)
	if err != nil {
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", "audio", "audio is not base64: "+err.Error())
		return
	}
	if len(raw) == 0 {
		return
	}
	cl := c.ensureCall(ev.EventID)
	if cl == nil {
		return
	}
	pcmIn, err := c.dec.Decode(raw)
	if err != nil {
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", "audio",
			fmt.Sprintf("audio is not %s: %v", c.inFormat.Type, err))
		return
	}
	c.mu.Lock()
	c.heardMs += int64(len(pcmIn)) * 1000 / int64(c.dec.Rate())
	c.mu.Unlock()
	n := c.dec.Rate() / media.FramesPerSecond
	for len(pcmIn) > 0 {
		k := min(n, len(pcmIn))
		cl.Audio(pcmIn[:k])
		pcmIn = pcmIn[k:]
	}
}

// commit ends the caller's utterance now: it becomes a user item (and,
// with server turn detection and create_response, gets a reply).
func (c *conn) commit(ev *clientEvent) {
	c.mu.Lock()
	cl := c.call
	c.mu.Unlock()
	if cl == nil || !cl.Commit() {
		c.fail(ev.EventID, "invalid_request_error", "input_audio_buffer_commit_empty", "",
			"Error committing input audio buffer: the buffer is empty (no speech was heard since the last commit)")
	}
}

// clear drops the audio not yet committed.
func (c *conn) clear(ev *clientEvent) {
	c.mu.Lock()
	cl := c.call
	c.mu.Unlock()
	if cl != nil {
		cl.Clear()
	}
	c.mu.Lock()
	c.emitLocked("input_audio_buffer.cleared")
	c.mu.Unlock()
}

// outputClear (WebRTC's output_audio_buffer.clear): the bot's audio
// stops, as a cancel does.
func (c *conn) outputClear(ev *clientEvent) {
	c.mu.Lock()
	cl := c.call
	c.cutBy = "client_cancelled"
	c.mu.Unlock()
	if cl != nil {
		ctx, cancel := c.ctx()
		cl.Interrupt(ctx)
		cancel()
	}
	c.mu.Lock()
	c.emitLocked("output_audio_buffer.cleared")
	c.mu.Unlock()
}

// SendAudio implements call.Output: a frame of the spoken reply, from
// the call's pacer, as an audio delta of the response it belongs to.
func (c *conn) SendAudio(frame []byte) error {
	c.mu.Lock()
	if c.rtc != nil {
		send := c.call != nil && c.trackLocked(c.call.Turn())
		c.mu.Unlock()
		if send {
			c.rtc.speaker.Send(frame) // an Opus packet, on the bot's track
		}
		return nil
	}
	defer c.mu.Unlock()
	if c.call != nil {
		c.audioLocked(c.call.Turn(), frame)
	}
	return nil
}

// SendEvent implements call.Output: of what a call says itself, the
// errors reach the client; states, partial transcripts and latency
// figures have no Realtime event.
func (c *conn) SendEvent(ev event.Event) {
	if e, ok := ev.(event.Error); ok {
		c.mu.Lock()
		c.emitLocked("error", "error", errorBody(e.Code, e.Message, "", ""))
		c.mu.Unlock()
	}
}

// SpeechStarted implements call.Listener. The item's id is the one the
// caller's words will have if no other turn comes first.
func (c *conn) SpeechStarted(at time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.disarmLocked()
	c.cutBy = "turn_detected"
	c.emitLocked("input_audio_buffer.speech_started", "item_id", userItemID(c.lastTurn+1), "audio_start_ms", at.Milliseconds())
}

// SpeechStopped implements call.Listener.
func (c *conn) SpeechStopped(at time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.emitLocked("input_audio_buffer.speech_stopped", "item_id", userItemID(c.lastTurn+1), "audio_end_ms", at.Milliseconds())
}

// Appended implements call.Listener: the caller's words are an item,
// with no reply asked for. With create_response and text replies, the
// connection asks for the text reply itself (the call asks only for
// spoken ones).
func (c *conn) Appended(turn int64) {
	c.mu.Lock()
	want := c.conf.Turns != nil && c.conf.Turns.CreateResponse && !c.conf.audio()
	c.mu.Unlock()
	if !want {
		return
	}
	ctx, cancel := c.ctx()
	defer cancel()
	n, err := c.srv.turns.CreateResponse(ctx, c.sessionID, responseOptions{}.opts())
	if err != nil {
		c.turnError("", err)
		return
	}
	c.askedFor(n, false)
}

// armLocked starts server_vad's idle timeout once a response is done and
// nothing else is under way: if the caller says nothing within
// idle_timeout_ms, the model is asked to go on
// (input_audio_buffer.timeout_triggered, then a spoken response). Only
// for a connection whose call is up. c.mu held.
func (c *conn) armLocked() {
	c.disarmLocked()
	d := c.conf.Turns
	if c.closed || c.call == nil || d == nil || d.Type != "server_vad" || d.IdleTimeoutMs == nil || *d.IdleTimeoutMs <= 0 || !c.conf.audio() || c.activeLocked() {
		return
	}
	c.idle = time.AfterFunc(time.Duration(*d.IdleTimeoutMs)*time.Millisecond, c.idleTimeout) // its goroutine ends with idleTimeout
}

func (c *conn) disarmLocked() {
	if c.idle != nil {
		c.idle.Stop()
		c.idle = nil
	}
}

// idleTimeout: the caller said nothing for idle_timeout_ms after a
// response: the model is asked to go on, aloud.
func (c *conn) idleTimeout() {
	c.mu.Lock()
	cl := c.call
	if c.closed || cl == nil || c.idle == nil || c.activeLocked() {
		c.mu.Unlock()
		return
	}
	c.idle = nil
	c.emitLocked("input_audio_buffer.timeout_triggered", "item_id", userItemID(c.lastTurn+1),
		"audio_start_ms", c.heardMs, "audio_end_ms", c.heardMs)
	c.mu.Unlock()
	ctx, cancel := c.ctx()
	defer cancel()
	n, err := cl.Respond(ctx, func(ctx context.Context, written func(int64, string)) (int64, error) {
		return c.srv.turns.CreateSpokenResponse(ctx, c.sessionID, responseOptions{}.opts(), written)
	})
	if err != nil {
		c.turnError("", err)
		return
	}
	c.askedFor(n, true)
}
