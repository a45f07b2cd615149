package call

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/event"
)

// listenFallback: how long after finishing a turn the call waits for its
// reply.done to come back before saying "listening" anyway.
const listenFallback = 2 * time.Second

// sentence is one sentence as it was queued for playing.
type sentence struct {
	text       string
	start, end int64 // frame numbers (counting frames sent): its first is start+1, its last end
}

// reply is the speaker's state for the turn it speaks.
type reply struct {
	turn      int64
	sentences Sentences
	got       strings.Builder // reply text received so far
	parts     []sentence
	written   bool // the model has finished (or another replica stored reply.done)
	stored    bool // another replica stored reply.done: nothing to finish here
	heardAny  bool // its first frame is pushed
	finished  bool // the turn's reply is stored
	tooling   bool // it waits for a tool: no text since its last call
	filled    bool // the filler was said (once a turn)
}

// heard is the text of what was played, played frames in: whole
// sentences, and the words of the one cut off in proportion to its frames
// played.
func (r *reply) heard(played int64) string {
	var out []string
	for _, p := range r.parts {
		if played >= p.end {
			out = append(out, p.text)
			continue
		}
		if played > p.start {
			words := strings.Fields(p.text)
			n := int(float64(len(words)) * float64(played-p.start) / float64(p.end-p.start))
			if n > 0 {
				out = append(out, strings.Join(words[:n], " "))
			}
		}
		break
	}
	return strings.Join(out, " ")
}

// speaker turns the followed turn's reply text into sentences, speech and
// frames for the pacer, and, when the reply has been played or cut off,
// reports what was heard. It runs on one goroutine (run), which owns it.
type speaker struct {
	c      *Call
	enc    media.Encoder
	up     *media.Resampler // the synthesiser's rate to the encoder's; nil when they agree
	ahead  int64            // frames that may wait in the pacer before synthesis pauses
	cur    reply
	frame  []int16 // samples not yet a whole frame
	res    []int16 // the resampler's output
	pushed int64   // frames given to the pacer, ever
	stop   func() bool
	// The sentences synthesised whole, in characters and frames: how long
	// one cut off while being synthesised would have been.
	chars, frames int64
}

func (c *Call) newSpeaker() (*speaker, error) {
	rate := c.v.TTS.SampleRate()
	enc, err := c.media.Out.NewEncoder(rate)
	if err != nil {
		return nil, fmt.Errorf("call: encoder: %w", err)
	}
	// No reply yet is as good as one finished: a wake (after an apology
	// said before any reply) says listening.
	s := &speaker{c: c, enc: enc, ahead: max(1, int64(c.cfg.Ahead/media.FrameDuration)), cur: reply{finished: true}}
	// The codec takes the synthesiser's PCM at its own rate where it can:
	// no resampler, the costliest step of a call when there is one.
	if enc.Rate() != rate {
		if s.up, err = media.NewResampler(rate, enc.Rate()); err != nil {
			return nil, fmt.Errorf("call: %w", err)
		}
	}
	return s, nil
}

// run handles the call's events until ctx ends.
func (s *speaker) run(ctx context.Context) {
	defer func() {
		if s.stop != nil {
			s.stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-s.c.events:
			s.handle(ctx, ev)
		}
	}
}

func (s *speaker) handle(ctx context.Context, ev callEvent) {
	switch {
	case ev.wake:
		if s.cur.finished && !s.c.active.Load() {
			if left := s.queued(); left > 0 {
				s.wakeAfter(left) // the apology still plays: its timer can beat the last tick
				return
			}
			s.c.setState(event.Listening)
		}
		s.checkPlayed(ctx)
	case ev.apology:
		if !s.c.active.Load() {
			s.sayApology(ctx)
		}
	case ev.filler != 0:
		s.sayFiller(ctx, ev.filler)
	case ev.bargeIn != 0:
		s.onBargeIn(ctx, ev.bargeIn)
	case ev.written != nil:
		s.onWritten(ctx, ev.written)
	case ev.ev != nil:
		s.onEvent(ctx, ev.ev)
	}
}

