package call

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/pipeline/event"
)

// The caller cuts the reply off 25 frames into its second sentence (of
// ten words in 50 frames): the turn keeps what was heard, nothing more is
// sent, and the next turn is answered.
func TestBargeIn(t *testing.T) {
	byVoice := func(r *rig) { r.say(400 * time.Millisecond) } // also the next turn
	byClient := func(r *rig) {
		r.c.Interrupt(context.Background())
		if _, err := r.c.SubmitText(context.Background(), "is it cold"); err != nil {
			r.t.Fatal(err)
		}
	}
	const sent = 36 + 25 // the cut: 25 frames into the second sentence, unless said
	// A sentence of 5 s, 50 words: cut 1 s into it, it is still being
	// synthesised (2 s ahead), and its length is not known yet.
	rain := strings.Repeat("rain ", 49) + "stop."
	// The synthesiser hands over a second at a time: cut just after the
	// lead, the speaker is pushing the rest of the first second.
	bigChunks := func(r *rig) { r.tts.Chunk = time.Second }
	tests := []struct {
		name      string
		setup     func(*rig)
		sentences []string // the reply
		sent      int      // frames sent when it is cut
		played    int64    // what the client says it played; -1: an Output without Played
		cut       func(r *rig)
		heard     string
	}{
		{"by voice", nil, []string{s1, s2, s3}, sent, -1, byVoice, s1 + " Tomorrow it will rain in"},
		{"by the client", nil, []string{s1, s2, s3}, sent, -1, byClient, s1 + " Tomorrow it will rain in"},
		// 15 of the second sentence's 50 frames played: 3 of its words.
		{"played less than sent", nil, []string{s1, s2, s3}, sent, 51, byVoice, s1 + " Tomorrow it will"},
		// 20 of the first sentence's 36 frames: 3 of its 7 words.
		{"played within the first sentence", nil, []string{s1, s2, s3}, sent, 20, byVoice, "The weather today"},
		// More than Ahead is left: synthesis is waiting for room when cut.
		{"while synthesis waits", nil, []string{s1, s2, s3, s1, s2, s3}, sent, -1, byVoice, s1 + " Tomorrow it will rain in"},
		// 50 of its 250 frames: 10 of its words, its length estimated from
		// the first sentence's frames per character.
		{"within a sentence being synthesised", nil, []string{s1, rain}, 36 + 50, -1, byClient, s1 + strings.Repeat(" rain", 10)},
		// 3 frames of a first sentence being synthesised: at a typical
		// voice's 15 characters a second, none of its words.
		{"while a frame is being pushed", bigChunks, []string{s1, s2}, 3, -1, byClient, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var played *fakes.PlayedOutput
			r := newRig(t, heard("hello", "is it cold"), func(r *rig) {
				if tc.played >= 0 {
					played = withPlayed(r)
				}
				if tc.setup != nil {
					tc.setup(r)
				}
			})
			r.spokenTurn(1)
			r.turns.Write(1, strings.Join(tc.sentences, " "))
			r.lead(0)
			r.tick(tc.sent - 3)
			if played != nil {
				played.SetPlayed(tc.played)
			}
			tc.cut(r)

			fin := r.turns.WaitFinishes(t, 1)[0]
			if fin != (fakes.Finished{Session: sessionID, Turn: 1, Heard: tc.heard, Cut: true}) {
				t.Fatalf("finished %+v; want %q heard", fin, tc.heard)
			}
			if n := r.turns.Interrupts(); n != 1 {
				t.Fatalf("%d interrupts", n)
			}
			checkNothingAfterCut(t, r, tc.sent, len(tc.sentences))
			r.following(2)
			r.turns.Write(2, s3)
			fin = r.finishAfterTicks(2)[1]
			if fin.Turn != 2 || fin.Heard != s3 || fin.Cut || r.out.FrameCount() != tc.sent+r.frames16(s3) {
				t.Fatalf("the next turn finished %+v after %d frames", fin, r.out.FrameCount())
			}
		})
	}
}

// checkNothingAfterCut: no frame of the cut reply is sent however time
// passes, and no sentence of it is synthesised after the cut.
func checkNothingAfterCut(t *testing.T, r *rig, sent, sentences int) {
	t.Helper()
	texts := len(r.tts.Texts())
	for range 2 * 50 {
		r.step()
	}
	if n := r.out.FrameCount(); n != sent {
		t.Fatalf("%d frames sent after the cut", n-sent)
	}
	if got := r.tts.Texts(); len(got) != texts || len(got) > sentences {
		t.Fatalf("synthesised after the cut: %q", got)
	}
}

// Cut before a word of the reply was spoken: the caller spoke again while
// the bot was thinking, or a later turn took over before the reply came.
// Either way the turn finishes with nothing heard, none of it is spoken,
// and the later turn is answered.
func TestCutBeforeAnyWord(t *testing.T) {
	tests := []struct {
		name     string
		cut      func(r *rig)
		interrup int // Interrupt calls
	}{
		{"by voice while thinking", func(r *rig) { r.say(400 * time.Millisecond) }, 1},
		{"superseded by a typed turn", func(r *rig) {
			if _, err := r.c.SubmitText(context.Background(), "is it cold"); err != nil {
				r.t.Fatal(err)
			}
			r.following(2)
			r.turns.Write(1, s1) // the model finishes the first turn late
		}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, heard("hello", "is it cold"))
			r.spokenTurn(1)
			tc.cut(r)
			fin := r.turns.WaitFinishes(t, 1)[0]
			if fin != (fakes.Finished{Session: sessionID, Turn: 1, Heard: "", Cut: true}) {
				t.Fatalf("finished %+v", fin)
			}
			if n := r.turns.Interrupts(); n != tc.interrup {
				t.Fatalf("%d interrupts, want %d", n, tc.interrup)
			}
			r.following(2)
			r.turns.Write(2, s3)
			fin = r.finishAfterTicks(2)[1]
			if fin.Turn != 2 || fin.Heard != s3 || fin.Cut {
				t.Fatalf("the next turn finished %+v", fin)
			}
			if got := r.tts.Texts(); !reflect.DeepEqual(got, []string{s3}) || r.out.FrameCount() != r.frames16(s3) {
				t.Fatalf("synthesised %q, %d frames", got, r.out.FrameCount())
			}
		})
	}
}

