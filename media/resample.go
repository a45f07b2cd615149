package media

import (
	"fmt"
	"math"
	"sync"
)

// Resampler converts a stream of PCM from one rate to another with a
// polyphase windowed-sinc low-pass filter (Kaiser window), so that
// downsampling does not alias and upsampling does not image: it never drops
// or repeats samples. State carries across calls, so a stream can be fed in
// chunks of any size.
type Resampler struct {
	f   *polyphase
	buf []float32 // pending input; buf[0] is the oldest sample still needed
	pos int       // next output's input position, in 1/l samples, from buf[0]
}

// polyphase is the filter for one ratio, shared by every Resampler of it.
type polyphase struct {
	l, m   int         // up by l, down by m
	nt     int         // taps per phase
	phases [][]float32 // phases[p][j] multiplies buf[idx-nt+1+j]
}

// Filter quality: zero crossings of the sinc on each side, at the lower
// of the two rates, and the Kaiser window's beta (about 70 dB stopband).
const (
	sincZeros  = 24
	kaiserBeta = 7.0
	passband   = 0.45 // cutoff, as a fraction of the lower rate
)

var filters sync.Map // "l/m" -> *polyphase

// NewResampler returns a Resampler from inRate to outRate (Hz).
func NewResampler(inRate, outRate int) (*Resampler, error) {
	if inRate <= 0 || outRate <= 0 {
		return nil, fmt.Errorf("media: resample %d -> %d Hz", inRate, outRate)
	}
	g := gcd(inRate, outRate)
	l, m := outRate/g, inRate/g
	key := fmt.Sprintf("%d/%d", l, m)
	f, ok := filters.Load(key)
	if !ok {
		f, _ = filters.LoadOrStore(key, design(l, m))
	}
	p := f.(*polyphase)
	// Zero history, so the first output has a full window behind it.
	return &Resampler{f: p, buf: make([]float32, p.nt-1), pos: (p.nt - 1) * p.l}, nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func design(l, m int) *polyphase {
	// Normalised to the upsampled rate (in*l): the cutoff sits at passband
	// of the lower of the input and output rates.
	fc := passband / float64(max(l, m)) // cycles per upsampled sample
	half := sincZeros * max(l, m)
	n := 2*half + 1
	h := make([]float64, n)
	i0b := besselI0(kaiserBeta)
	for i := range h {
		t := float64(i - half)
		x := 2 * fc * t
		sinc := 1.0
		if x != 0 {
			sinc = math.Sin(math.Pi*x) / (math.Pi * x)
		}
		r := t / float64(half)
		w := besselI0(kaiserBeta*math.Sqrt(math.Max(0, 1-r*r))) / i0b
		h[i] = 2 * fc * sinc * w * float64(l) // ×l: upsampling's zeros cost that gain
	}
	nt := (n + l - 1) / l
	phases := make([][]float32, l)
	for p := 0; p < l; p++ {
		ph := make([]float32, nt)
		for j := 0; j < nt; j++ {
			// Output at input index idx, phase p: sum over k of
			// h[p+k*l] * x[idx-k]; store reversed for a forward dot.
			k := nt - 1 - j
			if i := p + k*l; i < n {
				ph[j] = float32(h[i])
			}
		}
		phases[p] = ph
	}
	return &polyphase{l: l, m: m, nt: nt, phases: phases}
}

// besselI0 is the modified Bessel function of the first kind, order 0.
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < 1e-12*sum {
			break
		}
	}
	return sum
}

// Process resamples in and appends the output to out. Output lags input
// by the filter's delay; Flush-free streaming is the point.
func (r *Resampler) Process(in []int16, out []int16) []int16 {
	f := r.f
	for _, s := range in {
		r.buf = append(r.buf, float32(s))
	}
	for {
		idx := r.pos / f.l
		if idx >= len(r.buf) {
			break
		}
		window := r.buf[idx-f.nt+1 : idx+1]
		ph := f.phases[r.pos%f.l]
		var acc float32
		for j, c := range ph {
			acc += c * window[j]
		}
		out = append(out, clamp16(acc))
		r.pos += f.m
	}
	// Keep only the history the next output needs.
	if drop := r.pos/f.l - (f.nt - 1); drop > 0 {
		if drop > len(r.buf) {
			drop = len(r.buf)
		}
		n := copy(r.buf, r.buf[drop:])
		r.buf = r.buf[:n]
		r.pos -= drop * f.l
	}
	return out
}

func clamp16(v float32) int16 {
	switch {
	case v > 32767:
		return 32767
	case v < -32768:
		return -32768
	}
	return int16(math.Round(float64(v)))
}
