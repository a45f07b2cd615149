package call

import (
	"reflect"
	"testing"
	"time"

	"github.com/parleyhq/parley/pipeline/event"
)

// While a turn waits for its tool, the call says what the model said
// before the call at once (a whole sentence or not), then, if the wait
// goes on, the filler once, never over the caller; the answer follows,
// and the heard text has the words of the reply, not the filler.
func TestFillerWhileAToolRuns(t *testing.T) {
	const before, answer = "Let me look", "It is sunny."
	r := newRig(t, heard("what is the weather"))
	r.spokenTurn(1)
	r.turns.Deltas(1, before) // no full stop: the splitter would hold it
	r.hub.Publish(sessionID, event.ToolCall{Turn: 1, CallID: "c1", Name: "weather", By: event.ByClient, Arguments: "{}"})
	if got := r.tts.WaitTexts(t, 1); !reflect.DeepEqual(got, []string{before}) {
		t.Fatalf("synthesised %q: want the words before the call, at once", got)
	}
	r.lead(0)
	r.tick(r.frames16(before) - 3)
	// Quiet now: the filler comes FillerDelay after the call.
	r.tickUntil("the filler", func() bool { return len(r.tts.Texts()) == 2 })
	if got := r.tts.Texts()[1]; got != DefaultFiller {
		t.Fatalf("said %q, want the filler", got)
	}
	all := r.frames16(before, DefaultFiller)
	r.tickUntil("the filler's frames", func() bool { return r.out.FrameCount() >= all })
	for range 200 { // 4 s more of waiting: no second filler
		r.step()
	}
	if n := len(r.tts.Texts()); n != 2 {
		t.Fatalf("%d texts synthesised: the filler is said once", n)
	}
	r.turns.Deltas(1, " "+answer)
	r.turns.Write(1, before+" "+answer)
	fin := r.finishAfterTicks(1)[0]
	if fin.Heard != before+" "+answer || fin.Cut {
		t.Fatalf("finished %+v: want the reply's words, the filler left out", fin)
	}
}

// The caller speaking when the filler is due holds it until they stop;
// an answer that comes first leaves it unsaid.
func TestFillerWaitsForTheCaller(t *testing.T) {
	r := newRig(t, heard("what is the weather", "oh and"))
	r.spokenTurn(1)
	r.hub.Publish(sessionID, event.ToolCall{Turn: 1, CallID: "c1", Name: "weather", By: event.ByClient, Arguments: "{}"})
	r.c.caller.Store(true) // the VAD hears the caller
	r.advance(2 * time.Second)
	time.Sleep(50 * time.Millisecond) // the timer's goroutine has posted, if it would
	for range 20 {
		r.step()
	}
	if n := len(r.tts.Texts()); n != 0 {
		t.Fatalf("%d texts synthesised over the caller", n)
	}
	r.turns.Deltas(1, "It is sunny.")
	r.c.caller.Store(false)
	r.turns.Write(1, "It is sunny.")
	r.finishAfterTicks(1)
	for _, text := range r.tts.Texts() {
		if text == DefaultFiller {
			t.Fatal("the filler was said after the answer came")
		}
	}
}

// A call whose filler is "-" says nothing while a tool runs.
func TestNoFiller(t *testing.T) {
	r := newRig(t, heard("what is the weather"), func(r *rig) { r.cfg.Filler = "-" })
	r.spokenTurn(1)
	r.hub.Publish(sessionID, event.ToolCall{Turn: 1, CallID: "c1", Name: "weather", By: event.ByClient, Arguments: "{}"})
	r.advance(3 * time.Second)
	if n := len(r.tts.Texts()); n != 0 {
		t.Fatalf("%d texts synthesised", n)
	}
}
