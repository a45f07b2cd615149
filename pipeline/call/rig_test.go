package call

import (
	"context"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/pcm"
	"github.com/parleyhq/parley/pipeline/event"
)

// The session every rig's call belongs to.
const sessionID = "s1"

// rig is one call under test: fakes all round, and the fake clock, which
// only the test moves.
type rig struct {
	t     *testing.T
	clk   *testkit.Clock
	turns *fakes.Turns
	hub   *fakes.Follower
	asr   *fakes.ASR
	tts   *fakes.TTS
	out   *fakes.Output // what the call sent
	sink  Output        // given to the call: out, or a PlayedOutput around it
	cfg   Config
	media Media
	// recorder: Voice.Recorder
	recorder Recorder

	c    *Call
	rec  *fakes.Recognizer
	stop func() error // cancels Run and returns what it returned
}

// newRig starts a call with the defaults (PCM at 16 kHz both ways, the
// fake synthesiser at 16 kHz: no resampler) changed by setup, and waits
// until it listens.
func newRig(t *testing.T, setup ...func(*rig)) *rig {
	t.Helper()
	r := buildRig(t, setup...)
	r.start()
	r.hub.WaitFollowing(t, sessionID, 1)
	r.rec = r.asr.WaitCalls(t, 1)[0]
	r.out.WaitState(t, event.Listening)
	return r
}

// buildRig is a rig not yet started.
func buildRig(t *testing.T, setup ...func(*rig)) *rig {
	out := &fakes.Output{}
	r := &rig{t: t, clk: testkit.NewClock(), hub: &fakes.Follower{}, asr: &fakes.ASR{}, tts: &fakes.TTS{},
		out: out, sink: out, media: Media{Out: pcm.Codec{Rate: 16000}}}
	r.turns = &fakes.Turns{Events: r.hub}
	// The caller's "voice" here is a tone as loud as the bot's: the echo
	// gate would take it for the bot's echo early in a reply (it assumes
	// an echo no louder than what was played until it has learnt the
	// path). These tests are of the rest of the call; the gate, on by
	// default, has tests of its own (heed_test.go, media, and the voice
	// tests over real sockets).
	r.cfg.NoEchoGate = true
	for _, f := range setup {
		f(r)
	}
	return r
}

// start runs the call until stop or the end of the test.
func (r *rig) start() {
	r.cfg.Clock = r.clk
	v := &Voice{Turns: r.turns, Events: r.hub, ASR: r.asr, TTS: r.tts, Config: r.cfg, Recorder: r.recorder}
	r.c = v.NewCall(sessionID, r.media, r.sink, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.c.Run(ctx) }() // ends with ctx
	var err error
	stopped := false
	r.stop = func() error {
		r.t.Helper()
		if stopped {
			return err
		}
		stopped = true
		cancel()
		select {
		case err = <-done:
		case <-time.After(fakes.WaitTimeout):
			r.t.Fatal("Run did not return once its context was cancelled")
		}
		return err
	}
	r.t.Cleanup(func() { _ = r.stop() })
}

// withPlayed makes the call's output one that says how much its client
// has played (call.Played).
func withPlayed(r *rig) *fakes.PlayedOutput {
	p := &fakes.PlayedOutput{}
	r.out, r.sink = &p.Output, p
	return p
}

// inFrame is how many samples make a frame of the caller's PCM.
func (r *rig) inFrame() int {
	rate := r.media.InRate
	if rate <= 0 {
		rate = r.asr.SampleRate()
	}
	return rate / media.FramesPerSecond
}

// The caller's utterances: lead frames of silence first, so that the
// VAD has its noise floor, and frames of a loud tone, which the VAD takes
// for speech (it starts a turn after 200 ms of it: the 10th frame).
const (
	leadFrames  = 25 // 500 ms: more than the pre-roll, so that it is capped
	startFrames = 10
)

// say speaks an utterance of a loud tone lasting d into the call, as a
// microphone would, then silence until the VAD ends it. Past the VAD's
// start, it waits for the recogniser to take each frame before the next,
// so that none is dropped from the call's input queue (50 frames) however
// fast the test runs.
func (r *rig) say(d time.Duration) {
	r.t.Helper()
	n := r.inFrame()
	tone := int(d / media.FrameDuration)
	if tone < startFrames+1 {
		r.t.Fatalf("say: %v is too short to be speech", d)
	}
	loud := testkit.Tone(440, n*media.FramesPerSecond, n*tone, fakes.Amplitude)
	writes, ends := len(r.rec.Writes()), r.rec.Ends()
	for range leadFrames {
		r.c.Audio(make([]int16, n))
	}
	for i := range startFrames {
		r.c.Audio(loud[i*n : (i+1)*n])
	}
	r.rec.WaitFor(r.t, "the start of speech", func() bool { return len(r.rec.Writes()) > writes })
	for i := startFrames; i < tone; i++ {
		r.feedWritten(loud[i*n:(i+1)*n], ends)
	}
	for r.rec.Ends() == ends {
		r.feedWritten(make([]int16, n), ends)
	}
}

