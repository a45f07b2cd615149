package call

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/internal/clock"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/endpoint"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/speech"
)

// Config tunes a voice call. A zero field means the default in its
// comment.
type Config struct {
	VAD     media.VADConfig   // SampleRate is set to the recogniser's; Start is also the barge-in threshold
	PreRoll time.Duration     // caller audio kept from before speech is detected, so the first word is whole (the bot's echo in it silenced); default 400ms
	Pacer   media.PacerConfig // outbound pacing
	// InputQueue: caller frames queued for the listening loop (the oldest
	// dropped past it); default 50 (1 s).
	InputQueue int
	// Ahead: synthesised audio waiting to be played past which synthesis
	// pauses until the pacer catches up; default 2s. A long reply is not
	// made all at once, and a barge-in wastes little.
	Ahead time.Duration
	// Apology is said when a turn fails upstream (the model, or the
	// recogniser), so that the caller is not left in silence; the error
	// event says what failed. Default DefaultApology; "-": say nothing.
	Apology string
	// Filler is said once while a turn waits for a tool (a lookup the
	// caller would otherwise wait for in silence), FillerDelay after the
	// call if nothing else was said meanwhile and never over the caller.
	// Defaults DefaultFiller and 1.5s; "-": say nothing.
	Filler      string
	FillerDelay time.Duration
	// Endpoint chooses the silence that ends the caller's turn from their
	// words so far (pipeline/endpoint): short after a question, long after
	// words that end mid-thought. FixedSilence: VAD.Stop instead, whatever
	// was said (so does a front end that sets TurnTaking.VAD.Stop).
	Endpoint     endpoint.Config
	FixedSilence bool
	// Echo: caller audio that is only the bot's own voice coming back (a
	// speaker phone, a browser without echo cancellation) is not speech:
	// it neither cuts the bot off nor becomes a turn (media.EchoGate).
	// NoEchoGate turns that off.
	Echo       media.EchoConfig
	NoEchoGate bool
	// While the bot speaks, the caller's voice cuts it off once their words
	// are recognised: BargeInWords words that are not a backchannel
	// ("mm-hm", "okay", "yeah"), or one word that stops a speaker ("stop",
	// "wait", "no"); or once they have spoken for BargeInAfter, whatever
	// the recogniser makes of it. An utterance that does neither (a cough,
	// an "okay") is a false start: not a turn, and the bot goes on.
	// Defaults 2 and 600ms.
	BargeInWords int
	BargeInAfter time.Duration
	Clock        clock.Clock // default the system's
}

// The barge-in's defaults (Config.BargeInWords, Config.BargeInAfter).
const (
	DefaultBargeInWords = 2
	DefaultBargeInAfter = 600 * time.Millisecond
)

// DefaultFiller is what a call says while a tool runs.
const DefaultFiller = "One moment."

// DefaultApology is what a call says when a turn fails upstream.
const DefaultApology = "Sorry, I could not answer that just now. Please try again."

func (c *Config) setDefaults(asrRate int) {
	if c.PreRoll <= 0 {
		c.PreRoll = 400 * time.Millisecond
	}
	if c.InputQueue <= 0 {
		c.InputQueue = 50
	}
	if c.Ahead <= 0 {
		c.Ahead = 2 * time.Second
	}
	if c.Apology == "" {
		c.Apology = DefaultApology
	}
	if c.Filler == "" {
		c.Filler = DefaultFiller
	}
	if c.FillerDelay <= 0 {
		c.FillerDelay = 1500 * time.Millisecond
	}
	if c.BargeInWords <= 0 {
		c.BargeInWords = DefaultBargeInWords
	}
	if c.BargeInAfter <= 0 {
		c.BargeInAfter = DefaultBargeInAfter
	}
	c.Clock = clock.Or(c.Clock)
	c.VAD.SampleRate = asrRate
}

// Turns is what a call needs of the turn engine (pipeline/turn.Engine).
type Turns interface {
	// SubmitSpoken submits a user turn whose reply the call speaks:
	// written gets the model's whole reply, and the turn stays open until
	// FinishSpoken says what was heard.
	SubmitSpoken(ctx context.Context, sessionID, text string, source event.Source, written func(turn int64, reply string)) (int64, error)
	FinishSpoken(ctx context.Context, sessionID string, turn int64, heard string, cut bool)
	Interrupt(ctx context.Context, sessionID string) error
	// AppendItem stores the caller's words as a user item that asks for
	// no reply (TurnTaking.NoResponse).
	AppendItem(ctx context.Context, sessionID, text string, source event.Source) (int64, error)
}

