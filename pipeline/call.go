package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/opus"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/speech"
)

var (
	droppedInput = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "call", Name: "dropped_input_frames_total",
		Help: "Caller audio frames dropped because a call's media loop fell behind (oldest first).",
	})
	latencyBuckets = []float64{.01, .025, .05, .1, .15, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10}
	asrLatency     = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "call", Name: "asr_seconds", Buckets: latencyBuckets,
		Help: "End of speech (the VAD's decision) to the final transcript.",
	})
	llmLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "call", Name: "llm_first_token_seconds", Buckets: latencyBuckets,
		Help: "A spoken turn's submission to the first reply text reaching the call.",
	})
	ttsLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "call", Name: "tts_first_audio_seconds", Buckets: latencyBuckets,
		Help: "The first sentence handed to the synthesiser to its first audio frame.",
	})
	voiceLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "call", Name: "voice_to_voice_seconds", Buckets: latencyBuckets,
		Help: "End of speech (the VAD's decision) to the first frame of the bot's audio. The caller's silence before the decision (-vad-stop) comes on top.",
	})
	bargeIns = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "call", Name: "barge_ins_total",
		Help: "Replies cut off by the caller speaking over them.",
	})
)

// CallConfig tunes a voice call. A zero field means the default in its
// comment.
type CallConfig struct {
	VAD        media.VADConfig   // SampleRate is set to the ASR's; Start is also the barge-in threshold
	PreRoll    time.Duration     // caller audio kept from before speech is detected, so the first word is whole; default 400ms
	Complexity int               // Opus encoder complexity; default 5
	Pacer      media.PacerConfig // outbound pacing
	InputQueue int               // caller frames queued for the media loop (oldest dropped past it); default 50 (1 s)
	// Apology is said when a turn fails upstream (the model, or the
	// recogniser), so that the caller is not left in silence; the error
	// event says what failed. Default DefaultApology; "-": say nothing.
	Apology string
}

// DefaultApology is what a call says when a turn fails upstream.
const DefaultApology = "Sorry, I could not answer that just now. Please try again."

// CallOutput is where a call sends what the caller hears and sees. Both
// are called from the call's goroutines and must not block.
type CallOutput interface {
	SendAudio(packet []byte) error // one 20 ms Opus packet
	SendEvent(wire []byte)         // an event that is not stored (state, partial transcript)
}

// CallTurns is what a call needs of the LLM path (Engine implements it).
type CallTurns interface {
	SubmitSpoken(ctx context.Context, sessionID, text, source string, written func(turn int64, reply string)) (int64, error)
	FinishSpoken(ctx context.Context, sessionID string, turn int64, heard string, cut bool)
	Interrupt(ctx context.Context, sessionID string) error
}

// Call is one voice call: caller audio in, through the VAD and the
// recogniser, into the LLM path as a user turn; the reply's text out,
// through the sentence splitter and the synthesiser, as paced Opus. The
// caller speaking over the reply cuts it off (barge-in), and the turn
// keeps only what was played.
//
// Audio, Event and SubmitText are safe from any goroutine; Run owns the
// rest and runs three goroutines (listen, speak, pacer) that end with its
// context.
type Call struct {
	cfg     CallConfig
	session string
	turns   CallTurns
	asr     speech.ASR
	tts     speech.TTS
	out     CallOutput
	log     *slog.Logger

	in     chan []int16   // 48 kHz caller frames
	events chan callEvent // for the speak loop
	pacer  *media.Pacer
	sent   atomic.Int64 // frames the pacer has sent, ever
	turn   atomic.Int64 // the turn whose reply is spoken
	active atomic.Bool  // that turn's reply is being written or spoken
	cut    atomic.Int64 // the last turn cut off: none of it is spoken any more
	state  atomic.Value // string

	mu         sync.Mutex
	stopSpeech context.CancelFunc // cancels the synthesis under way
	timing     map[int64]*turnTiming
}

// turnTiming is when the steps of a turn happened, for its latency event.
type turnTiming struct {
	endOfSpeech, transcribed, submitted time.Time // zero for a typed turn
	firstText, ttsStart                 time.Time
}

// LatencyEvent reports how long the steps of a turn took, in
// milliseconds; it is sent with the turn's first audio frame. Steps that
// did not happen (a typed turn has no speech) are left out.
type LatencyEvent struct {
	Type          string `json:"type"` // "latency"
	Turn          int64  `json:"turn"`
	ASR           *int64 `json:"asr_ms,omitempty"`
	LLMFirstToken int64  `json:"llm_first_token_ms"`
	TTSFirstAudio int64  `json:"tts_first_audio_ms"`
	VoiceToVoice  *int64 `json:"voice_to_voice_ms,omitempty"`
}