// feedWritten gives the call one frame of speech and waits for the
// recogniser to take it (or for the utterance to end).
func (r *rig) feedWritten(frame []int16, ends int) {
	r.t.Helper()
	w := len(r.rec.Writes())
	r.c.Audio(frame)
	r.rec.WaitFor(r.t, "a frame written to the recogniser", func() bool {
		return len(r.rec.Writes()) > w || r.rec.Ends() > ends
	})
}

// advance moves the clock by d and waits until the pacer has had its
// tick, so that the next advance drops none.
func (r *rig) advance(d time.Duration) {
	r.t.Helper()
	r.clk.Advance(d)
	select {
	case <-r.clk.TicksTaken():
	case <-time.After(fakes.WaitTimeout):
		r.t.Fatal("the pacer did not take its tick")
	}
}

// step is one tick of the pacer.
func (r *rig) step() { r.t.Helper(); r.advance(media.FrameDuration) }

// tick moves n ticks, each of which must send one frame: the test knows
// that the reply has n more. Before each, it waits for the synthesiser to
// have queued a frame: the test's ticks are faster than real time, and
// must not outrun synthesis (which the fake TTS makes in whole frames, so
// that each frame pushed is followed by a return of emit).
func (r *rig) tick(n int) {
	r.t.Helper()
	for range n {
		before := r.out.FrameCount()
		r.tts.WaitFor(r.t, "a frame queued", func() bool { return r.c.pacer.Queued() > 0 })
		r.step()
		r.out.WaitFrames(r.t, before+1)
		if got := r.out.FrameCount(); got != before+1 {
			r.t.Fatalf("a tick sent %d frames; the pacer sends one", got-before)
		}
	}
}

// tickUntil ticks until cond holds, for a condition that stays true once
// it holds: overshooting does no harm. It is bounded in real time, not in
// ticks: what cond waits for may need a goroutine (the synthesiser, a
// timer's) that a busy machine runs late, however far the fake clock has
// gone meanwhile.
func (r *rig) tickUntil(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(fakes.WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("no %s within %v", what, fakes.WaitTimeout)
		}
		r.step()
	}
}

// finishAfterTicks ticks until the call has made n FinishSpoken calls and
// returns them: the reply's audio must all be out by then.
func (r *rig) finishAfterTicks(n int) []fakes.Finished {
	r.t.Helper()
	r.tickUntil("finished turn", func() bool { return len(r.turns.Finishes()) >= n })
	return r.turns.Finishes()
}

// framesOf is how many frames the fake synthesiser's audio for the
// sentences makes, at the codec's rate, each sentence's last frame
// padded: exact without a resampler.
func (r *rig) framesOf(rate int, sentences ...string) int {
	per := rate / media.FramesPerSecond
	n := 0
	for _, s := range sentences {
		samples := r.tts.Samples(s) * rate / r.tts.SampleRate()
		n += (samples + per - 1) / per
	}
	return n
}

// frames16 is framesOf at the rigs' default 16 kHz.
func (r *rig) frames16(sentences ...string) int { return r.framesOf(16000, sentences...) }

// spokenTurn has the caller say the n-th thing the recogniser hears as
// text, and returns the turn it made, once the call follows it.
func (r *rig) spokenTurn(n int) fakes.Submitted {
	r.t.Helper()
	r.say(400 * time.Millisecond)
	s := r.turns.WaitSubmits(r.t, n)[n-1]
	r.following(s.Turn)
	return s
}

// following waits until the call follows turn (SubmitSpoken has returned
// to it), so that the reply's events are taken as the turn's. Nothing
// leaves the call then, so this looks at its state, yielding between
// looks. It waits for active too, which follow sets after the turn: a
// reply played out before that would leave the call active.
func (r *rig) following(turn int64) {
	r.t.Helper()
	deadline := time.Now().Add(fakes.WaitTimeout)
	for r.c.turn.Load() < turn || !r.c.active.Load() {
		if time.Now().After(deadline) {
			r.t.Fatalf("the call does not follow turn %d", turn)
		}
		runtime.Gosched()
	}
}

// lead waits for the pacer's lead of a reply that starts after base
// frames: 3 frames at once, with no tick.
func (r *rig) lead(base int) {
	r.t.Helper()
	r.out.WaitFrames(r.t, base+3)
	if n := r.out.FrameCount() - base; n != 3 {
		r.t.Fatalf("%d frames before any tick; the pacer's lead is 3", n)
	}
}
