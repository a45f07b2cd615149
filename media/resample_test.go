package media

import (
	"fmt"
	"math"
	"testing"

	"github.com/parleyhq/parley/internal/testkit"
)

var (
	tone = testkit.Tone
	rms  = testkit.RMS
	db   = testkit.DB
)

// The frequency response: a tone in the passband keeps its level, a tone
// above the output's Nyquist is removed (no aliasing), for the ratios the
// server uses. Fed in 20 ms chunks, as a stream.
func TestResamplerFrequencyResponse(t *testing.T) {
	tests := []struct {
		in, out   int
		pass      float64 // Hz, must keep its level
		stop      float64 // Hz, must be attenuated (0: none to test)
		minReject float64 // dB
	}{
		{48000, 16000, 1000, 10000, 50},
		{48000, 16000, 3000, 12000, 50},
		{16000, 48000, 1000, 0, 0},
		{22050, 48000, 1000, 0, 0},
		{24000, 48000, 2000, 0, 0},
		{48000, 24000, 1000, 15000, 50},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d->%d", tc.in, tc.out), func(t *testing.T) {
			level := func(freq float64) float64 {
				r, err := NewResampler(tc.in, tc.out)
				if err != nil {
					t.Fatal(err)
				}
				src := tone(freq, tc.in, tc.in, 10000) // 1 s
				var out []int16
				chunk := tc.in / 50
				for i := 0; i < len(src); i += chunk {
					out = r.Process(src[i:min(i+chunk, len(src))], out)
				}
				if want := tc.out; math.Abs(float64(len(out)-want)) > float64(want)/50 {
					t.Fatalf("%d samples out for 1 s, want about %d", len(out), want)
				}
				// Skip the filter's start-up.
				return rms(out[len(out)/4:]) / rms(src[len(src)/4:])
			}
			if g := db(level(tc.pass)); math.Abs(g) > 0.5 {
				t.Fatalf("%v Hz passband gain %.2f dB, want within 0.5 dB", tc.pass, g)
			}
			if tc.stop > 0 {
				if g := db(level(tc.stop)); g > -tc.minReject {
					t.Fatalf("%v Hz (above the output's Nyquist) at %.1f dB, want below -%v dB", tc.stop, g, tc.minReject)
				}
			}
		})
	}
}

// Upsampling then downsampling gives the signal back (after the delay).
func TestResamplerRoundTrip(t *testing.T) {
	up, _ := NewResampler(16000, 48000)
	down, _ := NewResampler(48000, 16000)
	src := tone(440, 16000, 16000, 8000)
	back := down.Process(up.Process(src, nil), nil)
	if g := db(rms(back[4000:]) / rms(src[4000:])); math.Abs(g) > 0.5 {
		t.Fatalf("round trip gain %.2f dB", g)
	}
}

func BenchmarkResample48to16(b *testing.B) {
	r, _ := NewResampler(48000, 16000)
	frame := tone(1000, 48000, 960, 8000)
	out := make([]int16, 0, 960)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out = r.Process(frame, out[:0])
	}
}

func BenchmarkResample22050to48(b *testing.B) {
	r, _ := NewResampler(22050, 48000)
	frame := tone(1000, 22050, 441, 8000)
	out := make([]int16, 0, 960*2)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out = r.Process(frame, out[:0])
	}
}
