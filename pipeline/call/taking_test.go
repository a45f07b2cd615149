package call

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/event"
)

// listenOutput is an Output that follows the caller's turn taking
// (Listener), as the Realtime protocol's does.
type listenOutput struct {
	*fakes.Output
	mu       sync.Mutex
	started  []time.Duration
	stopped  []time.Duration
	appended []int64
}

func (o *listenOutput) SpeechStarted(at time.Duration) {
	o.mu.Lock()
	o.started = append(o.started, at)
	o.mu.Unlock()
}

func (o *listenOutput) SpeechStopped(at time.Duration) {
	o.mu.Lock()
	o.stopped = append(o.stopped, at)
	o.mu.Unlock()
}

func (o *listenOutput) Appended(turn int64) {
	o.mu.Lock()
	o.appended = append(o.appended, turn)
	o.mu.Unlock()
	o.Output.SendEvent(event.State{State: "appended"}) // wakes the waits on the Output
}

func (o *listenOutput) seen() (started, stopped []time.Duration, appended []int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]time.Duration(nil), o.started...), append([]time.Duration(nil), o.stopped...), append([]int64(nil), o.appended...)
}

func withListener(r *rig) *listenOutput {
	l := &listenOutput{Output: r.out}
	r.sink = l
	return l
}

// With NoResponse, the end of the caller's turn stores their words as an
// item and asks for no reply; the Listener hears of the start and end of
// speech, at their places in the caller's audio, and of the item.
func TestTurnTakingNoResponse(t *testing.T) {
	var l *listenOutput
	r := newRig(t, heard("remember the milk"), func(r *rig) { l = withListener(r) })
	r.c.SetTurnTaking(TurnTaking{NoResponse: true})
	r.say(400 * time.Millisecond)
	app := r.turns.WaitAppends(t, 1)[0]
	if app.Text != "remember the milk" || app.Source != event.SourceVoice || app.Turn != 1 {
		t.Fatalf("appended %+v", app)
	}
	r.out.WaitEvent(t, "the item appended", func(ev event.Event) bool { s, ok := ev.(event.State); return ok && s.State == "appended" })
	started, stopped, appended := l.seen()
	// say: 500 ms of silence, then 400 ms of tone; the VAD's 600 ms stop.
	if len(started) != 1 || started[0] != 500*time.Millisecond {
		t.Fatalf("speech started at %v, want [500ms]", started)
	}
	if len(stopped) != 1 || !aFrameFrom(stopped[0], 900*time.Millisecond) {
		t.Fatalf("speech stopped at %v, want [900ms] (or a frame later: the filter rings)", stopped)
	}
	if len(appended) != 1 || appended[0] != 1 {
		t.Fatalf("appended %v", appended)
	}
	if n := len(r.turns.Submits()); n != 0 {
		t.Fatalf("%d turns submitted for a reply", n)
	}
	if s := r.out.States(); len(s) > 0 && s[len(s)-1] == event.Thinking {
		t.Fatalf("states %v: the call thinks with no reply asked for", s)
	}
}

// With Manual, no VAD decides: the caller's audio, speech and silence
// alike, is one utterance until Commit, which makes it a turn; Clear
// drops it. Commit with nothing heard says so.
func TestTurnTakingManual(t *testing.T) {
	r := newRig(t, heard("first words", "second words"))
	r.c.SetTurnTaking(TurnTaking{Manual: true})
	if r.c.Commit() {
		t.Fatal("Commit with no audio reported a commit")
	}
	n := r.inFrame()
	loud := testkit.Tone(440, n*media.FramesPerSecond, n*40, fakes.Amplitude)
	feed := func() { // 800 ms of tone, then 1 s of silence: a VAD would have ended it
		for i := range 90 {
			frame := make([]int16, n)
			if i < 40 {
				frame = loud[i*n : (i+1)*n]
			}
			w := sum(r.rec.Writes())
			r.c.Audio(frame)
			r.rec.WaitFor(t, "a frame written", func() bool { return sum(r.rec.Writes()) > w })
		}
	}
	feed()
	if r.rec.Ends() != 0 {
		t.Fatal("an utterance ended with no commit")
	}
	r.c.Clear()
	r.rec.WaitEnds(t, 1) // dropped: its words never become a turn
	feed()
	if !r.c.Commit() {
		t.Fatal("Commit found no audio")
	}
	sub := r.turns.WaitSubmits(t, 1)[0]
	if sub.Text != "second words" || sub.Source != event.SourceVoice {
		t.Fatalf("submitted %+v", sub)
	}
	if got := len(r.rec.Utterances()[1]); got != 90*n {
		t.Fatalf("the committed utterance has %d samples, want all %d fed", got, 90*n)
	}
	if r.turns.Interrupts() != 0 {
		t.Fatal("manual turn taking cut something off")
	}
}