// Follower delivers a session's live events (session.Hub).
type Follower interface {
	Follow(ctx context.Context, id string, sink session.Sink) (stop func(), err error)
}

// Output is where a call sends what the caller hears and sees. Both are
// called from the call's goroutines and must not block.
type Output interface {
	SendAudio(frame []byte) error // one frame of media.FrameDuration, in the codec of Media.Out
	SendEvent(ev event.Event)     // an event that is not stored: state, partial transcript, latency, error
}

// Played is implemented by an Output that learns from its client how much
// of the audio it sent has been played (Twilio's echoed marks): a barge-in
// then keeps what was played. Without it, the frames sent stand for what
// was heard.
type Played interface {
	Played() int64 // frames played, of those given to SendAudio, ever
}

// Flusher is implemented by an Output whose client queues the audio it
// is sent and plays it later (Twilio does): Flush tells it to drop what it
// has queued and not played, at once. The call calls it whenever it drops
// its own queued audio: a barge-in, a reply cut off, a failed turn. It
// must not block; it may be called when nothing is queued.
type Flusher interface {
	Flush()
}

// Listener is implemented by an Output that follows the caller's turn
// taking (the OpenAI Realtime protocol's input_audio_buffer events). Its
// calls come from the call's listening goroutine and must not block. at
// is a point of the caller's audio, counted from the call's first frame.
type Listener interface {
	SpeechStarted(at time.Duration) // the VAD heard the caller start speaking (at: where the speech began)
	SpeechStopped(at time.Duration) // ... and stop (at: the end of the last voiced audio)
	// Appended: the end of a turn stored the caller's words as the item of
	// turn, and asked for no reply (TurnTaking.NoResponse).
	Appended(turn int64)
}

// TurnTaking is how a call takes turns with its caller. The zero value is
// the server's: Config's VAD ends a turn, the turn gets a spoken reply,
// and the caller's voice cuts a reply off. A front end may change it
// during the call (SetTurnTaking).
type TurnTaking struct {
	// Manual: no voice activity detection. The caller's audio is one
	// utterance until the front end ends it (Commit) or drops it (Clear);
	// nothing cuts a reply off but Interrupt.
	Manual bool
	// VAD overrides Config.VAD's Start, Stop and Threshold where they are
	// set (the rest is Config's).
	VAD     media.VADConfig
	PreRoll time.Duration // overrides Config.PreRoll when set
	// NoResponse: the end of a turn stores the caller's words as an item
	// (Turns.AppendItem) and asks for no reply; the front end asks for one
	// when it likes (Respond). Listener.Appended tells it of the item.
	NoResponse bool
	// NoBargeIn: the caller's voice does not cut a reply off (the front end
	// may still, with Interrupt).
	NoBargeIn bool
	// Eagerness, when set, chooses the endpointing's waits as OpenAI's
	// semantic_vad does (endpoint.Eagerness) in place of Config.Endpoint.
	Eagerness string
}

// Media is what a front end's audio is: PCM in at InRate, the bot's audio
// out through the Out codec.
type Media struct {
	InRate int         // of the PCM given to Call.Audio; 0: the recogniser's (Voice.ListenRate)
	Out    media.Codec // encodes the bot's audio for the front end's wire
}

// Voice is what the calls of a replica share: the turn engine, the
// session events, the speech providers and the configuration. Safe for
// concurrent use.
type Voice struct {
	Turns  Turns
	Events Follower
	ASR    speech.ASR
	TTS    speech.TTS
	Config Config
	// Recorder records each call (pipeline/record); nil: none are.
	Recorder Recorder
}

// ListenRate is the rate of the PCM a call wants: the recogniser's. A
// front end decodes the caller's audio to it where its codec can.
func (v *Voice) ListenRate() int { return v.ASR.SampleRate() }

