package media

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// fliteVoice speaks text with one of flite's voices, resampled to 16 kHz.
func fliteVoice(t *testing.T, voice, text string) []int16 {
	t.Helper()
	if voice == "kal16" {
		return flite(t, text).Samples
	}
	out := filepath.Join(t.TempDir(), "speech.wav")
	if b, err := exec.Command("flite", "-voice", voice, "-t", text, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("flite: %v: %s", err, b)
	}
	data, _ := os.ReadFile(out)
	w, err := ReadWAV(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResampler(w.Rate, 16000)
	if err != nil {
		t.Fatal(err)
	}
	return r.Process(w.Samples, nil)
}

const echoFrame = 320 // 20 ms at 16 kHz

// frameAt is the i-th 20 ms frame of s, zeros past its end.
func frameAt(s []int16, i int) []int16 {
	f := make([]int16, echoFrame)
	if i*echoFrame < len(s) {
		copy(f, s[i*echoFrame:min(len(s), (i+1)*echoFrame)])
	}
	return f
}

// mix adds b, delayed by delay samples and scaled by gain, to a.
func mix(a, b []int16, delay int, gain float64) []int16 {
	out := make([]int16, max(len(a), len(b)+delay))
	copy(out, a)
	for i, s := range b {
		v := float64(out[i+delay]) + gain*float64(s)
		out[i+delay] = int16(max(-32768, min(32767, v)))
	}
	return out
}

func dBFS(f []int16) float64 { return 20 * math.Log10(Amplitude(f)+1e-9) }

// The bot's own voice fed back at -6 dB with 60 ms of delay is not the
// caller's, from the first frame; a caller
// speaking over it is, within a few hundred ms; without an echo, or
// without the bot speaking, everything is the caller's.
func TestEchoGate(t *testing.T) {
	bot := fliteVoice(t, "kal16", "Here is the weather for today. In Paris it will be sunny with a high of twenty degrees, "+
		"and a light wind from the west. Tomorrow brings clouds and some rain in the evening.")
	caller := fliteVoice(t, "rms", "Stop, stop, I wanted something else entirely.")
	frames := len(bot) / echoFrame
	echo := mix(noise(len(bot)+8000, 16, 1), bot, 960, 0.5) // 60 ms, -6 dB, noise at -66 dBFS
	callerAt := 3 * 50                                      // frame 150: 3 s in
	withCaller := mix(echo, caller, callerAt*echoFrame, 1.0)

	run := func(in []int16, played bool) []bool {
		g := NewEchoGate(EchoConfig{})
		near := make([]bool, frames)
		for i := range near {
			if played {
				g.Played(Amplitude(frameAt(bot, i)))
			}
			near[i] = g.Near(frameAt(in, i))
		}
		return near
	}
	loud := func(in []int16, i int) bool { return dBFS(frameAt(in, i)) > -45 }

	t.Run("echo only", func(t *testing.T) {
		near := run(echo, true)
		flagged, echoed, longest, cur := 0, 0, 0, 0
		for i := 0; i < frames; i++ {
			if !loud(echo, i) {
				cur = 0
				continue
			}
			echoed++
			if near[i] {
				flagged++
				cur++
				longest = max(longest, cur)
			} else {
				cur = 0
			}
		}
		t.Logf("%d of %d loud echo frames taken for the caller; longest run %d", flagged, echoed, longest)
		if flagged*20 > echoed || longest >= 5 {
			t.Fatalf("%d of %d echo frames taken for the caller, a run of %d", flagged, echoed, longest)
		}
	})
	t.Run("the caller over the echo", func(t *testing.T) {
		near := run(withCaller, true)
		first, voiced, heard := -1, 0, 0
		for i := callerAt; i < callerAt+len(caller)/echoFrame && i < frames; i++ {
			if dBFS(frameAt(caller, i-callerAt)) < -40 {
				continue
			}
			voiced++
			if near[i] {
				heard++
				if first < 0 {
					first = i
				}
			}
		}
		t.Logf("caller's voiced frames heard as the caller: %d of %d, the first %d ms in", heard, voiced, (first-callerAt)*20)
		if heard*2 < voiced || first < 0 || first-callerAt > 20 {
			t.Fatalf("the caller heard in %d of %d voiced frames, first at +%d frames", heard, voiced, first-callerAt)
		}
	})
	t.Run("no echo", func(t *testing.T) {
		in := mix(noise(len(bot), 16, 1), caller, callerAt*echoFrame, 1.0)
		near := run(in, true)
		for i := range near {
			if loud(in, i) && !near[i] {
				t.Fatalf("frame %d of the caller alone taken for echo", i)
			}
		}
	})
	t.Run("bot silent", func(t *testing.T) {
		near := run(withCaller, false)
		for i := range near {
			if !near[i] {
				t.Fatalf("frame %d taken for echo with nothing played", i)
			}
		}
	})
}

// A VAD fed the gate's judgement hears no speech in the bot's echo over a
// long reply, and hears the caller who speaks over it.
func TestVADWithEchoGate(t *testing.T) {
	bot := fliteVoice(t, "kal16", "Here is the weather for today. In Paris it will be sunny with a high of twenty degrees, "+
		"and a light wind from the west. Tomorrow brings clouds and some rain in the evening.")
	caller := fliteVoice(t, "rms", "Stop, stop, I wanted something else entirely.")
	echo := mix(noise(len(bot)+8000, 16, 1), bot, 960, 0.5)
	for _, tc := range []struct {
		name   string
		in     []int16
		starts bool
	}{
		{"echo only", echo, false},
		{"the caller over the echo", mix(echo, caller, 150*echoFrame, 1.0), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, v := NewEchoGate(EchoConfig{}), NewVAD(VADConfig{SampleRate: 16000})
			started := -1
			for i := 0; i < len(bot)/echoFrame; i++ {
				g.Played(Amplitude(frameAt(bot, i)))
				f := frameAt(tc.in, i)
				if v.ProcessHeard(f, g.Near(f)) == VADSpeechStart && started < 0 {
					started = i
				}
			}
			if !tc.starts {
				// Without the gate the echo is heard as speech: the case is real.
				plain := NewVAD(VADConfig{SampleRate: 16000})
				heard := false
				for i := 0; i < len(bot)/echoFrame; i++ {
					heard = plain.Process(frameAt(tc.in, i)) == VADSpeechStart || heard
				}
				if !heard {
					t.Fatal("the echo is too quiet to be taken for speech even without the gate")
				}
			}
			switch {
			case !tc.starts && started >= 0:
				t.Fatalf("speech started at frame %d of the echo alone", started)
			case tc.starts && (started < 150 || started > 150+20):
				t.Fatalf("speech started at frame %d; the caller began at 150", started)
			}
			t.Logf("speech start: frame %d", started)
		})
	}
}

// One frame's work, for the budget of echo handling per call.
func BenchmarkEchoGate(b *testing.B) {
	g := NewEchoGate(EchoConfig{})
	f := noise(echoFrame, 3000, 1)
	for i := 0; i < 200; i++ {
		g.Played(Amplitude(f))
		g.Near(f)
	}
	b.ReportAllocs()
	for b.Loop() {
		g.Played(Amplitude(f)) // the speaker measures each frame it makes
		g.Near(f)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)*float64(FramesPerSecond)/1e7, "%core/call")
}
