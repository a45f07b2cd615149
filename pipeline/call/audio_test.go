package call

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/g711"
	"github.com/parleyhq/parley/media/pcm"
)

// A reply of 20 s is synthesised as it plays, never more than Ahead (2 s)
// in front of what was sent, so the pacer (which holds 10 s) drops none of
// it.
func TestLongReplyIsSynthesisedAsItPlays(t *testing.T) {
	r := newRig(t, heard("hello"))
	r.spokenTurn(1)
	reply := strings.TrimSpace(strings.Repeat(s2+" ", 20))
	total := r.frames16(s2) * 20
	r.turns.Write(1, reply)
	r.lead(0)
	const ahead = 100                   // frames: the default Ahead
	r.tts.WaitEmitted(t, (3+ahead)*320) // it fills the room it has
	for range total - 3 {
		sent := r.out.FrameCount()
		if made := r.tts.Emitted() / 320; made > sent+ahead {
			t.Fatalf("%d frames synthesised with %d sent", made, sent)
		}
		if q := r.c.pacer.Queued(); q > ahead {
			t.Fatalf("%d frames queued", q)
		}
		r.tick(1)
	}
	fin := r.finishAfterTicks(1)[0]
	if fin.Heard != reply || fin.Cut || r.out.FrameCount() != total {
		t.Fatalf("finished (cut %v) after %d of %d frames", fin.Cut, r.out.FrameCount(), total)
	}
	if _, dropped := r.c.pacer.Stats(); dropped != 0 {
		t.Fatalf("the pacer dropped %d frames", dropped)
	}
}

// The codec is the front end's: frames of its size, at its rate, the
// synthesiser's 16 kHz resampled to it.
func TestCodecs(t *testing.T) {
	tests := []struct {
		name       string
		codec      media.Codec
		rate       int
		frameBytes int
	}{
		{"pcm at 24 kHz", pcm.Codec{Rate: 24000}, 24000, 960},
		{"g711 mu-law", g711.MuLaw, 8000, 160},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, heard("hello"), func(r *rig) { r.media.Out = tc.codec })
			r.spokenTurn(1)
			r.turns.Write(1, s1+" "+s2)
			r.finishAfterTicks(1)
			frames := r.out.Frames()
			// Each sentence's last frame is padded, and the resampler's
			// delay may move a sentence's end across a frame's.
			if want := r.framesOf(tc.rate, s1, s2); len(frames) < want-2 || len(frames) > want+2 {
				t.Fatalf("%d frames; the reply is %d at %d Hz", len(frames), want, tc.rate)
			}
			dec, err := tc.codec.NewDecoder(tc.rate)
			if err != nil {
				t.Fatal(err)
			}
			var audio []int16
			for i, f := range frames {
				if len(f) != tc.frameBytes {
					t.Fatalf("frame %d is %d bytes; want %d", i, len(f), tc.frameBytes)
				}
				pcm, err := dec.Decode(f)
				if err != nil {
					t.Fatal(err)
				}
				audio = append(audio, pcm...)
			}
			checkTone(t, audio[tc.rate/10:tc.rate*6/10], tc.rate) // within the first sentence
		})
	}
}

// checkTone: pcm at rate is the fake synthesiser's 440 Hz tone at its
// level, so the rate it was resampled to is right.
func checkTone(t *testing.T, pcm []int16, rate int) {
	t.Helper()
	crossings := 0
	for i := 1; i < len(pcm); i++ {
		if (pcm[i-1] < 0) != (pcm[i] < 0) {
			crossings++
		}
	}
	hz := float64(crossings) / 2 / (float64(len(pcm)) / float64(rate))
	level := testkit.DB(testkit.RMS(pcm) / (fakes.Amplitude / math.Sqrt2))
	if math.Abs(hz-440) > 440*0.03 || math.Abs(level) > 1 {
		t.Fatalf("the audio is a %.0f Hz tone %.1f dB from the synthesiser's; want 440 Hz at its level", hz, level)
	}
}

// The caller's PCM comes at the front end's rate; the recogniser gets it
// at its own, 16 kHz, every 20 ms frame of it.
func TestInputRate(t *testing.T) {
	for _, rate := range []int{16000, 48000, 8000} {
		t.Run(fmt.Sprintf("%d Hz", rate), func(t *testing.T) {
			r := newRig(t, heard("hello"), func(r *rig) { r.media.InRate = rate })
			r.spokenTurn(1)
			writes := r.rec.Writes()
			utt := r.rec.Utterances()[0]
			if writes[0] != 400*16 { // the pre-roll
				t.Fatalf("the first write is %d samples", writes[0])
			}
			for i, n := range writes[1:] {
				if n != 320 {
					t.Fatalf("write %d is %d samples; want 20 ms at 16 kHz", i+1, n)
				}
			}
			if len(utt) != 400*16+320*(len(writes)-1) {
				t.Fatalf("the utterance is %d samples", len(utt))
			}
			// The tone from the VAD's start on: 11 frames of it.
			checkTone(t, utt[400*16:400*16+11*320], 16000)
		})
	}
}

// The listening loop is behind (the recogniser's last transcript is
// slow): the call keeps the newest second of the caller's audio (the
// default InputQueue, 50 frames) and drops the oldest.
func TestInputQueueKeepsTheNewest(t *testing.T) {
	asrDone := make(chan struct{})
	r := newRig(t, func(r *rig) {
		r.asr.Script = []fakes.Utterance{{Text: "", Wait: asrDone}, {Text: "hello"}}
	})
	r.say(400 * time.Millisecond)
	r.rec.WaitEnds(t, 1) // the listening loop waits in End
	// 60 frames of speech, each with its number in its level.
	level := func(i int) float64 { return 8000 + 100*float64(i) }
	for i := range 60 {
		r.c.Audio(testkit.Tone(440, 16000, 320, level(i)))
	}
	writes := len(r.rec.Writes())
	close(asrDone)
	r.rec.WaitFor(t, "the start of speech", func() bool { return len(r.rec.Writes()) > writes })
	for r.rec.Ends() == 1 {
		r.feedWritten(make([]int16, 320), 1)
	}
	utt := r.rec.Utterances()[1]
	for k := range 50 {
		peak := 0.0
		for _, v := range utt[k*320 : (k+1)*320] {
			peak = max(peak, math.Abs(float64(v)))
		}
		if got := int(math.Round((peak - 8000) / 100)); got != 10+k {
			t.Fatalf("frame %d of the utterance is frame %d of the speech; want %d (the oldest 10 dropped)", k, got, 10+k)
		}
	}
	if testkit.RMS(utt[50*320:51*320]) != 0 {
		t.Fatal("more than 50 frames of the speech were kept")
	}
}