// Call is one voice call. See the package doc.
type Call struct {
	cfg     Config
	v       *Voice
	session string
	media   Media
	out     Output
	log     *slog.Logger
	clk     clock.Clock

	in       chan inFrame   // caller frames at media.InRate
	events   chan callEvent // for the speaker
	pacer    *media.Pacer[outFrame]
	sent     atomic.Int64  // frames the pacer has sent, ever
	progress chan struct{} // signalled at each frame sent: the speaker may wait for room
	turn     atomic.Int64  // the turn whose reply is spoken
	active   atomic.Bool   // that turn's reply is being written or spoken
	cut      atomic.Int64  // the last turn cut off: none of it is spoken any more
	state    atomic.Value  // event.BotState
	first    atomic.Int64  // the frame (of sent) whose sending starts firstTurn's audio; 0: none
	caller   atomic.Bool   // the VAD hears the caller speak
	taking   atomic.Pointer[TurnTaking]
	uttered  atomic.Bool              // the recogniser has audio of an utterance not yet ended
	ctl      chan ctlOrder            // Commit and Clear, for the listening loop
	queued   atomic.Int64             // caller frames Audio queued, ever
	dropped  atomic.Int64             // of those, dropped before the listening loop took them
	taken    atomic.Int64             // of those, taken by the listening loop
	words    atomic.Pointer[string]   // the recogniser's words so far in the utterance
	reply    atomic.Pointer[botWords] // the words of the reply being spoken
	echo     *echoGate                // nil with Config.NoEchoGate

	rec atomic.Pointer[recording] // nil: not recorded

	mu         sync.Mutex
	stopSpeech context.CancelFunc // cancels the synthesis under way
	timing     map[int64]*turnTiming
	firstTurn  int64
}

// callEvent is one item for the speaker.
type callEvent struct {
	ev      event.Event   // a session event of one of our turns
	written *writtenReply // the model finished a turn of ours
	bargeIn int64         // the caller cut this turn off
	apology bool          // say the apology: the recogniser failed
	filler  int64         // say the filler, if this turn still waits for its tool
	wake    bool          // the speaker's timer
}

type writtenReply struct {
	turn int64
	text string
}

// NewCall builds a call of sessionID; Run starts it. A recorded call's
// recording starts here, so that nothing the front end hands the call
// after NewCall is missing from it, and ends with Run.
func (v *Voice) NewCall(sessionID string, m Media, out Output, log *slog.Logger) *Call {
	cfg := v.Config
	cfg.setDefaults(v.ASR.SampleRate())
	if m.InRate <= 0 {
		m.InRate = v.ListenRate()
	}
	c := &Call{
		cfg: cfg, v: v, session: sessionID, media: m, out: out, log: log, clk: cfg.Clock,
		in:       make(chan inFrame, cfg.InputQueue),
		events:   make(chan callEvent, 256),
		progress: make(chan struct{}, 1),
		timing:   make(map[int64]*turnTiming),
		ctl:      make(chan ctlOrder, 8),
	}
	c.taking.Store(&TurnTaking{})
	c.pacer = media.NewPacer(cfg.Pacer, c.sendFrame)
	if !cfg.NoEchoGate {
		c.echo = &echoGate{g: media.NewEchoGate(cfg.Echo)}
	}
	c.state.Store(event.BotState(""))
	c.startRecording(c.clk.Now())
	return c
}

// sendFrame is the pacer's: the frame leaves the server now. It is
// counted once the Output has it, so that what follows a reply's last
// frame counted (listening, its reply.done) follows it out too. Only the
// pacer's goroutine sends: n is this frame's number.
func (c *Call) sendFrame(f outFrame) error {
	frame := f.pkt
	c.echo.played(f.amp)
	n := c.sent.Load() + 1
	if n == c.first.Load() {
		c.firstAudio(n)
	}
	err := c.out.SendAudio(frame)
	c.rec.Load().bot(n, frame) // before it counts as sent: a cut that sees it finds it recorded
	c.sent.Store(n)
	select {
	case c.progress <- struct{}{}:
	default:
	}
	return err
}

// flush drops the audio queued for the caller: the pacer's, and the
// client's (Flusher). Called outside c.mu: the Output is the front end's.
func (c *Call) flush() {
	c.pacer.Flush()
	if f, ok := c.out.(Flusher); ok {
		f.Flush()
	}
}

// played is how many of the frames sent the caller has heard.
func (c *Call) played() int64 {
	if p, ok := c.out.(Played); ok {
		return min(p.Played(), c.sent.Load())
	}
	return c.sent.Load()
}

// Audio queues caller PCM at Media.InRate, typically one 20 ms frame. It
// never blocks: when the listening loop is behind, the oldest frame is
// dropped and counted.
func (c *Call) Audio(pcm []int16) {
	f := inFrame{pcm: append([]int16(nil), pcm...), at: c.clk.Now()}
	c.rec.Load().caller(pcm, f.at)
	for {
		select {
		case c.in <- f:
			c.queued.Add(1)
			return
		default:
		}
		select {
		case <-c.in:
			c.dropped.Add(1)
			droppedInput.Inc()
		default:
		}
	}
}

