package call

import (
	"context"
	"time"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/endpoint"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/speech"
)

// listenCtl is an order of the front end's for the listening loop.
type listenCtl uint8

// ctlOrder is an order and how many caller frames had been queued when it
// was given: the loop takes those first, so that a commit holds the audio
// sent before it and a clear drops that audio, and no later.
type ctlOrder struct {
	op    listenCtl
	after int64
}

const (
	ctlCommit listenCtl = iota + 1 // end the utterance now
	ctlClear                       // drop the utterance's audio
)

// listener is the listening loop's state: the VAD and the audio held for
// the recogniser, for the turn taking in force.
type listener struct {
	taking *TurnTaking
	vad    *media.VAD
	start  time.Duration // the VAD's start duration in force
	preMax int
	pre    []int16
	heard  time.Duration        // caller audio taken so far
	ep     *endpoint.Endpointer // nil: the VAD's fixed silence
	chosen endpoint.Decision    // the silence waited for, and why
	over   voiceOver            // an utterance begun over the bot
	echo   time.Duration        // speech by level that the echo gate held back, in a row
	at     time.Time            // when the frame being heard arrived
}

// retake makes l follow t: a VAD of its settings, or none.
func (c *Call) retake(l *listener, t *TurnTaking) {
	l.taking = t
	cfg := c.cfg.VAD
	if t.VAD.Start > 0 {
		cfg.Start = t.VAD.Start
	}
	if t.VAD.Stop > 0 {
		cfg.Stop = t.VAD.Stop
	}
	if t.VAD.Threshold > 0 {
		cfg.Threshold = t.VAD.Threshold
	}
	l.vad = media.NewVAD(cfg)
	l.ep = c.endpointer(t)
	l.start = cfg.Start
	if l.start <= 0 {
		l.start = 200 * time.Millisecond // the VAD's own default
	}
	pre := c.cfg.PreRoll
	if t.PreRoll > 0 {
		pre = t.PreRoll
	}
	l.preMax = int(pre.Seconds() * float64(c.v.ASR.SampleRate()))
	l.pre = l.pre[:0]
	c.caller.Store(false)
}

// listen: caller audio → the recogniser's rate → VAD → recogniser → a
// user turn. It returns when ctx ends.
func (c *Call) listen(ctx context.Context, rec speech.Recognizer, down *media.Resampler) {
	var l listener
	c.retake(&l, c.taking.Load())
	var buf []int16
	for {
		var frame inFrame
		select {
		case <-ctx.Done():
			return
		case o := <-c.ctl:
			for c.taken.Load()+c.dropped.Load() < o.after {
				select {
				case <-ctx.Done():
					return
				case frame = <-c.in:
					c.taken.Add(1)
					l.at = frame.at
					buf = c.take(ctx, rec, &l, down, frame.pcm, buf)
				}
			}
			c.control(ctx, rec, &l, o.op)
			continue
		case frame = <-c.in:
			c.taken.Add(1)
		}
		l.at = frame.at
		buf = c.take(ctx, rec, &l, down, frame.pcm, buf)
	}
}

// take hears one caller frame; buf is its scratch, returned for reuse.
func (c *Call) take(ctx context.Context, rec speech.Recognizer, l *listener, down *media.Resampler, frame, buf []int16) []int16 {
	if t := c.taking.Load(); t != l.taking {
		c.retake(l, t)
	}
	if down != nil {
		buf = down.Process(frame, buf[:0])
	} else {
		buf = append(buf[:0], frame...)
	}
	l.heard += time.Duration(len(buf)) * time.Second / time.Duration(c.v.ASR.SampleRate())
	if l.taking.Manual {
		c.write(rec, buf)
		return buf
	}
	c.detect(ctx, rec, l, buf)
	return buf
}

