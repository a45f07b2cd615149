package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/parleyhq/parley/media"
)

var droppedInput = promauto.NewCounter(prometheus.CounterOpts{
	Namespace: "parley", Subsystem: "call", Name: "dropped_input_frames_total",
	Help: "Caller audio frames dropped because a call's media loop fell behind (oldest first).",
})

// CallConfig tunes a voice call. A zero field means the default in its
// comment.
type CallConfig struct {
	VAD        media.VADConfig   // SampleRate is set to the ASR's
	PreRoll    time.Duration     // caller audio kept from before speech is detected, so the first word is whole; default 400ms
	Complexity int               // Opus encoder complexity; default 5
	Pacer      media.PacerConfig // outbound pacing
	InputQueue int               // caller frames queued for the media loop (oldest dropped past it); default 50 (1 s)
}

// CallOutput is where a call sends what the caller hears and sees. Both
// are called from the call's goroutines and must not block.
type CallOutput interface {
	SendAudio(packet []byte) error // one 20 ms Opus packet
	SendEvent(wire []byte)         // an event that is not stored (state, partial transcript)
}

// CallTurns is what a call needs of the LLM path.
type CallTurns interface {
	Submit(ctx context.Context, sessionID, text, source string) (int64, error)
}

// Call is one voice call: caller audio in, through the VAD and the
// recogniser, into the LLM path as a user turn; the reply's text out,
// through the sentence splitter and the synthesiser, as paced Opus.
// Audio and Event are safe from any goroutine; Run owns the rest.
type Call struct {
	cfg     CallConfig
	session string
	turns   CallTurns
	asr     ASR
	tts     TTS
	out     CallOutput
	log     *slog.Logger

	in     chan []int16 // 48 kHz caller frames
	events chan []byte  // session events
	pacer  *media.Pacer
	turn   atomic.Int64 // the turn whose reply is spoken
	state  atomic.Value // string
}

// NewCall builds a call; Run starts it.
func NewCall(cfg CallConfig, session string, turns CallTurns, asr ASR, tts TTS, out CallOutput, log *slog.Logger) *Call {
	if cfg.PreRoll <= 0 {
		cfg.PreRoll = 400 * time.Millisecond
	}
	if cfg.InputQueue <= 0 {
		cfg.InputQueue = 50
	}
	cfg.VAD.SampleRate = asr.SampleRate()
	c := &Call{
		cfg: cfg, session: session, turns: turns, asr: asr, tts: tts, out: out, log: log,
		in:     make(chan []int16, cfg.InputQueue),
		events: make(chan []byte, 256),
	}
	c.pacer = media.NewPacer(cfg.Pacer, out.SendAudio)
	c.state.Store("")
	return c
}

// Audio queues one 20 ms frame of 48 kHz caller audio. It never blocks:
// when the media loop is behind, the oldest frame is dropped and counted.
func (c *Call) Audio(pcm []int16) {
	f := append([]int16(nil), pcm...)
	for {
		select {
		case c.in <- f:
			return
		default:
		}
		select {
		case <-c.in:
			droppedInput.Inc()
		default:
		}
	}
}

// Event hands the call a session event (its wire form); the call speaks
// the replies. It never blocks; events past a full queue are dropped and
// logged (the log still has them).
func (c *Call) Event(wire []byte) {
	select {
	case c.events <- wire:
	default:
		c.log.Warn("call event queue full; event dropped")
	}
}

// Run runs the call until ctx ends.
func (c *Call) Run(ctx context.Context) error {
	rec, err := c.asr.NewCall(ctx, c.partial)
	if err != nil {
		return fmt.Errorf("call: speech recogniser: %w", err)
	}
	defer rec.Close()
	enc, err := media.NewEncoder(c.cfg.Complexity)
	if err != nil {
		return err
	}
	up, err := media.NewResampler(c.tts.SampleRate(), media.SampleRate)
	if err != nil {
		return err
	}
	down, err := media.NewResampler(media.SampleRate, c.asr.SampleRate())
	if err != nil {
		return err
	}
	c.setState("listening")
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = c.pacer.Run(ctx) }() // ends with ctx
	go func() { defer wg.Done(); c.speakLoop(ctx, enc, up) }()
	c.listenLoop(ctx, rec, down)
	wg.Wait()
	return nil
}

func (c *Call) setState(s string) {
	if c.state.Swap(s) == s {
		return
	}
	b, _ := json.Marshal(struct {
		Type  string `json:"type"`
		State string `json:"state"`
	}{"state", s})
	c.out.SendEvent(b)
}

type partialEvent struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Final bool   `json:"final"`
}

func (c *Call) partial(text string) {
	b, _ := json.Marshal(partialEvent{Type: "transcript", Text: text})
	c.out.SendEvent(b)
}