// wakeAfter makes the speaker look again after d: to finish a turn once
// its audio is out, or to say "listening".
func (s *speaker) wakeAfter(d time.Duration) {
	if s.stop != nil {
		s.stop()
	}
	s.stop = s.c.clk.AfterFunc(d, func() { s.c.post(callEvent{wake: true}) })
}

// queued is the time the frames waiting in the pacer take to play.
func (s *speaker) queued() time.Duration {
	return time.Duration(max(0, s.pushed-s.c.sent.Load())) * media.FrameDuration
}

func (s *speaker) onBargeIn(ctx context.Context, turn int64) {
	switch {
	case turn == s.cur.turn && !s.cur.finished:
		s.finish(ctx, s.c.played(), true)
		s.pushed = s.c.sent.Load() // what was flushed will never be sent
		s.wakeAfter(listenFallback)
	case turn != s.cur.turn:
		// Cut before a word of it was spoken.
		s.c.v.Turns.FinishSpoken(ctx, s.c.session, turn, "", true)
		if turn == s.c.turn.Load() { // not already followed by the caller's next turn
			s.c.active.Store(false)
			s.c.setState(event.Listening)
		}
	}
}

func (s *speaker) onWritten(ctx context.Context, w *writtenReply) {
	s.cur.tooling = s.cur.tooling && w.turn != s.cur.turn
	if w.turn != s.c.turn.Load() {
		// Superseded by a later turn: nothing of it is spoken.
		s.c.v.Turns.FinishSpoken(ctx, s.c.session, w.turn, "", true)
		return
	}
	s.start(w.turn)
	s.c.mark(w.turn, func(t *turnTiming) *time.Time { return &t.firstText })
	if !s.cur.finished {
		s.complete(ctx, w.text)
	}
}

// onEvent takes a session event of the turn being spoken.
func (s *speaker) onEvent(ctx context.Context, ev event.Event) {
	turn := event.TurnOf(ev)
	if turn != s.c.turn.Load() {
		return
	}
	s.start(turn)
	switch e := ev.(type) {
	case event.ToolCall:
		// What was said before the call is spoken now, whole or not: the
		// rest waits for the tool, and the wait is silence, not underruns.
		// The filler follows if it is long.
		s.speak(ctx, s.cur.sentences.Flush())
		s.c.pacer.End()
		if !s.cur.filled && s.c.cfg.Filler != "-" {
			s.cur.tooling = true
			s.c.clk.AfterFunc(s.c.cfg.FillerDelay, func() { s.c.post(callEvent{filler: turn}) })
		}
	case event.ReplyDelta:
		s.cur.tooling = false
		if s.cur.written || s.cur.finished {
			return // the whole text came with written
		}
		s.c.mark(turn, func(t *turnTiming) *time.Time { return &t.firstText })
		s.cur.got.WriteString(e.Text)
		for _, text := range s.cur.sentences.Add(e.Text) {
			s.speak(ctx, text)
		}
	case event.ReplyDone:
		// Stored by us (finished), or by a replica that took the turn over
		// and answered it in full: then speak the rest.
		if !s.cur.written && !s.cur.finished {
			s.cur.stored = true
			s.complete(ctx, e.Text)
			s.cur.finished = true
			s.c.active.Store(false)
			s.wakeAfter(listenFallback)
			return
		}
		if s.cur.finished && !s.c.active.Load() {
			s.c.setState(event.Listening)
		}
	case event.Error:
		s.c.flush()
		s.c.first.Store(0)
		s.pushed = s.c.sent.Load()
		s.cur.finished = true
		s.c.active.Store(false)
		if e.Code == event.CodeUpstream && s.sayApology(ctx) {
			// Said, not stored: the turn has no reply. If the synthesiser
			// is what failed, the error event stays the caller's only word
			// of it.
			return
		}
		s.c.setState(event.Listening)
	}
}

// start makes the reply state that of turn, if it was another turn's.
func (s *speaker) start(turn int64) {
	if s.cur.turn != turn {
		s.cur = reply{turn: turn}
	}
}

