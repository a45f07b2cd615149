package call

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/event"
)

// While the bot speaks, the caller's voice is an interruption only when
// its words say so (or it goes on long enough): a backchannel, a cough,
// the bot's own words coming back are not, and the bot goes on with the
// history unchanged.
func TestVoiceOverTheBot(t *testing.T) {
	tests := []struct {
		name  string
		voice fakes.Utterance
		d     time.Duration
		cut   bool
	}{
		{"a backchannel", fakes.Utterance{Text: "okay", Partials: []string{"okay"}}, 400 * time.Millisecond, false},
		{"a noise with no words", fakes.Utterance{}, 300 * time.Millisecond, false},
		{"the bot's own words, its echo recognised", fakes.Utterance{Text: "tomorrow it will rain", Partials: []string{"tomorrow it will rain"}}, 400 * time.Millisecond, false},
		{"a word that stops a speaker", fakes.Utterance{Text: "stop", Partials: []string{"stop"}}, 400 * time.Millisecond, true},
		{"words of the caller's own", fakes.Utterance{Text: "what about paris", Partials: []string{"what about paris"}}, 400 * time.Millisecond, true},
		{"words recognised only at the end", fakes.Utterance{Text: "what about paris"}, 400 * time.Millisecond, true},
		{"no words, but long", fakes.Utterance{}, time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, func(r *rig) {
				r.asr.Script = []fakes.Utterance{{Text: "hello", Partials: []string{"hello"}}, tc.voice}
			})
			r.spokenTurn(1)
			r.turns.Write(1, s1+" "+s2+" "+s3)
			r.lead(0)
			r.tick(40) // into the second sentence: the first two are synthesised
			false0 := count(falseStarts)
			r.say(tc.d)
			if tc.cut {
				fin := r.turns.WaitFinishes(t, 1)[0]
				if !fin.Cut || r.turns.Interrupts() != 1 {
					t.Fatalf("finished %+v after %d interrupts; want it cut", fin, r.turns.Interrupts())
				}
				return
			}
			// Judged once the recogniser's End returns, on the call's
			// goroutine, and only while the bot still speaks: the reply is
			// finished after, or words judged late over a finished reply
			// would be a turn of their own (as they should), not this
			// test's false start.
			testkit.Eventually(t, "the false start counted", func() bool { return count(falseStarts) > false0 })
			fin := r.finishAfterTicks(1)[0]
			if fin.Cut || fin.Heard != s1+" "+s2+" "+s3 || r.turns.Interrupts() != 0 {
				t.Fatalf("finished %+v after %d interrupts; want the whole reply", fin, r.turns.Interrupts())
			}
			if n := len(r.turns.Submits()); n != 1 {
				t.Fatalf("%d turns submitted; the voice over the bot made one", n)
			}
			if d := count(falseStarts) - false0; d != 1 {
				t.Fatalf("%v false starts counted", d)
			}
		})
	}
}

// A pause inside a thought does not end the turn: after "I want to book a
// table" the endpointing waits its long silence (1.2 s), so 700 ms of
// silence and more words make one utterance; after a question it waits
// its short one (300 ms).
func TestEndpointing(t *testing.T) {
	r := newRig(t, func(r *rig) {
		r.asr.Script = []fakes.Utterance{
			{Text: "i want to book a table for two people at eight", Partials: []string{"i want to book a table"}},
			{Text: "what time is it", Partials: []string{"what time is it"}},
		}
	})
	n := r.inFrame()
	sayWithPause(r, 400*time.Millisecond, 700*time.Millisecond, 400*time.Millisecond)
	utt := r.rec.WaitEnds(t, 1)
	if len(utt) != 1 {
		t.Fatalf("%d utterances; want one", len(utt))
	}
	if sub := r.turns.WaitSubmits(t, 1); len(sub) != 1 {
		t.Fatalf("submitted %+v", sub)
	}
	// Both halves' tone is in the one utterance.
	loud := 0
	for i := 0; i+n <= len(utt[0]); i += n {
		if media.Amplitude(utt[0][i:i+n]) > 0.01 {
			loud++
		}
	}
	if loud < 40 {
		t.Fatalf("%d loud frames in the utterance; both halves make 40", loud)
	}
	r.following(1)
	r.turns.Write(1, s1)
	r.out.WaitFrames(t, 1)
	checkEndpoint(t, r, 1, 1200, "request")
	r.finishAfterTicks(1)

	r.say(400 * time.Millisecond)
	r.turns.WaitSubmits(t, 2)
	r.following(2)
	r.turns.Write(2, s3)
	r.out.WaitFrames(t, r.frames16(s1)+1)
	checkEndpoint(t, r, 2, 300, "question")
}

// checkEndpoint: turn's latency event says the silence waited for was
// ms (to a frame), chosen by why.
func checkEndpoint(t *testing.T, r *rig, turn int64, ms int64, why string) {
	t.Helper()
	for _, l := range fakes.Of[event.Latency](r.out.Events()) {
		if l.Turn != turn {
			continue
		}
		if l.Endpoint == nil || *l.Endpoint < ms || *l.Endpoint > ms+20 || l.EndpointWhy != why {
			t.Fatalf("turn %d's latency %+v; want an endpoint of %d ms by %q", turn, l, ms, why)
		}
		return
	}
	t.Fatalf("no latency event for turn %d", turn)
}

