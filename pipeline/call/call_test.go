package call

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/pipeline/event"
)

// A reply of three sentences, the second of ten words; with the fake
// synthesiser's 20 ms a character, 36, 50 and 17 frames.
const (
	s1 = "The weather today is sunny and warm."
	s2 = "Tomorrow it will rain in the north of the country."
	s3 = "Take an umbrella."
)

// heard says what the caller is heard to have said, turn after turn.
// Its words come at once, as the partial of the utterance's first frame:
// a voice over the bot is an interruption as soon as it starts.
func heard(texts ...string) func(*rig) {
	return func(r *rig) {
		for _, t := range texts {
			r.asr.Script = append(r.asr.Script, fakes.Utterance{Text: t, Partials: []string{t}})
		}
	}
}

// A spoken turn from the caller's first sound to the end of its reply.
// The clock stands still until the reply plays: see TestLatency for the
// figures when time passes.
func TestSpokenTurn(t *testing.T) {
	r := newRig(t, func(r *rig) {
		r.asr.Script = []fakes.Utterance{{Text: "what is the weather", Partials: []string{"what", "what is"}}}
	})
	sub := r.spokenTurn(1)
	if sub.Session != sessionID || sub.Text != "what is the weather" || sub.Source != event.SourceVoice || sub.Turn != 1 {
		t.Fatalf("submitted %+v", sub)
	}
	checkPreRoll(t, r, 20) // spokenTurn's 400 ms

	r.turns.Deltas(1, s1+" ") // the first sentence is spoken before the model has finished
	r.lead(0)
	r.turns.Write(1, s1+" "+s2)
	// The second sentence is being synthesised: the first is all queued,
	// and each tick sends one frame of it.
	if got := r.tts.WaitTexts(t, 2); !reflect.DeepEqual(got, []string{s1, s2}) {
		t.Fatalf("synthesised %q", got)
	}
	r.tick(r.frames16(s1) - 3)

	total := r.frames16(s1, s2)
	for range r.frames16(s2) {
		if len(r.turns.Finishes()) > 0 {
			t.Fatalf("finished with %d of %d frames sent", r.out.FrameCount(), total)
		}
		r.tick(1)
	}
	fin := r.finishAfterTicks(1)[0]
	if n := r.out.FrameCount(); n != total {
		t.Fatalf("finished with %d of %d frames sent", n, total)
	}
	if fin != (fakes.Finished{Session: sessionID, Turn: 1, Heard: s1 + " " + s2, Cut: false}) {
		t.Fatalf("finished %+v", fin)
	}
	// Listening once the reply.done the engine stores comes back: no
	// time needs to pass.
	r.out.WaitState(t, event.Listening)
	checkStates(t, r.out, total, event.Listening, event.Thinking, event.Speaking, event.Listening)

	partials := fakes.Of[event.Transcript](r.out.Events())
	if len(partials) != 2 || partials[0].Text != "what" || partials[1].Text != "what is" || partials[0].Final || partials[0].Turn != 0 {
		t.Fatalf("partial transcripts %+v", partials)
	}
	// "what is" ends mid-thought: the endpointing waited its long silence.
	checkLatency(t, r.out, true, 0, 0, 1200, "unfinished")
}

// The latency event's figures, which the fake clock makes exact: the
// recogniser takes 50 ms, the model 100 ms to its first text (80 ms for
// a typed turn, which has no voice figures).
func TestLatency(t *testing.T) {
	t.Run("spoken", func(t *testing.T) {
		asrDone := make(chan struct{})
		r := newRig(t, func(r *rig) { r.asr.Script = []fakes.Utterance{{Text: "hello", Wait: asrDone}} })
		r.say(400 * time.Millisecond)
		r.rec.WaitEnds(t, 1)
		r.advance(50 * time.Millisecond)
		close(asrDone)
		r.turns.WaitSubmits(t, 1)
		r.following(1)
		r.advance(100 * time.Millisecond)
		r.turns.Write(1, s1)
		r.out.WaitFrames(t, 1)
		checkLatency(t, r.out, true, 50, 100, 600, "no_words") // no partials: the normal silence
	})
	t.Run("typed", func(t *testing.T) {
		r := newRig(t)
		if _, err := r.c.SubmitText(context.Background(), "hello"); err != nil {
			t.Fatal(err)
		}
		r.advance(80 * time.Millisecond)
		r.turns.Write(1, s1)
		r.out.WaitFrames(t, 1)
		checkLatency(t, r.out, false, 0, 80, 0, "") // the server's part from the turn's arrival
	})
}