// listenLoop: caller audio → ASR rate → VAD → recogniser → a user turn.
func (c *Call) listenLoop(ctx context.Context, rec Recognizer, down *media.Resampler) {
	vad := media.NewVAD(c.cfg.VAD)
	rate := c.asr.SampleRate()
	preMax := int(c.cfg.PreRoll.Seconds() * float64(rate))
	var pre []int16
	var buf []int16
	for {
		var frame []int16
		select {
		case <-ctx.Done():
			return
		case frame = <-c.in:
		}
		buf = down.Process(frame, buf[:0])
		ev := vad.Process(buf)
		switch {
		case ev == media.VADSpeechStart:
			// The frames before the start are speech too.
			c.write(rec, pre)
			c.write(rec, buf)
			pre = pre[:0]
		case vad.Speaking() || ev == media.VADSpeechEnd:
			c.write(rec, buf)
		default:
			pre = append(pre, buf...)
			if over := len(pre) - preMax; over > 0 {
				pre = append(pre[:0], pre[over:]...)
			}
		}
		if ev == media.VADSpeechEnd {
			c.endUtterance(ctx, rec)
		}
	}
}

func (c *Call) write(rec Recognizer, pcm []int16) {
	if len(pcm) == 0 {
		return
	}
	if err := rec.Write(pcm); err != nil {
		c.log.Warn("recogniser dropped audio", "err", err)
	}
}

func (c *Call) endUtterance(ctx context.Context, rec Recognizer) {
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	text, err := rec.End(ectx)
	if err != nil {
		c.log.Warn("recognition failed", "err", err)
		c.out.SendEvent(ErrorWire(&TurnError{Code: CodeUpstream, Message: "speech recognition failed: " + err.Error()}))
		return
	}
	if text == "" {
		return // a noise, not words
	}
	turn, err := c.turns.Submit(ctx, c.session, text, "voice")
	if err != nil {
		if te, ok := err.(*TurnError); ok {
			c.out.SendEvent(ErrorWire(te))
		}
		return
	}
	c.follow(turn)
	c.setState("thinking")
}

// follow makes turn the one whose reply is spoken, unless a later one is.
func (c *Call) follow(turn int64) {
	for {
		cur := c.turn.Load()
		if turn <= cur || c.turn.CompareAndSwap(cur, turn) {
			return
		}
	}
}

type replyEvent struct {
	Type  string `json:"type"`
	Turn  int64  `json:"turn"`
	Text  string `json:"text"`
	Final bool   `json:"final"`
	Reset bool   `json:"reset"`
}

// speakLoop: the followed turn's reply text → sentences → speech → Opus
// frames → the pacer.
func (c *Call) speakLoop(ctx context.Context, enc *media.Encoder, up *media.Resampler) {
	var sentences Sentences
	var frame []int16 // 48 kHz samples not yet a whole frame
	var res []int16
	spoken := int64(0) // the turn being spoken
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	emit := func(pcm []int16) error {
		res = up.Process(pcm, res[:0])
		frame = append(frame, res...)
		for len(frame) >= media.FrameSamples {
			pkt, err := enc.Encode(frame[:media.FrameSamples])
			if err != nil {
				return err
			}
			if c.state.Load() != "speaking" {
				c.setState("speaking")
			}
			c.pacer.Push(pkt)
			frame = append(frame[:0], frame[media.FrameSamples:]...)
		}
		return nil
	}
	speak := func(text string) {
		if text == "" {
			return
		}
		if err := c.tts.Synthesize(ctx, text, emit); err != nil && ctx.Err() == nil {
			c.log.Warn("speech synthesis failed", "err", err)
			c.out.SendEvent(ErrorWire(&TurnError{Code: CodeUpstream, Turn: spoken, Message: "speech synthesis failed: " + err.Error()}))
		}
	}
	for {
		var wire []byte
		select {
		case <-ctx.Done():
			return
		case <-idle.C:
			// The last frame of the reply has been played.
			if c.pacer.Queued() == 0 {
				c.setState("listening")
			} else {
				idle.Reset(time.Duration(c.pacer.Queued()) * 20 * time.Millisecond)
			}
			continue
		case wire = <-c.events:
		}
		var ev replyEvent
		if json.Unmarshal(wire, &ev) != nil || ev.Turn == 0 {
			continue
		}
		if ev.Type == "transcript" && ev.Final {
			c.follow(ev.Turn) // a typed turn during a call is answered aloud too
			continue
		}
		if ev.Turn != c.turn.Load() {
			continue
		}
		if ev.Turn != spoken {
			spoken = ev.Turn
			sentences = Sentences{}
			frame = frame[:0]
		}
		switch ev.Type {
		case "reply.delta":
			if ev.Reset {
				sentences = Sentences{}
			}
			for _, s := range sentences.Add(ev.Text) {
				speak(s)
			}
		case "reply.done":
			speak(sentences.Flush())
			if len(frame) > 0 { // pad the last frame with silence
				frame = append(frame, make([]int16, media.FrameSamples-len(frame))...)
				if pkt, err := enc.Encode(frame); err == nil {
					c.pacer.Push(pkt)
				}
				frame = frame[:0]
			}
			c.pacer.End()
			idle.Reset(time.Duration(c.pacer.Queued()) * 20 * time.Millisecond)
		case "interrupted", "error":
			c.pacer.Flush()
			c.setState("listening")
		}
	}
}