// detect runs the VAD over one frame and acts on what it decides.
func (c *Call) detect(ctx context.Context, rec speech.Recognizer, l *listener, buf []int16) {
	near := c.echo.near(buf)
	ev := l.vad.ProcessHeard(buf, near)
	c.countEcho(l, near)
	c.caller.Store(l.vad.Speaking())
	switch {
	case ev == media.VADSpeechStart:
		c.rec.Load().speechStarted(l.at, l.vad.Onset())
		c.words.Store(nil)
		if c.active.Load() && !l.taking.NoBargeIn {
			// Over the bot: an interruption once its words say so (heed).
			l.over = voiceOver{on: true, since: max(0, l.heard-l.start)}
		} else {
			c.speechStarted(max(0, l.heard-l.start))
		}
		c.write(rec, l.pre) // the frames before the start are speech too
		c.write(rec, buf)
		l.pre = l.pre[:0]
	case l.vad.Speaking() || ev == media.VADSpeechEnd:
		c.write(rec, buf)
		if l.vad.Speaking() {
			c.heed(ctx, rec, l, near)
		}
	default:
		// The bot's echo is kept as silence: an utterance begun over it
		// must not start with the bot's words. Only an echo found, not
		// one assumed before any is (the gate's prior): that would
		// silence the quieter sounds of a caller's first words over the
		// bot, from a headset as from a client that sends audio only
		// while its user speaks, and the recogniser would mishear them.
		l.pre = append(l.pre, buf...)
		if !near && c.echo.found() {
			clear(l.pre[len(l.pre)-len(buf):])
		}
		if over := len(l.pre) - l.preMax; over > 0 {
			l.pre = append(l.pre[:0], l.pre[over:]...)
		}
	}
	if ev == media.VADSpeechEnd {
		silence := l.vad.TrailingSilence()
		over := l.over
		over.stopped = max(0, l.heard-silence)
		l.over = voiceOver{}
		if !over.on {
			c.speechStopped(over.stopped)
		}
		why := fixedSilence
		if l.ep != nil {
			why = l.chosen.Why
		}
		endpointWait.WithLabelValues(string(why)).Observe(silence.Seconds())
		c.endUtterance(ctx, rec, l.at, silence, why, over)
	}
}

// speechStopped tells a Listener that the caller stopped speaking at at.
func (c *Call) speechStopped(at time.Duration) {
	if ln, ok := c.out.(Listener); ok {
		ln.SpeechStopped(at)
	}
}

// heed follows an utterance under way: the endpointing's silence from its
// words so far, and whether a voice over the bot has become an
// interruption.
func (c *Call) heed(ctx context.Context, rec speech.Recognizer, l *listener, near bool) {
	words := ""
	if p := c.words.Load(); p != nil {
		words = *p
	}
	if l.ep != nil {
		l.chosen = l.ep.Decide(words)
		l.vad.SetStop(max(l.chosen.Wait, lag(rec, l.ep)))
	}
	if !l.over.on {
		return
	}
	if near && l.vad.Raw() {
		l.over.voiced += media.FrameDuration
	}
	if !c.active.Load() {
		since := l.over.since
		l.over = voiceOver{} // the bot finished meanwhile: an utterance as any
		c.speechStarted(since)
		return
	}
	// The VAD's start is speech too: it reached Start to begin.
	if c.interrupts(words) || l.start+l.over.voiced >= c.cfg.BargeInAfter {
		since := l.over.since
		l.over = voiceOver{}
		c.bargeIn(ctx)
		c.speechStarted(since)
	}
}

// lag is how far the recogniser's words lag the audio, at most the
// endpointing's long wait (the one for words that end mid-thought: no
// wait on words is longer): a turn ends on its words only once they
// cover the audio up to the silence (a recogniser behind on a loaded
// machine would otherwise have the caller cut off mid-thought).
func lag(rec speech.Recognizer, ep *endpoint.Endpointer) time.Duration {
	if l, ok := rec.(speech.Lagger); ok {
		return min(l.Lag(), ep.Config().Long)
	}
	return 0
}

// speechStarted tells a Listener that the caller started speaking at at.
func (c *Call) speechStarted(at time.Duration) {
	if ln, ok := c.out.(Listener); ok {
		ln.SpeechStarted(at)
	}
}

// countEcho counts each stretch of caller audio that would have started
// speech by its level, but was held back as the bot's echo.
func (c *Call) countEcho(l *listener, near bool) {
	if !l.vad.Raw() || near {
		l.echo = 0
		return
	}
	before := l.echo
	l.echo += media.FrameDuration
	if before < l.start && l.echo >= l.start {
		echoSuppressed.Inc()
	}
}

// control carries out a front end's Commit or Clear.
func (c *Call) control(ctx context.Context, rec speech.Recognizer, l *listener, op listenCtl) {
	switch op {
	case ctlCommit:
		if c.uttered.Load() {
			c.endUtterance(ctx, rec, l.at, 0, fixedSilence, voiceOver{})
		}
	case ctlClear:
		if c.uttered.Load() {
			ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, _ = rec.End(ectx) // its words are dropped
			cancel()
			c.uttered.Store(false)
		}
		l.pre = l.pre[:0]
	}
}

// Commit ends the caller's utterance now, as the end of speech would (the
// client commits its input, as it must with TurnTaking.Manual). It
// reports false when there is no audio to commit (or the loop has too
// many orders queued); it never waits for the recogniser.
func (c *Call) Commit() bool {
	// With manual turn taking every frame is the utterance's: those still
	// queued count.
	pending := c.taking.Load().Manual && c.queued.Load() > c.taken.Load()+c.dropped.Load()
	if !c.uttered.Load() && !pending {
		return false
	}
	return c.order(ctlCommit)
}