// complete feeds the rest of the reply once its whole text is known.
func (s *speaker) complete(ctx context.Context, full string) {
	rest := full
	if got := s.cur.got.String(); strings.HasPrefix(full, got) {
		rest = full[len(got):]
	}
	for _, text := range s.cur.sentences.Add(rest) {
		s.speak(ctx, text)
	}
	s.speak(ctx, s.cur.sentences.Flush())
	s.cur.written = true
	s.c.pacer.End()
	s.checkPlayed(ctx)
}

// checkPlayed finishes a turn whose text is complete once its last frame
// has been sent.
func (s *speaker) checkPlayed(ctx context.Context) {
	if !s.cur.written || s.cur.finished || s.cur.stored || s.c.cut.Load() == s.cur.turn {
		return // a cut turn is finished by its barge-in event
	}
	if left := s.queued(); left > 0 {
		s.wakeAfter(left)
		return
	}
	s.finish(ctx, s.c.sent.Load(), false)
	s.wakeAfter(listenFallback)
}

// finish reports what was heard of the turn, played frames in;
// "listening" follows its reply.done, which comes back through the
// session's events (a timer stands in if it never does).
func (s *speaker) finish(ctx context.Context, played int64, cut bool) {
	heard := s.cur.heard(played)
	s.cur.finished = true
	s.c.mu.Lock()
	delete(s.c.timing, s.cur.turn) // cut before any audio: no latency event
	s.c.mu.Unlock()
	if cut {
		s.c.flush()
		s.c.first.Store(0)
	}
	s.c.rec.Load().spoke(&s.cur, heard, played, cut)
	s.c.v.Turns.FinishSpoken(ctx, s.c.session, s.cur.turn, heard, cut)
	if s.cur.turn == s.c.turn.Load() {
		s.c.active.Store(false)
	}
}

// speak synthesises one sentence of the reply into the pacer.
func (s *speaker) speak(ctx context.Context, text string) {
	turn := s.cur.turn
	if text == "" || s.cur.finished || s.c.cut.Load() == turn {
		return
	}
	s.c.mark(turn, func(t *turnTiming) *time.Time { return &t.ttsStart })
	start := s.pushed
	err := s.synthesize(ctx, text, turn, func(sctx context.Context, pcm []int16) error {
		if s.c.cut.Load() == turn {
			return context.Canceled // cut off while synthesising
		}
		return s.encode(sctx, pcm, turn)
	})
	if err != nil {
		switch {
		case s.c.cut.Load() == turn:
			s.cutShort(text, start)
		case ctx.Err() == nil:
			s.c.log.Warn("speech synthesis failed", "err", err)
			s.c.out.SendEvent(event.Error{Code: event.CodeUpstream, Turn: turn, Message: "speech synthesis failed: " + err.Error()})
		}
		return
	}
	s.cur.parts = append(s.cur.parts, sentence{text: text, start: start, end: s.pushed})
	s.chars += int64(len(text))
	s.frames += s.pushed - start
}

// speechRate is a typical synthesised voice's, in characters a second.
const speechRate = 15

// cutShort keeps a sentence cut off while it was being synthesised (with
// Ahead queued, synthesis waits: any sentence longer than that is, when
// cut early), so that the words played of it count as heard. Its length
// is not known: it is estimated at the call's frames per character so far
// (before any, at speechRate), and is at least the frames made of it.
func (s *speaker) cutShort(text string, start int64) {
	if s.pushed <= start {
		return
	}
	frames, chars := s.frames, s.chars
	if chars == 0 {
		frames, chars = int64(media.FramesPerSecond), speechRate
	}
	end := max(s.pushed, start+int64(len(text))*frames/chars)
	s.cur.parts = append(s.cur.parts, sentence{text: text, start: start, end: end})
}

