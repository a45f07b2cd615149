package media

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// flite speaks text with the kal16 voice (16 kHz), as the tests' speech.
func flite(t testing.TB, text string) *WAV {
	t.Helper()
	bin, err := exec.LookPath("flite")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("flite not found under CI=true; run 'make deps'")
		}
		t.Skip("flite not found; run 'make deps'")
	}
	out := filepath.Join(t.TempDir(), "speech.wav")
	if b, err := exec.Command(bin, "-voice", "kal16", "-t", text, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("flite: %v: %s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	w, err := ReadWAV(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if w.Rate != 16000 || w.Channels != 1 {
		t.Fatalf("flite kal16 gave %d Hz × %d", w.Rate, w.Channels)
	}
	return w
}

// audibleSpan is where clean speech is audible, in samples: from the first
// to the last 20 ms frame at -30 dBFS or louder.
func audibleSpan(s []int16) (int, int) {
	first, last := -1, -1
	for i := 0; i+320 <= len(s); i += 320 {
		if db(rms(s[i:i+320])/32768) >= -30 {
			if first < 0 {
				first = i
			}
			last = i + 320
		}
	}
	return first, last
}

// speechSpan is the first and last sample louder than -40 dBFS.
func speechSpan(s []int16) (int, int) {
	first, last := -1, -1
	for i, v := range s {
		if math.Abs(float64(v)) > 328 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	return first, last
}

func addNoise(s []int16, snrDB float64, seed uint64) []int16 {
	r := rand.New(rand.NewPCG(seed, 1))
	first, last := speechSpan(s)
	speechRMS := rms(s[first : last+1])
	noiseRMS := speechRMS / math.Pow(10, snrDB/20)
	out := make([]int16, len(s))
	for i, v := range s {
		out[i] = clamp16(float32(float64(v) + r.NormFloat64()*noiseRMS))
	}
	return out
}

type vadRun struct {
	starts, ends []int // sample positions (end of the frame that fired)
	began        []int // where each start's Onset puts the speech's beginning
}

func runVAD(s []int16, cfg VADConfig) vadRun {
	v := NewVAD(cfg)
	var r vadRun
	frame := 320 // 20 ms at 16 kHz
	for i := 0; i+frame <= len(s); i += frame {
		switch v.Process(s[i : i+frame]) {
		case VADSpeechStart:
			r.starts = append(r.starts, i+frame)
			r.began = append(r.began, i+frame-int(v.Onset()*16/time.Millisecond))
		case VADSpeechEnd:
			r.ends = append(r.ends, i+frame)
		}
	}
	return r
}

func TestVAD(t *testing.T) {
	w := flite(t, "What time is it? Please tell me the time.")
	pad := make([]int16, 16000) // 1 s of silence before, 1.5 s after
	clean := append(append(append([]int16{}, pad...), w.Samples...), make([]int16, 24000)...)
	first, last := audibleSpan(clean)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond / 16 }

	cfg := VADConfig{}
	cfg.setDefaults()
	tests := []struct {
		name   string
		audio  []int16
		speech bool
		late   time.Duration // how much later than Start after the onset a start may come
	}{
		{"clean speech", clean, true, 200 * time.Millisecond},
		{"speech in white noise at 10 dB SNR", addNoise(clean, 10, 1), true, 300 * time.Millisecond},
		// Noisier: the first word is lost in the noise, the start comes
		// with the second ("time").
		{"speech in white noise at 5 dB SNR", addNoise(clean, 5, 2), true, 600 * time.Millisecond},
		{"silence", make([]int16, 48000), false, 0},
		{"quiet white noise alone", noise(48000, 100, 3), false, 0},
		{"loud white noise alone", noise(48000, 3000, 4), false, 0},
	}
	t.Run("a noise that starts becomes the floor", func(t *testing.T) {
		// 1 s of silence, then a steady noise for 4 s: at most one false
		// start at the noise's onset, over within 1.5 s + Stop.
		audio := append(make([]int16, 16000), noise(64000, 3000, 5)...)
		r := runVAD(audio, VADConfig{})
		if len(r.starts) > 1 || len(r.ends) != len(r.starts) {
			t.Fatalf("starts %v ends %v", r.starts, r.ends)
		}
		if len(r.ends) == 1 && ms(r.ends[0]-16000) > floorWindow+cfg.Stop+100*time.Millisecond {
			t.Fatalf("the noise counted as speech for %v", ms(r.ends[0]-16000))
		}
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runVAD(tc.audio, VADConfig{})
			if !tc.speech {
				if len(r.starts) != 0 {
					t.Fatalf("speech detected at %v in audio without speech", ms(r.starts[0]))
				}
				return
			}
			if len(r.starts) != 1 || len(r.ends) != 1 {
				t.Fatalf("starts at %v, ends at %v: want one each", r.starts, r.ends)
			}
			// Start: after the onset plus the start duration, not much later.
			if d := ms(r.starts[0] - first); d < cfg.Start-20*time.Millisecond || d > cfg.Start+tc.late {
				t.Fatalf("start %v after the onset; want about %v", d, cfg.Start)
			}
			// Onset: back to the speech's start (which the call's recording
			// notes), within a frame or two.
			if d := ms(r.began[0] - first); d < -60*time.Millisecond || d > 60*time.Millisecond {
				t.Fatalf("the speech began %v after the onset, says Onset", d)
			}
			// End: the stop duration after the speech ends, give or take.
			if d := ms(r.ends[0] - last); d < cfg.Stop-100*time.Millisecond || d > cfg.Stop+300*time.Millisecond {
				t.Fatalf("end %v after the speech; want about %v", d, cfg.Stop)
			}
		})
	}
}