// Clear drops the audio of the caller's utterance not yet ended.
func (c *Call) Clear() { c.order(ctlClear) }

func (c *Call) order(op listenCtl) bool {
	select {
	case c.ctl <- ctlOrder{op: op, after: c.queued.Load()}:
		return true
	default:
		return false
	}
}

// Interrupt cuts off the reply now, as the caller's voice would (the
// client asked to interrupt).
func (c *Call) Interrupt(ctx context.Context) { c.bargeIn(ctx) }

// bargeIn cuts off the reply being written or spoken: the caller has
// spoken for the VAD's start duration. Audio stops at once; the speaker
// then reports what was heard.
func (c *Call) bargeIn(ctx context.Context) {
	if !c.active.Load() {
		return
	}
	bargeIns.Inc()
	// Under c.mu, as the speaker's pushes are: no frame of the cut turn
	// is queued after the flush.
	c.mu.Lock()
	c.cut.Store(c.turn.Load())
	if c.stopSpeech != nil {
		c.stopSpeech()
	}
	c.pacer.Flush()
	c.mu.Unlock()
	if f, ok := c.out.(Flusher); ok {
		f.Flush() // the client's queue too, at once
		c.echo.flush()
	}
	c.first.Store(0) // its first frame may have been flushed: no latency figure
	if err := c.v.Turns.Interrupt(ctx, c.session); err != nil {
		c.log.Warn("interrupt failed", "err", err)
	}
	c.post(callEvent{bargeIn: c.turn.Load()})
}

func (c *Call) write(rec speech.Recognizer, pcm []int16) {
	if len(pcm) == 0 {
		return
	}
	c.uttered.Store(true)
	if err := rec.Write(pcm); err != nil {
		c.log.Warn("recogniser dropped audio", "err", err)
	}
}

// endUtterance turns the utterance just ended (by the VAD, or a commit)
// into a user turn. at is when the last frame heard arrived, silence how
// long the VAD waited after the last voiced audio (0 for a commit), why
// the rule that chose it. over.on: the
// utterance began over the bot and has not cut it off: unless its words
// say otherwise it is a false start, and no turn.
func (c *Call) endUtterance(ctx context.Context, rec speech.Recognizer, at time.Time, silence time.Duration, why endpoint.Why, over voiceOver) {
	now := c.clk.Now()
	if at.IsZero() {
		at = now
	}
	tt := turnTiming{voicedEnd: at.Add(-silence), silence: silence, decided: now, why: string(why)}
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	text, err := rec.End(ectx)
	c.uttered.Store(false)
	tt.transcribed = c.clk.Now()
	if err != nil {
		c.log.Warn("recognition failed", "err", err)
		c.out.SendEvent(event.Error{Code: event.CodeUpstream, Message: "speech recognition failed: " + err.Error()})
		c.post(callEvent{apology: true})
		return
	}
	if text == "" {
		if over.on {
			falseStarts.Inc()
		}
		return // a noise, not words
	}
	if over.on && c.echoed(text) {
		falseStarts.Inc() // the bot's echo, though it may have finished since
		return
	}
	if over.on && c.active.Load() {
		if !c.interrupts(text) {
			falseStarts.Inc() // an "okay", a cough heard as a word: the bot goes on
			return
		}
		// Words enough, recognised only now: an interruption after all.
		c.bargeIn(ctx)
		c.speechStarted(over.since)
		c.speechStopped(over.stopped)
	} else if over.on {
		c.speechStarted(over.since) // the bot finished meanwhile
		c.speechStopped(over.stopped)
	}
	asrLatency.Observe(tt.transcribed.Sub(tt.decided).Seconds())
	if c.taking.Load().NoResponse {
		c.appendItem(ctx, text, tt.voicedEnd)
		return
	}
	turn, err := c.submit(ctx, text, event.SourceVoice, tt)
	c.rec.Load().heard(turn, event.SourceVoice, text, tt.voicedEnd)
	if err != nil {
		c.submitFailed(err)
	}
}

// appendItem stores the caller's words as an item without a reply.
func (c *Call) appendItem(ctx context.Context, text string, voicedEnd time.Time) {
	turn, err := c.v.Turns.AppendItem(ctx, c.session, text, event.SourceVoice)
	c.rec.Load().heard(turn, event.SourceVoice, text, voicedEnd)
	if err != nil {
		c.submitFailed(err)
		return
	}
	if ln, ok := c.out.(Listener); ok {
		ln.Appended(turn)
	}
}

// submitFailed tells the caller's front end why its turn was not taken.
func (c *Call) submitFailed(err error) {
	if te, ok := err.(interface{ Event() event.Error }); ok {
		c.out.SendEvent(te.Event())
	} else {
		c.out.SendEvent(event.Error{Code: event.CodeInternal, Message: "the turn could not be submitted"})
	}
}
