package call

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/media/pcm"
	"github.com/parleyhq/parley/pipeline/event"
)

// A turn fails upstream: the caller is told (the recogniser's failure by
// the call's error event; the model's by the session's, which the call
// does not send again), hears the apology unless it is "-", and the call
// listens again. Nothing is stored of the failed turn by the call.
func TestUpstreamFailure(t *testing.T) {
	recogniserDown := func(r *rig) {
		r.asr.Script = []fakes.Utterance{{Err: errors.New("the recogniser is down")}}
	}
	// The caller speaks; the recogniser fails.
	asrFails := func(t *testing.T, r *rig) int {
		r.say(400 * time.Millisecond)
		got := r.out.WaitEvent(t, "an error event", func(ev event.Event) bool { _, ok := ev.(event.Error); return ok })
		if e := got.Event.(event.Error); e.Code != event.CodeUpstream || e.Message != "speech recognition failed: the recogniser is down" {
			t.Fatalf("error %+v", e)
		}
		if n := len(r.turns.Submits()); n != 0 {
			t.Fatalf("%d turns submitted", n)
		}
		return 0
	}
	// The model fails 8 frames into the reply's first sentence.
	modelFails := func(t *testing.T, r *rig) int {
		r.spokenTurn(1)
		r.turns.Deltas(1, s1+" ")
		r.lead(0)
		r.tick(5)
		r.hub.Publish(sessionID, event.Error{Code: event.CodeUpstream, Turn: 1, Message: "the language model failed"})
		return 8
	}
	tests := []struct {
		name    string
		apology string
		setup   func(*rig)
		fail    func(*testing.T, *rig) int // the frames sent before the failure
	}{
		{"recogniser", "", recogniserDown, asrFails},
		{"recogniser, no apology", "-", recogniserDown, asrFails},
		{"model", "", heard("hello"), modelFails},
		{"model, no apology", "-", heard("hello"), modelFails},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.setup, func(r *rig) { r.cfg.Apology = tc.apology })
			sent := tc.fail(t, r)
			if tc.apology == "-" {
				checkNoApology(t, r, sent)
			} else {
				checkApology(t, r, sent)
			}
			if f := r.turns.Finishes(); len(f) != 0 {
				t.Fatalf("a failed turn finished: %+v", f)
			}
		})
	}
}

// checkApology: after the sent frames, the call says the apology, all of
// it and nothing else (the rest of a failed reply is dropped), then
// listens.
func checkApology(t *testing.T, r *rig, sent int) {
	t.Helper()
	r.tts.WaitFor(t, "the apology", func() bool {
		texts := r.tts.Texts()
		return len(texts) > 0 && texts[len(texts)-1] == DefaultApology
	})
	r.lead(sent)
	r.tick(r.frames16(DefaultApology) - 3)
	r.tickUntil("listening", func() bool { return r.out.State() == event.Listening })
	if n := r.out.FrameCount(); n != sent+r.frames16(DefaultApology) {
		t.Fatalf("%d frames; want %d and the apology's %d", n, sent, r.frames16(DefaultApology))
	}
	checkListeningAfter(t, r.out, r.out.FrameCount())
}

// checkNoApology: nothing more is said, and the call listens.
func checkNoApology(t *testing.T, r *rig, sent int) {
	t.Helper()
	r.out.WaitState(t, event.Listening)
	for range 50 {
		r.step()
	}
	if n := r.out.FrameCount(); n != sent {
		t.Fatalf("%d frames after the failure", n-sent)
	}
	for _, text := range r.tts.Texts() {
		if text == DefaultApology {
			t.Fatal("the apology was said")
		}
	}
}

// checkListeningAfter: the last state is listening, sent after frames.
func checkListeningAfter(t *testing.T, out *fakes.Output, frames int) {
	t.Helper()
	var last fakes.Sent
	for _, s := range out.Events() {
		if _, ok := s.Event.(event.State); ok {
			last = s
		}
	}
	if last.Event != (event.State{State: event.Listening}) || last.Frames != frames {
		t.Fatalf("the last state %+v after %d frames; want listening after %d", last.Event, last.Frames, frames)
	}
}

// The synthesiser fails on the reply's second sentence: the caller is
// told, with the turn, and the rest of the reply is still spoken.
func TestSynthesisFailsMidReply(t *testing.T) {
	r := newRig(t, heard("hello"), func(r *rig) {
		r.tts.Fail = func(text string) error {
			if text == s2 {
				return errors.New("the synthesiser is down")
			}
			return nil
		}
	})
	r.spokenTurn(1)
	r.turns.Write(1, s1+" "+s2+" "+s3)
	got := r.out.WaitEvent(t, "an error event", func(ev event.Event) bool { _, ok := ev.(event.Error); return ok })
	if e := got.Event.(event.Error); e.Code != event.CodeUpstream || e.Turn != 1 || e.Message != "speech synthesis failed: the synthesiser is down" {
		t.Fatalf("error %+v", e)
	}
	fin := r.finishAfterTicks(1)[0]
	if fin.Cut || !strings.HasPrefix(fin.Heard, s1) || !strings.HasSuffix(fin.Heard, s3) {
		t.Fatalf("finished %+v", fin)
	}
	r.out.WaitState(t, event.Listening)
}

// Run returns once its context is cancelled, in the middle of a reply
// whose synthesis waits for room and with caller audio queued, and leaves
// no goroutine behind.
func TestRunEndsWithItsContext(t *testing.T) {
	testkit.CheckGoroutines(t)
	r := newRig(t, heard("hello"))
	r.spokenTurn(1)
	r.turns.Write(1, strings.Repeat(s2+" ", 10))
	r.lead(0)
	r.tts.WaitEmitted(t, 103*320) // the speaker waits for room
	for range 20 {
		r.c.Audio(make([]int16, 320))
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !r.rec.Closed() || r.hub.Following(sessionID) != 0 {
		t.Fatalf("after Run: recogniser closed %v, %d following the session", r.rec.Closed(), r.hub.Following(sessionID))
	}
}

// Run fails at once, with what failed, and leaves nothing behind.
func TestRunFails(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*rig)
		want  string
	}{
		{"recogniser", func(r *rig) { r.asr.NewErr = errors.New("no decoder free") }, "call: speech recogniser: no decoder free"},
		{"follow", func(r *rig) { r.hub.Err = errors.New("redis is down") }, "call: follow the session: redis is down"},
		{"codec", func(r *rig) { r.media.Out = pcm.Codec{Rate: 1} }, "call: encoder: pcm: rate 1 Hz"},
		{"input rate", func(r *rig) { r.media.InRate = -16000 }, ""}, // a rate <= 0 is the recogniser's
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			testkit.CheckGoroutines(t)
			r := buildRig(t, tc.setup)
			r.start()
			if tc.want == "" {
				r.out.WaitState(t, event.Listening)
			}
			err := r.stop()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
				t.Fatalf("Run: %v; want %q", err, tc.want)
			}
			for _, rec := range r.asr.Calls() {
				if !rec.Closed() {
					t.Fatal("the recogniser was not closed")
				}
			}
			if r.hub.Following(sessionID) != 0 {
				t.Fatal("still following the session")
			}
			if got := r.out.States(); tc.want != "" && !reflect.DeepEqual(got, []event.BotState(nil)) {
				t.Fatalf("a call that failed to start said %v", got)
			}
		})
	}
}
