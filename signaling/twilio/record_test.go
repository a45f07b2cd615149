//go:build !nospeech

package twilio

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit/recordtest"
	"github.com/parleyhq/parley/media/g711"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/pipeline/record"
)

// A recorded phone call with an interruption. The fake Twilio plays the
// bot's audio a second after it came, so at the barge-in a second of it
// was sent and never heard: the recording's bot channel holds what the
// caller heard by Twilio's marks, sample for sample, and is silent from
// there until the next reply. The file is stereo at the line's 8 kHz, the
// caller on the left; the transcript's times match the audio within
// 100 ms.
func TestPhoneRecordedCall(t *testing.T) {
	asr, v := offline(t)
	dir := t.TempDir()
	rec, err := record.New(record.Config{Dir: dir}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	r := startReplica(t, local.New(local.Config{}), replicaOpts{asr: asr, tts: v, recorder: recordtest.Closing{Recorder: rec, Closed: closed}})
	f := dialTwilio(t, r.mediaURL(), nil, time.Second)
	f.start(wantFormat, nil)
	id := r.sessionOf(t, f.callSid)
	f.openLine()
	f.say(mulawSpeech(t, v, greeting, 500*time.Millisecond, 0))
	f.waitFor("the answer's audio", 30*time.Second, func(in []got, _ []clearSeen) bool { return len(in) >= 75 })
	f.say(mulawSpeech(t, v, "hello there", 0, 1500*time.Millisecond))
	f.waitFor("a clear", 15*time.Second, func(_ []got, c []clearSeen) bool { return len(c) > 0 })
	r.waitEvent(t, id, "the answer to the caller's words", replyDone(2))
	f.quiet(300 * time.Millisecond)
	in, _, _, clears := f.snapshot()
	f.stop()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("the recording was not closed when the call ended")
	}

	wavs, _ := filepath.Glob(filepath.Join(dir, "*", "*.wav"))
	if len(wavs) != 1 {
		t.Fatalf("recordings %v; want one", wavs)
	}
	left, right := recordtest.Stereo(t, wavs[0], g711.Rate)
	lines := recordtest.Transcript(t, strings.TrimSuffix(wavs[0], ".wav")+".jsonl")
	line := func(speaker string, turn int64) recordtest.Line {
		for _, l := range lines {
			if l.Speaker == speaker && l.Turn == turn {
				return l
			}
		}
		t.Fatalf("no %s line for turn %d in %+v", speaker, turn, lines)
		return recordtest.Line{}
	}
	said, cut, answer := line("caller", 2), line("bot", 1), line("bot", 2)
	if said.Text != "hello there" || said.From == nil || cut.From == nil || cut.Interrupted == nil || !*cut.Interrupted ||
		answer.From == nil || answer.Interrupted == nil || *answer.Interrupted {
		t.Fatalf("transcript: %+v", lines)
	}
	if full := local.New(local.Config{}).Reply(greeting); !strings.HasPrefix(full, cut.Text) || cut.Text == full {
		t.Fatalf("the cut reply %q is not a strict prefix of %q", cut.Text, full)
	}

	// What the caller heard of the first reply: its frames up to the last
	// mark Twilio returned before the clear.
	played := clears[0].played
	if unheard := int64(clears[0].frames) - played; unheard < 40 {
		t.Fatalf("only %d frames sent and not played at the cut: the fake's buffer is not a second", unheard)
	}
	var heard []int16
	for _, g := range in[:played] {
		heard = g711.MuLaw.AppendPCM(heard, g.payload)
	}
	const half = g711.Rate / 2
	begins, c1 := recordtest.Align(right, heard[:half], g711.Rate, *cut.From, 0.2)
	ends, c2 := recordtest.Align(right, heard[len(heard)-half:], g711.Rate, *cut.To-0.5, 0.2)
	t.Logf("the heard reply: %d frames; its first half second at %.3f s (correlation %.3f), its last at %.3f s (%.3f); transcript %.3f to %.3f s",
		played, begins, c1, ends+0.5, c2, *cut.From, *cut.To)
	// Each frame is recorded when it left: a late tick of the pacer (a
	// loaded machine) leaves a short hole in the file that the fake's
	// contiguous copy lacks, hence not 1.
	if c1 < 0.9 || c2 < 0.9 {
		t.Fatalf("what the caller heard is not in the bot's channel (best matches %.3f, %.3f)", c1, c2)
	}
	within := func(what string, says, shows float64) {
		t.Helper()
		if math.Abs(says-shows) > 0.1 {
			t.Errorf("%s: the transcript says %.3f s, the audio shows %.3f s", what, says, shows)
		}
	}
	within("the cut reply begins", *cut.From, begins)
	within("the cut reply ends", *cut.To, ends+0.5)
	// The second sent and never heard is not in the file.
	if loud := recordtest.LoudSpans(recordtest.Slice(right, g711.Rate, ends+0.5+0.001, *answer.From), g711.Rate); len(loud) != 0 {
		t.Fatalf("the bot's channel is loud %.3f s after the cut: audio the caller never heard", loud[0][0])
	}
	// The caller's words, on the left, where the transcript puts them.
	caller := recordtest.LoudSpans(left, g711.Rate)
	nearest := caller[0]
	for _, s := range caller {
		if math.Abs(s[0]-*said.From) < math.Abs(nearest[0]-*said.From) {
			nearest = s
		}
	}
	within("the caller's words begin", *said.From, nearest[0])
	if ev := r.waitEvent(t, id, "the cut reply", replyDone(1)).(event.ReplyDone); ev.Text != cut.Text {
		t.Fatalf("stored %q, recorded %q", ev.Text, cut.Text)
	}
}
