package opus

import (
	"fmt"
	"testing"
)

// The bot's voice encoder at each complexity, on a voiced sound at the
// TTS rates: what a frame of a call's speech costs
// (docs/benchmarks.md, "The bot's voice in CELT").
func BenchmarkEncodeComplexity(b *testing.B) {
	for _, rate := range []int{16000, 24000} {
		for _, cx := range []int{1, 3, 5, 8, 10} {
			b.Run(fmt.Sprintf("%d Hz, complexity %d", rate, cx), func(b *testing.B) {
				enc, err := NewEncoder(rate, cx)
				if err != nil {
					b.Fatal(err)
				}
				src := speechLike(rate, rate)
				n := enc.Frame()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					off := (i * n) % (len(src) - n)
					if _, err := enc.Encode(src[off : off+n]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