// inFrame is a caller frame and when it arrived: the times of the
// caller's speech are those of its audio's arrival, not of the listening
// loop's turn at it (behind on a loaded machine).
type inFrame struct {
	pcm []int16
	at  time.Time
}

// Deliver implements session.Sink: the session's live events, on the
// Hub's goroutine or a script's. The call keeps those of the turn it
// speaks; it needs no missed one (Resync), so it does not look at prev.
func (c *Call) Deliver(_ string, wire []byte) {
	_, ev, err := event.Decode(wire)
	if err != nil {
		return // a type the call has no use for
	}
	switch ev.(type) {
	case event.ReplyDelta, event.ReplyDone, event.Error, event.ToolCall:
		if event.TurnOf(ev) != 0 {
			c.post(callEvent{ev: ev})
		}
	}
}

// Resync implements session.Sink. A call needs no missed events: a spoken
// turn's whole reply comes to it with written.
func (c *Call) Resync() {}

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
	turn, err := c.submit(ctx, text, event.SourceText, turnTiming{decided: c.clk.Now()})
	c.rec.Load().heard(turn, event.SourceText, text, time.Time{})
	return turn, err
}

func (c *Call) submit(ctx context.Context, text string, source event.Source, tt turnTiming) (int64, error) {
	return c.respond(ctx, tt, func(ctx context.Context, written func(int64, string)) (int64, error) {
		return c.v.Turns.SubmitSpoken(ctx, c.session, text, source, written)
	})
}

// Respond asks for a reply that the call speaks, to the conversation as it
// stands (a front end's response.create): create starts it with the turn
// engine, handing written to it as SubmitSpoken takes it, and returns its
// turn. The reply is spoken, cut off and finished as a spoken turn's.
func (c *Call) Respond(ctx context.Context, create func(ctx context.Context, written func(turn int64, reply string)) (int64, error)) (int64, error) {
	return c.respond(ctx, turnTiming{decided: c.clk.Now()}, create)
}

// Turn is the turn whose reply the call speaks or spoke last (0: none
// yet).
func (c *Call) Turn() int64 { return c.turn.Load() }

// SetTurnTaking changes how the call takes turns, from the caller's next
// frame on (see TurnTaking).
func (c *Call) SetTurnTaking(t TurnTaking) { c.taking.Store(&t) }

func (c *Call) respond(ctx context.Context, tt turnTiming, create func(context.Context, func(int64, string)) (int64, error)) (int64, error) {
	// Before the submit: a fast model's reply can start playing before
	// SubmitSpoken returns.
	c.setState(event.Thinking)
	tt.submitted = c.clk.Now()
	turn, err := create(ctx, func(turn int64, reply string) {
		// The turn is ours even if SubmitSpoken has not returned yet: follow
		// it, or the speaker would take its reply for a superseded one.
		c.follow(turn)
		c.post(callEvent{written: &writtenReply{turn: turn, text: reply}})
	})
	if err != nil {
		if !c.active.Load() {
			c.setState(event.Listening)
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

// Run runs the call until ctx ends.
func (c *Call) Run(ctx context.Context) error {
	defer c.stopRecording() // last: after the goroutines below, the file is whole
	rec, err := c.v.ASR.NewCall(ctx, c.partial)
	if err != nil {
		return fmt.Errorf("call: speech recogniser: %w", err)
	}
	defer rec.Close()
	sp, err := c.newSpeaker()
	if err != nil {
		return err
	}
	var down *media.Resampler
	if in, want := c.media.InRate, c.v.ASR.SampleRate(); in != want {
		if down, err = media.NewResampler(in, want); err != nil {
			return fmt.Errorf("call: %w", err)
		}
	}
	// Before the first turn: its reply's events must find us following.
	stop, err := c.v.Events.Follow(ctx, c.session, c)
	if err != nil {
		return fmt.Errorf("call: follow the session: %w", err)
	}
	defer stop()
	c.setState(event.Listening)
	ticks, stopTicks := c.clk.NewTicker(media.FrameDuration)
	defer stopTicks()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = c.pacer.RunTicks(ctx, ticks) }() // ends with ctx
	go func() { defer wg.Done(); sp.run(ctx) }()                      // ends with ctx
	c.listen(ctx, rec, down)
	wg.Wait()
	return nil
}

func (c *Call) setState(s event.BotState) {
	if c.state.Swap(s) == s {
		return
	}
	c.out.SendEvent(event.State{State: s})
}

// partial is the recogniser's best guess so far, on its goroutine.
func (c *Call) partial(text string) {
	c.words.Store(&text)
	c.out.SendEvent(event.Transcript{Text: text})
}