// callEvent is one item for the speak loop.
type callEvent struct {
	wire    []byte        // a session event
	written *writtenReply // the model finished a turn of ours
	bargeIn int64         // the caller cut this turn off
	apology bool          // say the apology: the recogniser failed
}

type writtenReply struct {
	turn int64
	text string
}

// NewCall builds a call; Run starts it.
func NewCall(cfg CallConfig, session string, turns CallTurns, asr speech.ASR, tts speech.TTS, out CallOutput, log *slog.Logger) *Call {
	if cfg.PreRoll <= 0 {
		cfg.PreRoll = 400 * time.Millisecond
	}
	if cfg.InputQueue <= 0 {
		cfg.InputQueue = 50
	}
	if cfg.Apology == "" {
		cfg.Apology = DefaultApology
	}
	cfg.VAD.SampleRate = asr.SampleRate()
	c := &Call{
		cfg: cfg, session: session, turns: turns, asr: asr, tts: tts, out: out, log: log,
		in:     make(chan []int16, cfg.InputQueue),
		events: make(chan callEvent, 256),
		timing: make(map[int64]*turnTiming),
	}
	c.pacer = media.NewPacer(cfg.Pacer, func(pkt []byte) error {
		c.sent.Add(1)
		return out.SendAudio(pkt)
	})
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

// Event hands the call a session event (its wire form). It never blocks.
func (c *Call) Event(wire []byte) { c.post(callEvent{wire: wire}) }

func (c *Call) post(ev callEvent) {
	select {
	case c.events <- ev:
	default:
		c.log.Warn("call event queue full; event dropped")
	}
}

// SubmitText submits a typed turn during the call: it is answered aloud,
// like a spoken one.
func (c *Call) SubmitText(ctx context.Context, text string) (int64, error) {
	return c.submit(ctx, text, "text")
}

func (c *Call) submit(ctx context.Context, text, source string) (int64, error) {
	return c.submitTimed(ctx, text, source, turnTiming{})
}

func (c *Call) submitTimed(ctx context.Context, text, source string, tt turnTiming) (int64, error) {
	// Before the submit: a fast model's reply can start playing before
	// SubmitSpoken returns.
	c.setState("thinking")
	tt.submitted = time.Now()
	turn, err := c.turns.SubmitSpoken(ctx, c.session, text, source, func(turn int64, reply string) {
		c.post(callEvent{written: &writtenReply{turn: turn, text: reply}})
	})
	if err != nil {
		if !c.active.Load() {
			c.setState("listening")
		}
		return 0, err
	}
	c.mu.Lock()
	if old := c.timing[turn]; old != nil { // the reply started before we got here
		tt.firstText, tt.ttsStart = old.firstText, old.ttsStart
	}
	c.timing[turn] = &tt
	c.mu.Unlock()
	c.follow(turn)
	return turn, nil
}

// InputRate is the rate of the PCM that Audio takes: the recogniser's, when
// Opus decodes to it, else 48 kHz.
func (c *Call) InputRate() int { return InputRate(c.asr) }

// InputRate is Call.InputRate for a call with this recogniser.
func InputRate(asr speech.ASR) int {
	if r := asr.SampleRate(); opus.NativeRate(r) {
		return r
	}
	return opus.Rate
}

// Run runs the call until ctx ends.
func (c *Call) Run(ctx context.Context) error {
	rec, err := c.asr.NewCall(ctx, c.partial)
	if err != nil {
		return fmt.Errorf("call: speech recogniser: %w", err)
	}
	defer rec.Close()
	// Opus takes the synthesiser's PCM, and gives the recogniser's, at
	// their own rates where it can: no resampler (the costliest step of a
	// call when there is one).
	var up, down *media.Resampler
	encRate := c.tts.SampleRate()
	if !opus.NativeRate(encRate) {
		encRate = opus.Rate
		if up, err = media.NewResampler(c.tts.SampleRate(), encRate); err != nil {
			return err
		}
	}
	enc, err := opus.NewEncoder(encRate, c.cfg.Complexity)
	if err != nil {
		return err
	}
	if in := c.InputRate(); in != c.asr.SampleRate() {
		if down, err = media.NewResampler(in, c.asr.SampleRate()); err != nil {
			return err
		}
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
func (c *Call) listenLoop(ctx context.Context, rec speech.Recognizer, down *media.Resampler) {
	vad := media.NewVAD(c.cfg.VAD)
	preMax := int(c.cfg.PreRoll.Seconds() * float64(c.asr.SampleRate()))
	var pre, buf []int16
	for {
		var frame []int16
		select {
		case <-ctx.Done():
			return
		case frame = <-c.in:
		}
		if down != nil {
			buf = down.Process(frame, buf[:0])
		} else {
			buf = append(buf[:0], frame...)
		}
		ev := vad.Process(buf)
		switch {
		case ev == media.VADSpeechStart:
			c.bargeIn(ctx)
			c.write(rec, pre) // the frames before the start are speech too
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

// Interrupt cuts off the reply now, as the caller's voice would (the
// client sent "interrupt").
func (c *Call) Interrupt(ctx context.Context) { c.bargeIn(ctx) }

// bargeIn cuts off the reply being written or spoken: the caller has
// spoken for the VAD's start duration. Audio stops at once; the speak loop
// then reports what was heard.
func (c *Call) bargeIn(ctx context.Context) {
	if !c.active.Load() {
		return
	}
	bargeIns.Inc()
	c.cut.Store(c.turn.Load())
	c.mu.Lock()
	if c.stopSpeech != nil {
		c.stopSpeech()
	}
	c.mu.Unlock()
	c.pacer.Flush()
	if err := c.turns.Interrupt(ctx, c.session); err != nil {
		c.log.Warn("interrupt failed", "err", err)
	}
	c.post(callEvent{bargeIn: c.turn.Load()})
}

func (c *Call) write(rec speech.Recognizer, pcm []int16) {
	if len(pcm) == 0 {
		return
	}
	if err := rec.Write(pcm); err != nil {
		c.log.Warn("recogniser dropped audio", "err", err)
	}
}

func (c *Call) endUtterance(ctx context.Context, rec speech.Recognizer) {
	tt := turnTiming{endOfSpeech: time.Now()}
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	text, err := rec.End(ectx)
	tt.transcribed = time.Now()
	if err != nil {
		c.log.Warn("recognition failed", "err", err)
		c.out.SendEvent(event.Marshal((&TurnError{Code: CodeUpstream, Message: "speech recognition failed: " + err.Error()}).Event()))
		c.post(callEvent{apology: true})
		return
	}
	if text == "" {
		return // a noise, not words
	}
	asrLatency.Observe(tt.transcribed.Sub(tt.endOfSpeech).Seconds())
	if _, err := c.submitTimed(ctx, text, "voice", tt); err != nil {
		if te, ok := err.(*TurnError); ok {
			c.out.SendEvent(event.Marshal(te.Event()))
		}
	}
}

// mark records a step's time for turn, once.
func (c *Call) mark(turn int64, step func(*turnTiming) *time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tt := c.timing[turn]
	if tt == nil {
		tt = &turnTiming{}
		c.timing[turn] = tt
	}
	if p := step(tt); p.IsZero() {
		*p = time.Now()
	}
}

// firstAudio sends the turn's latency event and observes the histograms.
func (c *Call) firstAudio(turn int64) {
	now := time.Now()
	c.mu.Lock()
	tt := c.timing[turn]
	delete(c.timing, turn)
	c.mu.Unlock()
	if tt == nil || tt.submitted.IsZero() || tt.firstText.IsZero() || tt.ttsStart.IsZero() {
		return
	}
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	ev := LatencyEvent{Type: "latency", Turn: turn,
		LLMFirstToken: ms(tt.firstText.Sub(tt.submitted)),
		TTSFirstAudio: ms(now.Sub(tt.ttsStart)),
	}
	llmLatency.Observe(tt.firstText.Sub(tt.submitted).Seconds())
	ttsLatency.Observe(now.Sub(tt.ttsStart).Seconds())
	if !tt.endOfSpeech.IsZero() {
		asr, v2v := ms(tt.transcribed.Sub(tt.endOfSpeech)), ms(now.Sub(tt.endOfSpeech))
		ev.ASR, ev.VoiceToVoice = &asr, &v2v
		voiceLatency.Observe(now.Sub(tt.endOfSpeech).Seconds())
	}
	b, _ := json.Marshal(ev)
	c.out.SendEvent(b)
}

// follow makes turn the one whose reply is spoken, unless a later one is.
func (c *Call) follow(turn int64) {
	for {
		cur := c.turn.Load()
		if turn <= cur {
			return
		}
		if c.turn.CompareAndSwap(cur, turn) {
			c.active.Store(true)
			return
		}
	}
}

type replyEvent struct {
	Type string     `json:"type"`
	Turn int64      `json:"turn"`
	Text string     `json:"text"`
	Code event.Code `json:"code"`
}

// spoken is one sentence as it was queued for playing.
type spoken struct {
	text       string
	start, end int64 // frame numbers (Call.sent counts) of its first and past-last frame
}

// spokenReply is the speak loop's state for one turn.
type spokenReply struct {
	turn      int64
	sentences Sentences
	got       strings.Builder // reply text received so far
	parts     []spoken
	written   bool // the model has finished (or another replica stored reply.done)
	heardAny  bool // its first frame is out
	finished  bool // the turn's reply is stored
}

// heard is the text of what the pacer has sent: whole sentences, and the
// words of the one cut off in proportion to its frames sent.
func (s *spokenReply) heard(sent int64) string {
	var out []string
	for _, p := range s.parts {
		if sent >= p.end {
			out = append(out, p.text)
			continue
		}
		if sent > p.start {
			words := strings.Fields(p.text)
			n := int(float64(len(words)) * float64(sent-p.start) / float64(p.end-p.start))
			if n > 0 {
				out = append(out, strings.Join(words[:n], " "))
			}
		}
		break
	}
	return strings.Join(out, " ")
}

// speakLoop: the followed turn's reply text → sentences → speech → Opus
// frames → the pacer; and, when the reply has been played or cut off,
// what was heard → FinishSpoken.
func (c *Call) speakLoop(ctx context.Context, enc *opus.Encoder, up *media.Resampler) {
	var cur spokenReply
	var frame, res []int16 // samples not yet a whole frame; resampler output
	pushed := int64(0)     // frames given to the pacer, ever
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	// Speaking: a turn whose text is complete is finished once its last
	// frame has been sent.
	checkPlayed := func() {
		if !cur.written || cur.finished {
			return
		}
		if left := pushed - c.sent.Load(); left > 0 {
			idle.Reset(time.Duration(left) * 20 * time.Millisecond)
			return
		}
		c.finish(ctx, &cur, cur.heard(c.sent.Load()), false)
		idle.Reset(listenFallback)
	}
	// encode turns synthesised PCM into paced Opus frames.
	encode := func(pcm []int16, first func()) error {
		if up != nil {
			res = up.Process(pcm, res[:0])
			frame = append(frame, res...)
		} else {
			frame = append(frame, pcm...)
		}
		for len(frame) >= enc.Frame() {
			pkt, err := enc.Encode(frame[:enc.Frame()])
			if err != nil {
				return err
			}
			if c.state.Load() != "speaking" {
				c.setState("speaking")
			}
			c.pacer.Push(pkt)
			pushed++
			first()
			frame = append(frame[:0], frame[enc.Frame():]...)
		}
		return nil
	}
	// flushFrame pushes what is left of an utterance, padded with silence.
	flushFrame := func() {
		if len(frame) > 0 {
			frame = append(frame, make([]int16, enc.Frame()-len(frame))...)
			if pkt, err := enc.Encode(frame); err == nil {
				c.pacer.Push(pkt)
				pushed++
			}
			frame = frame[:0]
		}
	}
	emit := func(pcm []int16) error {
		if c.cut.Load() == cur.turn {
			return context.Canceled // cut off while synthesising
		}
		return encode(pcm, func() {
			if !cur.heardAny {
				cur.heardAny = true
				c.firstAudio(cur.turn)
			}
		})
	}
	// sayApology speaks text outside any reply: it is not stored.
	sayApology := func(text string) {
		sctx, cancel := context.WithCancel(ctx)
		c.mu.Lock()
		c.stopSpeech = cancel
		c.mu.Unlock()
		err := c.tts.Synthesize(sctx, text, func(pcm []int16) error { return encode(pcm, func() {}) })
		cancel()
		if err != nil {
			frame = frame[:0]
			return
		}
		flushFrame()
		c.pacer.End()
	}
	speak := func(text string) {
		if text == "" || cur.finished || c.cut.Load() == cur.turn {
			return
		}
		sctx, cancel := context.WithCancel(ctx)
		c.mu.Lock()
		c.stopSpeech = cancel
		c.mu.Unlock()
		c.mark(cur.turn, func(t *turnTiming) *time.Time { return &t.ttsStart })
		start := pushed
		err := c.tts.Synthesize(sctx, text, emit)
		cancel()
		if err != nil {
			if sctx.Err() == nil && c.cut.Load() != cur.turn {
				c.log.Warn("speech synthesis failed", "err", err)
				c.out.SendEvent(event.Marshal((&TurnError{Code: CodeUpstream, Turn: cur.turn, Message: "speech synthesis failed: " + err.Error()}).Event()))
			}
			frame = frame[:0]
			return
		}
		flushFrame() // the sentence's last frame
		cur.parts = append(cur.parts, spoken{text: text, start: start, end: pushed})
	}
	// complete feeds the rest of the reply once its whole text is known.
	complete := func(full string) {
		got := cur.got.String()
		rest := full
		if strings.HasPrefix(full, got) {
			rest = full[len(got):]
		}
		for _, s := range cur.sentences.Add(rest) {
			speak(s)
		}
		speak(cur.sentences.Flush())
		cur.written = true
		c.pacer.End()
		checkPlayed()
	}
	for {
		var ev callEvent
		select {
		case <-ctx.Done():
			return
		case <-idle.C:
			if cur.finished && !c.active.Load() {
				c.setState("listening")
			}
			checkPlayed()
			continue
		case ev = <-c.events:
		}
		switch {
		case ev.apology:
			if c.cfg.Apology != "-" && !c.active.Load() {
				sayApology(c.cfg.Apology)
				idle.Reset(time.Duration(pushed-c.sent.Load()) * 20 * time.Millisecond)
			}
			continue
		case ev.bargeIn != 0:
			if ev.bargeIn == cur.turn && !cur.finished {
				c.finish(ctx, &cur, cur.heard(c.sent.Load()), true)
				pushed = c.sent.Load() // what was flushed will never be sent
				idle.Reset(listenFallback)
			} else if ev.bargeIn != cur.turn {
				// Cut before a word of it was spoken.
				c.turns.FinishSpoken(ctx, c.session, ev.bargeIn, "", true)
				c.active.Store(false)
				c.setState("listening")
			}
			continue
		case ev.written != nil:
			if ev.written.turn != c.turn.Load() {
				// Superseded by a later turn: nothing of it is spoken.
				c.turns.FinishSpoken(ctx, c.session, ev.written.turn, "", true)
				continue
			}
			c.start(&cur, ev.written.turn)
			c.mark(cur.turn, func(t *turnTiming) *time.Time { return &t.firstText })
			if !cur.finished {
				complete(ev.written.text)
			}
			continue
		}
		var re replyEvent
		if json.Unmarshal(ev.wire, &re) != nil || re.Turn == 0 {
			continue
		}
		if re.Turn != c.turn.Load() {
			continue
		}
		c.start(&cur, re.Turn)
		switch re.Type {
		case "reply.delta":
			if cur.written || cur.finished {
				continue // the whole text came with written
			}
			c.mark(cur.turn, func(t *turnTiming) *time.Time { return &t.firstText })
			cur.got.WriteString(re.Text)
			for _, s := range cur.sentences.Add(re.Text) {
				speak(s)
			}
		case "reply.done":
			// Stored by us (finished), or by a replica that took the turn
			// over and answered it in full: then speak the rest.
			if !cur.written && !cur.finished {
				complete(re.Text)
				cur.finished = true
				c.active.Store(false)
				idle.Reset(listenFallback)
				continue
			}
			if cur.finished && !c.active.Load() {
				c.setState("listening")
			}
		case "error":
			c.pacer.Flush()
			pushed = c.sent.Load()
			cur.finished = true
			c.active.Store(false)
			if re.Code == CodeUpstream && c.cfg.Apology != "-" {
				// Said, not stored: the turn has no reply. If the
				// synthesiser is what failed, the error event stays the
				// caller's only word of it.
				sayApology(c.cfg.Apology)
				// Listening again once it has been played.
				idle.Reset(time.Duration(pushed-c.sent.Load()) * 20 * time.Millisecond)
				continue
			}
			c.setState("listening")
		}
	}
}

// listenFallback: how long after finishing a turn the call waits for its
// reply.done to come back before saying "listening" anyway.
const listenFallback = 2 * time.Second

// start makes s the state of turn, if it was another turn's.
func (c *Call) start(s *spokenReply, turn int64) {
	if s.turn != turn {
		*s = spokenReply{turn: turn}
	}
}

// finish reports what was heard of the turn and returns to listening.
func (c *Call) finish(ctx context.Context, s *spokenReply, heard string, cut bool) {
	s.finished = true
	c.mu.Lock()
	delete(c.timing, s.turn) // cut before any audio: no latency event
	c.mu.Unlock()
	if cut {
		c.pacer.Flush()
	}
	c.turns.FinishSpoken(ctx, c.session, s.turn, heard, cut)
	if s.turn == c.turn.Load() {
		c.active.Store(false)
	}
	// "listening" follows the turn's reply.done, which comes back through
	// the session's events (see speakLoop); a timer stands in if it never
	// does.
}