// sayWithPause is say with a pause inside the utterance: a tone, silence,
// a tone, then silence until the VAD ends it.
func sayWithPause(r *rig, a, pause, b time.Duration) {
	r.t.Helper()
	n := r.inFrame()
	tone := func(d time.Duration) []int16 {
		return testkit.Tone(440, n*media.FramesPerSecond, n*int(d/media.FrameDuration), fakes.Amplitude)
	}
	writes, ends := len(r.rec.Writes()), r.rec.Ends()
	for range leadFrames {
		r.c.Audio(make([]int16, n))
	}
	first := tone(a)
	for i := range startFrames {
		r.c.Audio(first[i*n : (i+1)*n])
	}
	r.rec.WaitFor(r.t, "the start of speech", func() bool { return len(r.rec.Writes()) > writes })
	for i := startFrames; i < len(first)/n; i++ {
		r.feedWritten(first[i*n:(i+1)*n], ends)
	}
	for range int(pause / media.FrameDuration) {
		r.feedWritten(make([]int16, n), ends)
	}
	if r.rec.Ends() != ends {
		r.t.Fatalf("the utterance ended in a pause of %v", pause)
	}
	second := tone(b)
	for i := 0; i < len(second)/n; i++ {
		r.feedWritten(second[i*n:(i+1)*n], ends)
	}
	for r.rec.Ends() == ends {
		r.feedWritten(make([]int16, n), ends)
	}
}

// count is a counter's value.
func count(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// An utterance begun over the bot's echo: the pre-roll (the audio kept
// from before the VAD's start, for the first word's onset) holds only
// what the echo gate took for the caller, the echo's frames as silence.
// Else the recogniser hears the bot's words before the caller's: over a
// phone's echo, "hello there" came out "i'm in the air".
func TestEchoIsNotPreRoll(t *testing.T) {
	r := newRig(t, func(r *rig) {
		r.cfg.NoEchoGate = false // the default: the gate is what is tested
		r.asr.Script = []fakes.Utterance{{Text: "hello", Partials: []string{"hello"}}, {Text: "what about paris"}}
	})
	r.spokenTurn(1)
	r.turns.Write(1, s1+" "+s2)
	r.lead(0)
	n := r.inFrame()
	// The echo: the bot's tone 12 dB down, 3 frames late; then the caller,
	// as loud as the bot, over it. Each caller frame follows one frame of
	// the bot, as a client's microphone does.
	const late, echoFrames = 3, 20
	echo := testkit.Tone(440, n*media.FramesPerSecond, n*(echoFrames+startFrames), fakes.Amplitude/4)
	voice := testkit.Tone(300, n*media.FramesPerSecond, n*30, fakes.Amplitude)
	for i := range voice[:len(echo)] {
		voice[i] += echo[i]
	}
	writes, ends := len(r.rec.Writes()), r.rec.Ends()
	for range late {
		r.tick(1)
		r.c.Audio(make([]int16, n))
	}
	for i := range echoFrames {
		r.tick(1)
		r.c.Audio(echo[i*n : (i+1)*n])
	}
	for i := range startFrames {
		r.tick(1)
		r.c.Audio(voice[i*n : (i+1)*n])
	}
	r.rec.WaitFor(t, "the start of speech", func() bool { return len(r.rec.Writes()) > writes })
	for i := startFrames; i < len(voice)/n; i++ {
		r.feedWritten(voice[i*n:(i+1)*n], ends)
	}
	for r.rec.Ends() == ends {
		r.feedWritten(make([]int16, n), ends)
	}
	pre := r.rec.Utterances()[1][:r.rec.Writes()[writes]]
	caller, echoed := 0, 0
	for i := 0; i+n <= len(pre); i += n {
		switch a := media.Amplitude(pre[i : i+n]); {
		case a > 0.1:
			caller++
		case a > 0.01:
			echoed++
		}
	}
	if caller != startFrames-1 || echoed != 0 {
		t.Fatalf("the pre-roll holds %d frames of the caller and %d of the echo; want %d and none", caller, echoed, startFrames-1)
	}
}

// What the caller's words over the bot are: the bot's own words come
// back (echo) are never an interruption, even a "wait" or a "no" of its
// own; a stopper of the caller's is; so are two words of theirs that are
// not backchannels.
func TestInterrupts(t *testing.T) {
	c := &Call{cfg: Config{BargeInWords: DefaultBargeInWords}}
	c.said("No problem, wait a moment.")
	c.said("Tomorrow it will rain in Paris.")
	for _, tc := range []struct {
		words      string
		interrupts bool
		echoed     bool
	}{
		{"it will rain", false, true},
		{"wait a moment", false, true},
		{"wait", true, false},
		{"okay yeah", false, false},
		{"what about london", true, false},
		{"okay what", false, false},
		{"rain", false, false},
		{"in paris", false, true},
	} {
		t.Run(tc.words, func(t *testing.T) {
			if got := c.interrupts(tc.words); got != tc.interrupts {
				t.Errorf("interrupts: %v, want %v", got, tc.interrupts)
			}
			if got := c.echoed(tc.words); got != tc.echoed {
				t.Errorf("echoed: %v, want %v", got, tc.echoed)
			}
		})
	}
}

// The recogniser's words lag the audio (a loaded machine): a question's
// short silence is waited for from where the words reach, so a caller
// whose words are late is not cut off on stale ones. The lag here is 1 s:
// the turn ends after a second of silence, not 300 ms.
func TestEndpointingWaitsForTheWords(t *testing.T) {
	r := newRig(t, func(r *rig) {
		r.asr.Script = []fakes.Utterance{{Text: "what time is it", Partials: []string{"what time is it"}}}
		r.asr.Lagging.Store(int64(time.Second))
	})
	r.say(400 * time.Millisecond)
	r.turns.WaitSubmits(t, 1)
	r.following(1)
	r.turns.Write(1, s1)
	r.out.WaitFrames(t, 1)
	checkEndpoint(t, r, 1, 1000, "question")
}