// The noise floor looks back 1.5 s of audio whatever the frame sizes: a
// first packet of 120 ms (or 2.5 ms) must not shrink (or stretch) the
// window for the rest of the call. A steady sound after quiet counts as
// speech until it has become the floor: for more than 1 s, and over
// within 1.5 s plus Stop, as with 20 ms frames throughout.
func TestVADFloorWindowIsTimeNotFrames(t *testing.T) {
	cfg := VADConfig{}
	cfg.setDefaults()
	for _, first := range []int{40, 320, 1920} { // 2.5, 20 and 120 ms at 16 kHz
		t.Run(fmt.Sprintf("first frame %d samples", first), func(t *testing.T) {
			v := NewVAD(VADConfig{})
			v.Process(noise(first, 30, 1))
			quiet := noise(8000, 30, 2) // 500 ms
			for i := 0; i < len(quiet); i += 320 {
				v.Process(quiet[i : i+320])
			}
			loud := tone(300, 16000, 48000, 8000) // 3 s
			end := time.Duration(0)
			for i := 0; i < len(loud) && end == 0; i += 320 {
				if v.Process(loud[i:i+320]) == VADSpeechEnd {
					end = time.Duration(i+320) * time.Second / 16000
				}
			}
			if end <= time.Second || end > floorWindow+cfg.Stop+100*time.Millisecond {
				t.Fatalf("a steady sound ended as speech after %v (0: not in 3 s)", end)
			}
		})
	}
}

func noise(n int, amp float64, seed uint64) []int16 {
	r := rand.New(rand.NewPCG(seed, 2))
	s := make([]int16, n)
	for i := range s {
		s[i] = clamp16(float32(r.NormFloat64() * amp))
	}
	return s
}

func TestWAVRoundTrip(t *testing.T) {
	w := &WAV{Rate: 16000, Channels: 1, Samples: []int16{0, 1, -1, 32767, -32768}}
	got, err := ReadWAV(bytes.NewReader(w.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Rate != 16000 || got.Channels != 1 || len(got.Samples) != 5 || got.Samples[3] != 32767 || got.Samples[4] != -32768 {
		t.Fatalf("%+v", got)
	}
	if _, err := ReadWAV(bytes.NewReader([]byte("RIFF\x00\x00\x00\x00WAVX"))); err == nil {
		t.Fatal("a non-WAV must be refused")
	}
}