// sayFiller says the filler for turn, once, if it still waits for its
// tool and nothing plays: later while the caller speaks or the bot's
// words before the call still play.
func (s *speaker) sayFiller(ctx context.Context, turn int64) {
	if turn != s.cur.turn || !s.cur.tooling || s.cur.filled || s.cur.finished || s.c.cut.Load() == turn {
		return
	}
	if s.c.caller.Load() {
		s.c.clk.AfterFunc(200*time.Millisecond, func() { s.c.post(callEvent{filler: turn}) })
		return
	}
	if left := s.queued(); left > 0 {
		s.c.clk.AfterFunc(left, func() { s.c.post(callEvent{filler: turn}) })
		return
	}
	s.cur.filled = true
	fillers.Inc()
	if s.synthesize(ctx, s.c.cfg.Filler, 0, func(sctx context.Context, pcm []int16) error { return s.encode(sctx, pcm, 0) }) == nil {
		s.c.pacer.End()
	}
}

// sayApology speaks the apology outside any reply (it is not stored) and
// reports whether it did.
func (s *speaker) sayApology(ctx context.Context) bool {
	if s.c.cfg.Apology == "-" {
		return false
	}
	if s.synthesize(ctx, s.c.cfg.Apology, 0, func(sctx context.Context, pcm []int16) error { return s.encode(sctx, pcm, 0) }) != nil {
		return false
	}
	s.c.pacer.End()
	s.wakeAfter(s.queued()) // listening again once it has been played
	return true
}

// synthesize speaks text through emit, cancellable by a barge-in, and
// pushes its last, padded frame. On an error the partial frame is
// dropped.
func (s *speaker) synthesize(ctx context.Context, text string, turn int64, emit func(context.Context, []int16) error) error {
	s.c.said(text)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.c.mu.Lock()
	s.c.stopSpeech = cancel
	s.c.mu.Unlock()
	err := s.c.v.TTS.Synthesize(sctx, text, func(pcm []int16) error { return emit(sctx, pcm) })
	if err == nil {
		err = sctx.Err()
	}
	if err != nil {
		s.frame = s.frame[:0]
		return err
	}
	if len(s.frame) > 0 {
		s.frame = append(s.frame, make([]int16, s.enc.Frame()-len(s.frame))...)
		amp := media.Amplitude(s.frame)
		if pkt, err := s.enc.Encode(s.frame); err == nil {
			s.push(outFrame{pkt: pkt, amp: amp}, turn)
		}
		s.frame = s.frame[:0]
	}
	return nil
}

// encode turns synthesised PCM into frames for the pacer; turn is the
// reply's (0 for the apology). It waits while Ahead of audio is queued.
func (s *speaker) encode(ctx context.Context, pcm []int16, turn int64) error {
	if s.up != nil {
		s.res = s.up.Process(pcm, s.res[:0])
		s.frame = append(s.frame, s.res...)
	} else {
		s.frame = append(s.frame, pcm...)
	}
	n := s.enc.Frame()
	for len(s.frame) >= n {
		if err := s.waitRoom(ctx); err != nil {
			return err
		}
		amp := media.Amplitude(s.frame[:n]) // the echo gate's reference for this frame
		pkt, err := s.enc.Encode(s.frame[:n])
		if err != nil {
			return err
		}
		if s.c.state.Load() != event.Speaking {
			s.c.setState(event.Speaking)
		}
		if turn != 0 && !s.cur.heardAny {
			s.cur.heardAny = true
			s.c.expectFirst(turn, s.pushed+1) // before the push: the pacer may send it at once
		}
		if !s.push(outFrame{pkt: pkt, amp: amp}, turn) {
			return context.Canceled // cut off
		}
		s.frame = append(s.frame[:0], s.frame[n:]...)
	}
	return nil
}

// push queues a frame of turn's audio (0: the apology's) unless the turn
// has been cut off, and reports whether it did. Under c.mu, as bargeIn's
// flush is: no frame of a cut turn is queued after the flush.
func (s *speaker) push(f outFrame, turn int64) bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if turn != 0 && s.c.cut.Load() == turn {
		return false
	}
	s.pushed++
	s.c.pacer.Push(f)
	return true
}

// waitRoom waits until fewer than ahead frames wait in the pacer.
func (s *speaker) waitRoom(ctx context.Context) error {
	for s.pushed-s.c.sent.Load() >= s.ahead {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.c.progress:
		}
	}
	return nil
}