// aFrameFrom: got is want or a frame after it.
func aFrameFrom(got, want time.Duration) bool { return got >= want && got <= want+media.FrameDuration }

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// With NoBargeIn, the caller speaking over a reply does not cut it off;
// Interrupt still does.
func TestTurnTakingNoBargeIn(t *testing.T) {
	r := newRig(t, heard("hello", "more"))
	r.c.SetTurnTaking(TurnTaking{NoBargeIn: true})
	r.spokenTurn(1)
	r.turns.Write(1, s1+" "+s2)
	r.lead(0)
	r.say(400 * time.Millisecond)
	r.turns.WaitSubmits(t, 2)
	if n := r.turns.Interrupts(); n != 0 {
		t.Fatalf("%d interrupts: the caller's voice cut the reply off", n)
	}
	r.c.Interrupt(context.Background())
	if n := r.turns.Interrupts(); n != 1 {
		t.Fatalf("%d interrupts after Interrupt", n)
	}
}

// TurnTaking's VAD and PreRoll take the place of the call's: a longer
// stop silence ends the turn later, a shorter pre-roll keeps less.
func TestTurnTakingVAD(t *testing.T) {
	var l *listenOutput
	r := newRig(t, heard("hello"), func(r *rig) { l = withListener(r) })
	r.c.SetTurnTaking(TurnTaking{VAD: media.VADConfig{Stop: time.Second}, PreRoll: 100 * time.Millisecond})
	r.say(400 * time.Millisecond)
	r.turns.WaitSubmits(t, 1)
	_, stopped, _ := l.seen()
	if len(stopped) != 1 || !aFrameFrom(stopped[0], 900*time.Millisecond) {
		t.Fatalf("speech stopped at %v, want [900ms] (or a frame later)", stopped)
	}
	utt := r.rec.Utterances()[0]
	// 100 ms of pre-roll before the VAD's start (which comes at the
	// tone's 10th frame), the tone's other 220 ms, 1 s of silence (and the
	// frame that rang on), at 16 kHz.
	if want := (100 + 220 + 1000) * 16; len(utt) != want && len(utt) != want+320 {
		t.Fatalf("the utterance has %d samples, want %d", len(utt), want)
	}
}

// Respond asks for a reply to the conversation as it stands, which the
// call speaks and finishes as a spoken turn's.
func TestRespond(t *testing.T) {
	r := newRig(t)
	turn, err := r.c.Respond(context.Background(), func(ctx context.Context, written func(int64, string)) (int64, error) {
		return r.turns.Respond(sessionID, written), nil
	})
	if err != nil || turn != 1 {
		t.Fatalf("Respond: turn %d, %v", turn, err)
	}
	if r.c.Turn() != 1 {
		t.Fatalf("the call follows turn %d", r.c.Turn())
	}
	r.turns.Write(1, s3)
	fin := r.finishAfterTicks(1)[0]
	if fin.Turn != 1 || fin.Heard != s3 || fin.Cut {
		t.Fatalf("finished %+v", fin)
	}
	if n := r.out.FrameCount(); n != r.frames16(s3) {
		t.Fatalf("%d frames, want %d", n, r.frames16(s3))
	}
}