// checkPreRoll: the recogniser got the utterance of tone frames with the
// 400 ms before the VAD's start (capped: there was more silence before),
// then every frame of speech and of the silence that ended it.
func checkPreRoll(t *testing.T, r *rig, tone int) {
	t.Helper()
	const pre = 400 * 16 // 400 ms at 16 kHz
	writes := r.rec.Writes()
	utt := r.rec.Utterances()[0]
	if writes[0] != pre {
		t.Fatalf("the first write is %d samples; want the pre-roll's %d", writes[0], pre)
	}
	quiet, loud := pre-(startFrames-1)*320, pre
	if testkit.RMS(utt[:quiet]) != 0 || testkit.RMS(utt[quiet:loud]) < fakes.Amplitude/2 {
		t.Fatal("the pre-roll is not the silence then the speech before the VAD's start")
	}
	if rest := len(utt) - pre; rest%320 != 0 || rest/320 < tone-startFrames+1+30 {
		t.Fatalf("%d samples after the pre-roll", rest)
	}
}

// checkStates: the states came in this order, the last with the reply's
// last frame sent.
func checkStates(t *testing.T, out *fakes.Output, frames int, want ...event.BotState) {
	t.Helper()
	if got := out.States(); !reflect.DeepEqual(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
	var last fakes.Sent
	for _, s := range out.Events() {
		if _, ok := s.Event.(event.State); ok {
			last = s
		}
	}
	if last.Frames != frames {
		t.Fatalf("%s after %d frames; the reply is %d", want[len(want)-1], last.Frames, frames)
	}
}

// checkLatency: the turn's one latency event, sent with its first frame.
// The fake clock makes the figures exact: the recogniser took asr ms (of
// a spoken turn), the model's first text came model ms after the
// submission, the first frame left at once.
func checkLatency(t *testing.T, out *fakes.Output, spoken bool, asr, model, endpoint int64, why string) {
	t.Helper()
	var lat []event.Latency
	at := -1
	for _, s := range out.Events() {
		if l, ok := s.Event.(event.Latency); ok {
			lat, at = append(lat, l), s.Frames
		}
	}
	if len(lat) != 1 || at != 0 {
		t.Fatalf("latency events %+v (the last after %d frames); want one, with the first frame", lat, at)
	}
	l := lat[0]
	if l.Turn != 1 || l.Server != asr+model || l.LLMFirstToken != model || l.TTSFirstAudio != 0 {
		t.Fatalf("latency %+v", l)
	}
	if !spoken {
		if l.ASR != nil || l.Endpoint != nil || l.VoiceToVoice != nil {
			t.Fatalf("a typed turn's latency has voice figures: %+v", l)
		}
		return
	}
	if l.ASR == nil || l.Endpoint == nil || l.VoiceToVoice == nil {
		t.Fatalf("a spoken turn's latency without its voice figures: %+v", l)
	}
	// The endpoint is the silence the endpointing chose, in audio time
	// (a frame more at most), and voice to voice is it plus the server's
	// part (each rounded down).
	if l.EndpointWhy != why {
		t.Fatalf("endpoint chosen by %q; want %q", l.EndpointWhy, why)
	}
	if *l.ASR != asr || *l.Endpoint < endpoint || *l.Endpoint > endpoint+20 ||
		*l.VoiceToVoice < *l.Endpoint+l.Server || *l.VoiceToVoice > *l.Endpoint+l.Server+1 {
		t.Fatalf("latency: voice to voice %d, endpoint %d, server %d, asr %d", *l.VoiceToVoice, *l.Endpoint, l.Server, *l.ASR)
	}
}

// The engine hands a spoken turn's whole reply to written; another
// replica that took the turn over stores its reply.done, and the call
// speaks what it had not had: here more than listenFallback of audio, so
// that listening must wait for the audio, not for the fallback.
func TestReplyArrivesWhole(t *testing.T) {
	tests := []struct {
		name      string
		sentences []string
		reply     func(t *testing.T, r *rig, full string)
		finish    bool // this replica stores the turn
	}{
		{"written", []string{s1, s2, s3}, func(t *testing.T, r *rig, full string) { r.turns.Write(1, full) }, true},
		{"taken over", []string{s1, s2, s3, s2, s3}, func(t *testing.T, r *rig, full string) {
			r.turns.Deltas(1, s1+" ")
			r.tts.WaitTexts(t, 1)
			r.hub.Publish(sessionID, event.ReplyDone{Turn: 1, Text: full})
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The synthesiser ends its last stream only once all the audio
			// has been played: the call must not take that for its own turn
			// played out.
			release := make(chan struct{})
			var texts atomic.Int32
			r := newRig(t, heard("hello"), func(r *rig) {
				r.tts.Done = func(string) {
					if int(texts.Add(1)) == len(tc.sentences) {
						<-release
					}
				}
			})
			t.Cleanup(func() { close(release) })
			r.spokenTurn(1)
			full := strings.Join(tc.sentences, " ")
			tc.reply(t, r, full)
			r.lead(0)
			total := r.frames16(tc.sentences...)
			r.tick(total - 3)
			release <- struct{}{}
			if tc.finish {
				fin := r.finishAfterTicks(1)[0]
				if fin.Heard != full || fin.Cut {
					t.Fatalf("finished %+v", fin)
				}
			}
			r.tickUntil("listening", func() bool { return r.out.State() == event.Listening })
			if got := r.tts.Texts(); !reflect.DeepEqual(got, tc.sentences) {
				t.Fatalf("synthesised %q", got)
			}
			if n := r.out.FrameCount(); n != total {
				t.Fatalf("%d frames sent; the reply is %d", n, total)
			}
			checkStates(t, r.out, total, event.Listening, event.Thinking, event.Speaking, event.Listening)
			if !tc.finish && len(r.turns.Finishes()) != 0 {
				t.Fatalf("a turn stored by another replica finished here: %+v", r.turns.Finishes())
			}
		})
	}
}

// A model so fast that the reply is written before SubmitSpoken has
// returned to the call: the reply is still the call's to speak. The fake
// engine holds SubmitSpoken until the reply is being synthesised.
func TestReplyWrittenBeforeSubmitReturns(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	r := newRig(t, heard("hello"), func(r *rig) {
		r.turns.OnSubmit = func(s fakes.Submitted) {
			r.turns.Write(s.Turn, s1)
			<-release
		}
	})
	t.Cleanup(free) // before the rig's: Run cannot end while SubmitSpoken waits
	r.say(400 * time.Millisecond)
	r.tts.WaitTexts(t, 1)
	free()
	r.lead(0)
	fin := r.finishAfterTicks(1)[0]
	if fin.Heard != s1 || fin.Cut || r.out.FrameCount() != r.frames16(s1) {
		t.Fatalf("finished %+v after %d frames", fin, r.out.FrameCount())
	}
}

// A turn typed during the call is answered aloud.
func TestTypedTurnIsSpoken(t *testing.T) {
	r := newRig(t)
	turn, err := r.c.SubmitText(context.Background(), "what is the weather")
	if err != nil || turn != 1 {
		t.Fatalf("SubmitText: %d, %v", turn, err)
	}
	if sub := r.turns.Submits()[0]; sub.Source != event.SourceText || sub.Text != "what is the weather" {
		t.Fatalf("submitted %+v", sub)
	}
	r.turns.Write(1, s1)
	r.lead(0)
	fin := r.finishAfterTicks(1)[0]
	if fin.Heard != s1 || fin.Cut || r.out.FrameCount() != r.frames16(s1) {
		t.Fatalf("finished %+v after %d frames", fin, r.out.FrameCount())
	}
	r.out.WaitState(t, event.Listening)
	checkStates(t, r.out, r.frames16(s1), event.Listening, event.Thinking, event.Speaking, event.Listening)
}

// A turn refused by the engine: SubmitText says why, and the call is
// listening again.
func TestTypedTurnRefused(t *testing.T) {
	refused := &turnError{event.Error{Code: event.CodeRateLimited, Message: "slow down"}}
	r := newRig(t, func(r *rig) { r.turns.SubmitErr = refused })
	if _, err := r.c.SubmitText(context.Background(), "hello"); err != refused {
		t.Fatalf("SubmitText: %v", err)
	}
	checkStates(t, r.out, 0, event.Listening, event.Thinking, event.Listening)
}

// turnError is an error with the event a front end tells the client, as
// the engine's are.
type turnError struct{ ev event.Error }

func (e *turnError) Error() string      { return e.ev.Message }
func (e *turnError) Event() event.Error { return e.ev }

// A spoken turn the engine refuses: the caller is told why.
func TestSpokenTurnRefused(t *testing.T) {
	r := newRig(t, heard("hello"), func(r *rig) {
		r.turns.SubmitErr = &turnError{event.Error{Code: event.CodeTurnLimit, Message: "that is enough"}}
	})
	r.say(400 * time.Millisecond)
	got := r.out.WaitEvent(t, "an error event", func(ev event.Event) bool { _, ok := ev.(event.Error); return ok })
	if e := got.Event.(event.Error); e.Code != event.CodeTurnLimit || e.Message != "that is enough" {
		t.Fatalf("error %+v", e)
	}
	r.out.WaitState(t, event.Listening)
}

// When the reply.done of a finished turn never comes back (the session's
// events are late), the call says listening after listenFallback anyway.
func TestListeningWithoutReplyDone(t *testing.T) {
	r := newRig(t, func(r *rig) { r.turns.Events = nil })
	if _, err := r.c.SubmitText(context.Background(), "hello"); err != nil {
		t.Fatal(err)
	}
	r.turns.Write(1, s3)
	r.out.WaitFrames(t, 3)
	r.finishAfterTicks(1)
	// The fallback's timer is set after FinishSpoken: it cannot fire
	// before listenFallback from now.
	for waited := time.Duration(0); waited < listenFallback-100*time.Millisecond; waited += 100 * time.Millisecond {
		if s := r.out.State(); s != event.Speaking {
			t.Fatalf("%s after %v; want speaking until listenFallback", s, waited)
		}
		r.advance(100 * time.Millisecond)
	}
	// Past it (give or take the goroutine that set the timer): listening.
	r.tickUntil("listening", func() bool { return r.out.State() == event.Listening })
}

// The call keeps, of the session's events, its own turns' replies: what
// is not an event, another turn's reply and a resync change nothing.
func TestDeliverKeepsItsTurns(t *testing.T) {
	r := newRig(t, heard("hello"))
	r.spokenTurn(1)
	r.hub.DeliverWire(sessionID, []byte("not an event"))
	r.hub.DeliverWire(sessionID, []byte(`{"type":"tool.call","turn":1}`))
	r.hub.Publish(sessionID, event.ReplyDelta{Turn: 7, Text: "Someone else's reply. "})
	r.hub.Publish(sessionID, event.Transcript{Turn: 1, Text: "hello", Final: true, Source: event.SourceVoice})
	r.hub.Resync(sessionID)
	r.turns.Write(1, s1)
	r.lead(0)
	fin := r.finishAfterTicks(1)[0]
	if got := r.tts.Texts(); fin.Heard != s1 || !reflect.DeepEqual(got, []string{s1}) {
		t.Fatalf("finished %+v; synthesised %q", fin, got)
	}
}
