//go:build !nospeech

package twilio

import (
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/g711"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/flite"
	"github.com/parleyhq/parley/pipeline/local"
)

// Barge-in on a phone call: the caller speaks over the bot's answer.
// Twilio is sent clear once the caller's words say it is an interruption,
// at most 600 ms into their speech (counted in the bot's 20 ms frames that
// still came), and the
// reply stored is what the caller heard by Twilio's marks, not what was
// sent: the fake plays each frame a second after it came, so a second of
// audio was sent and never heard. The marks Twilio returns at the clear
// do not count. The caller's words are the next turn, answered.
func TestPhoneBargeIn(t *testing.T) {
	testkit.CheckGoroutines(t)
	asr, v := offline(t)
	r := startReplica(t, local.New(local.Config{}), replicaOpts{asr: asr, tts: v})
	f := dialTwilio(t, r.mediaURL(), nil, time.Second)
	f.start(wantFormat, nil)
	id := r.sessionOf(t, f.callSid)
	f.openLine()
	f.say(mulawSpeech(t, v, greeting, 500*time.Millisecond, 0))
	// The answer is about 7 s; a second and a half of it, then speak over it.
	f.waitFor("the answer's audio", 30*time.Second, func(in []got, _ []clearSeen) bool { return len(in) >= 75 })
	over := "hello there"
	f.say(mulawSpeech(t, v, over, 0, 1500*time.Millisecond))
	f.waitFor("a clear", 15*time.Second, func(_ []got, c []clearSeen) bool { return len(c) > 0 })
	in, _, _, clears := f.snapshot()
	began, _ := f.sayStarted(1)
	after := 0
	for _, g := range in {
		if g.at.After(began) && g.at.Before(clears[0].at) {
			after++
		}
	}
	// Frames of the caller's audio before their speech (its onset), then
	// at most the barge-in's backstop of 600 ms of it (the words, from the
	// recogniser, usually come sooner, at the machine's pace), and the
	// pacer's lead.
	// (The 600 ms are of voice, not counting the pauses between words; 3
	// frames more for the listening loop behind on a loaded machine.)
	if limit := voicedBy(t, v, over, call.DefaultBargeInAfter) + 3 + 3; after > limit {
		t.Fatalf("%d bot frames came after the caller began speaking and before the clear; want at most %d", after, limit)
	}
	cut := clears[0]
	done := r.waitEvent(t, id, "the cut reply", replyDone(1)).(event.ReplyDone)
	full := local.New(local.Config{}).Reply(greeting)
	parts := spokenParts(t, v, full)
	words := len(strings.Fields(done.Text))
	lo, hi, sent := heardWords(parts, cut.played-3), heardWords(parts, cut.played+3), heardWords(parts, int64(cut.frames)-3)
	t.Logf("cut after %d frames sent, %d played; stored %d words %q (played: %d to %d words; sent: %d); %d bot frames after the caller began",
		cut.frames, cut.played, words, done.Text, lo, hi, sent, after)
	switch {
	case !done.Interrupted || !strings.HasPrefix(full, done.Text):
		t.Fatalf("stored %+v: want an interrupted prefix of %q", done, full)
	case cut.frames-int(cut.played) < 40:
		t.Fatalf("only %d frames sent and not played at the cut: the fake's buffer is not a second", cut.frames-int(cut.played))
	case words < lo || words > hi:
		t.Fatalf("stored %d words; %d to %d were played", words, lo, hi)
	case words >= sent:
		t.Fatalf("stored %d words: what was sent (%d), not what was played", words, sent)
	}
	// The caller's words: the next turn, answered.
	tr := r.waitEvent(t, id, "the caller's turn", func(ev event.Event) bool {
		tr, ok := ev.(event.Transcript)
		return ok && tr.Turn == 2 && tr.Final
	}).(event.Transcript)
	if d := r.waitEvent(t, id, "its reply", replyDone(2)).(event.ReplyDone); tr.Text != over || !strings.HasPrefix(d.Text, "Hello! ") {
		t.Fatalf("turn 2: heard %q, answered %q", tr.Text, d.Text)
	}
	f.stop()
	f.closeCode()
}

// part is one sentence of a reply as the call queues it: its words, and
// its frames, counted from the reply's first.
type part struct {
	words      int
	start, end int64
}

// spokenParts are the sentences the call makes of reply (call.Sentences)
// and the 8 kHz frames flite makes of each, its last frame padded, as the
// speaker makes them.
func spokenParts(t *testing.T, v *flite.Voice, reply string) []part {
	t.Helper()
	var s call.Sentences
	texts := append(s.Add(reply), s.Flush())
	down, _ := media.NewResampler(16000, g711.Rate)
	var out []part
	var at int64
	for _, text := range texts {
		if text == "" {
			continue
		}
		n := int64((len(down.Process(pcm16(t, v, text), nil)) + g711.Frame - 1) / g711.Frame)
		out = append(out, part{words: len(strings.Fields(text)), start: at, end: at + n})
		at += n
	}
	return out
}

// heardWords is how many words of the parts played frames hold: the
// sentences played whole, and of the one cut, its words in proportion to
// its frames played.
func heardWords(parts []part, played int64) int {
	n := 0
	for _, p := range parts {
		if played >= p.end {
			n += p.words
			continue
		}
		if played > p.start {
			n += int(float64(p.words) * float64(played-p.start) / float64(p.end-p.start))
		}
		break
	}
	return n
}

// voicedBy is how many 20 ms frames into flite's rendering of text d of
// it has been voice (frames above -40 dBFS).
func voicedBy(t *testing.T, v *flite.Voice, text string, d time.Duration) int {
	pcm := pcm16(t, v, text)
	voiced := 0
	for i := 0; i+320 <= len(pcm); i += 320 {
		if testkit.RMS(pcm[i:i+320]) >= 32768/100 {
			voiced++
		}
		if time.Duration(voiced)*media.FrameDuration >= d {
			return i/320 + 1
		}
	}
	return len(pcm) / 320
}

// onsetFrames is how many 20 ms frames into flite's rendering of text the
// speech becomes audible (-30 dBFS).
func onsetFrames(t *testing.T, v *flite.Voice, text string) int {
	pcm := pcm16(t, v, text)
	for i := 0; i+320 <= len(pcm); i += 320 {
		if testkit.RMS(pcm[i:i+320]) >= 32768/31.6 {
			return i / 320
		}
	}
	t.Fatal("flite rendered silence")
	return 0
}
