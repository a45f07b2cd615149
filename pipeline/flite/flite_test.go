//go:build !nospeech

package flite

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
)

func speak(t *testing.T, v *Voice, text string) []int16 {
	t.Helper()
	var out []int16
	if err := v.Synthesize(context.Background(), text, func(p []int16) error { out = append(out, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSynthesize(t *testing.T) {
	v, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if v.SampleRate() != 16000 {
		t.Fatalf("kal16 at %d Hz", v.SampleRate())
	}
	pcm := speak(t, v, "What time is it?")
	secs := float64(len(pcm)) / 16000
	if secs < 0.6 || secs > 3 {
		t.Fatalf("%.2f s of audio for four words", secs)
	}
	var sum float64
	for _, s := range pcm {
		sum += float64(s) * float64(s)
	}
	if rms := math.Sqrt(sum / float64(len(pcm))); rms < 300 {
		t.Fatalf("RMS %.0f: silence", rms)
	}
	if _, err := New(Config{Voice: "nobody"}); err == nil {
		t.Fatal("an unknown voice must be refused")
	}
}

// Concurrent calls on one voice each get their own, identical, audio.
func TestConcurrentSynthesisIsDeterministic(t *testing.T) {
	v, _ := New(Config{})
	want := speak(t, v, "The quick brown fox jumps over the lazy dog.")
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got []int16
			_ = v.Synthesize(context.Background(), "The quick brown fox jumps over the lazy dog.", func(p []int16) error { got = append(got, p...); return nil })
			if len(got) != len(want) {
				t.Errorf("concurrent call: %d samples, want %d", len(got), len(want))
				return
			}
			for j := range got {
				if got[j] != want[j] {
					t.Errorf("concurrent call differs at sample %d", j)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestSynthesisStops(t *testing.T) {
	v, _ := New(Config{})
	long := "This is a long sentence that goes on and on, so that there is plenty of audio to stop in the middle of."
	full := len(speak(t, v, long))

	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := v.Synthesize(ctx, long, func(p []int16) error { n += len(p); cancel(); return nil })
	if !errors.Is(err, context.Canceled) || n >= full {
		t.Fatalf("after cancel: %v, %d of %d samples", err, n, full)
	}
	stop := errors.New("client gone")
	n = 0
	err = v.Synthesize(context.Background(), long, func(p []int16) error { n += len(p); return stop })
	if !errors.Is(err, stop) || n >= full {
		t.Fatalf("after emit failed: %v, %d of %d samples", err, n, full)
	}
}