// Cut once the reply's audio has all been played, but before the
// synthesiser's stream of its last sentence has ended: the turn is still
// cut, not played out, and all of it was heard.
func TestCutAfterTheLastFrame(t *testing.T) {
	release := make(chan struct{})
	r := newRig(t, heard("hello"), func(r *rig) {
		r.tts.Done = func(text string) {
			if text == s2 {
				<-release
			}
		}
	})
	t.Cleanup(func() { close(release) })
	r.spokenTurn(1)
	r.turns.Write(1, s1+" "+s2)
	r.lead(0)
	r.tick(r.frames16(s1, s2) - 3)
	r.c.Interrupt(context.Background())
	release <- struct{}{}
	fin := r.turns.WaitFinishes(t, 1)[0]
	if fin != (fakes.Finished{Session: sessionID, Turn: 1, Heard: s1 + " " + s2, Cut: true}) {
		t.Fatalf("finished %+v", fin)
	}
}

// The speaker handles a barge-in late, once the caller's words have
// already become the next turn: that turn is still the call's, and the
// call does not say listening while it thinks.
func TestBargeInHandledAfterTheNextTurn(t *testing.T) {
	hold := make(chan struct{})
	r := newRig(t, heard("hello", "is it cold"), func(r *rig) {
		r.turns.OnFinish = func(f fakes.Finished) {
			if f.Turn == 1 {
				<-hold // the speaker, reporting the cut turn
			}
		}
	})
	t.Cleanup(func() { close(hold) })
	r.spokenTurn(1)
	r.say(400 * time.Millisecond) // cuts turn 1 while it is thought about, and is turn 2
	r.turns.WaitSubmits(t, 2)
	r.following(2)
	hold <- struct{}{}
	r.turns.Write(2, s3)
	if fin := r.finishAfterTicks(2)[1]; fin.Turn != 2 || fin.Heard != s3 || fin.Cut {
		t.Fatalf("the next turn finished %+v", fin)
	}
	r.out.WaitState(t, event.Listening)
	checkStates(t, r.out, r.frames16(s3), event.Listening, event.Thinking, event.Speaking, event.Listening)
}

// withFlush makes the call's output one that is told when the call drops
// its queued audio (call.Flusher).
func withFlush(r *rig) *fakes.FlushOutput {
	f := &fakes.FlushOutput{}
	r.out, r.sink = &f.Output, f
	return f
}

// The call tells an Output that queues its client's audio (Flusher) to
// drop it at once when it drops its own: at a barge-in, before the speaker
// reports the cut turn, with no frame of the cut reply sent after it; and
// when a turn fails. A reply played out is not flushed.
func TestFlushTellsTheOutput(t *testing.T) {
	t.Run("barge-in", func(t *testing.T) {
		var out *fakes.FlushOutput
		r := newRig(t, heard("hello", "is it cold"), func(r *rig) { out = withFlush(r) })
		r.spokenTurn(1)
		r.turns.Write(1, s1+" "+s2)
		r.lead(0)
		r.tick(20 - 3)
		r.say(400 * time.Millisecond)
		flushes := out.WaitFlushes(t, 1)
		if flushes[0] != 20 {
			t.Fatalf("flushed after %d frames; the cut was at 20", flushes[0])
		}
		r.turns.WaitFinishes(t, 1)
		checkNothingAfterCut(t, r, 20, 2)
		// The next turn plays out whole: nothing more is flushed.
		r.following(2)
		r.turns.Write(2, s3)
		r.finishAfterTicks(2)
		// (The speaker's report of the cut may flush again, with nothing
		// sent since: the Output's Flush is told so, and may ignore it.)
		for _, n := range out.Flushes() {
			if n != 20 {
				t.Fatalf("flushes %v: a reply played out whole is not flushed", out.Flushes())
			}
		}
	})
	t.Run("a failed turn", func(t *testing.T) {
		var out *fakes.FlushOutput
		r := newRig(t, heard("hello"), func(r *rig) {
			out = withFlush(r)
			r.cfg.Apology = "-"
		})
		r.spokenTurn(1)
		r.turns.Deltas(1, s1+" ")
		r.lead(0)
		r.tick(5)
		r.hub.Publish(sessionID, event.Error{Code: event.CodeUpstream, Turn: 1, Message: "the language model failed"})
		if got := out.WaitFlushes(t, 1); got[0] != 8 {
			t.Fatalf("flushed after %d frames; the turn failed after 8", got[0])
		}
	})
	t.Run("played out", func(t *testing.T) {
		var out *fakes.FlushOutput
		r := newRig(t, heard("hello"), func(r *rig) { out = withFlush(r) })
		r.spokenTurn(1)
		r.turns.Write(1, s1)
		if fin := r.finishAfterTicks(1)[0]; fin.Cut || fin.Heard != s1 {
			t.Fatalf("finished %+v", fin)
		}
		if got := out.Flushes(); len(got) != 0 {
			t.Fatalf("flushes %v after a reply played out", got)
		}
	})
}
