package media

import (
	"math"
	"slices"
	"time"
)

// EchoConfig tunes an EchoGate. A zero field means the default in its
// comment.
type EchoConfig struct {
	// MaxDelay is the longest echo path looked for, from a frame leaving
	// the server to its echo coming back in the caller's audio (network
	// both ways, the client's jitter buffer, the room); default 500ms.
	MaxDelay time.Duration
	// Margin: a caller frame louder than the predicted echo by this many
	// dB holds the caller's own voice; default 6.
	Margin float64
}

func (c *EchoConfig) setDefaults() {
	if c.MaxDelay <= 0 {
		c.MaxDelay = 500 * time.Millisecond
	}
	if c.Margin <= 0 {
		c.Margin = 6
	}
}

// EchoGate tells, frame by frame, whether the caller's audio holds more
// than the echo of the bot's own voice: a caller on a speaker phone, or a
// browser without echo cancellation, sends the bot's words back, and they
// must not count as the caller speaking (a barge-in, a turn).
//
// It works on the frames' loudness, not their waveforms, which makes it
// cheap (a few hundred operations per 20 ms frame) and indifferent to the
// codecs and resampling on the way: it follows the envelope of what was
// played, finds the delay at which the caller's audio follows it best
// (normalised cross-correlation over the lags up to MaxDelay), learns the
// echo's gain (a low percentile of the ratio of the caller's loudness to
// the delayed bot's, so that the caller's own words do not raise it), and
// predicts each frame's echo from the bot's loudness at that delay. A
// caller frame Margin above the prediction is the caller's. Where nothing
// follows the bot (a headset, an echo canceller on the client), every
// frame is the caller's.
//
// An EchoGate belongs to one call: Played and Near are called from that
// call's goroutines but not concurrently (the caller serialises them).
type EchoGate struct {
	cfg    EchoConfig
	margin float64 // Margin as an amplitude ratio

	queue []float64 // played frames not yet heard out (from qhead): the client plays them one per frame
	qhead int
	ref   []float64 // the bot's amplitude, one per caller frame, newest last; len = lags+2
	lags  int

	// Exponentially weighted sums for the (Pearson) correlation of the
	// caller's amplitude y with the bot's amplitude x at each lag: the
	// means taken out, since two loudness envelopes always correlate a
	// little.
	sx, sxy, sxx []float64
	sy, syy, w   float64

	active int  // caller frames heard while the bot was playing
	locked bool // an echo was found once

	ratios []float64 // recent y/x at the found delay, while the bot is loud
	next   int       // where the next ratio goes in the ring
	sorted []float64 // scratch
}

const (
	// echoDecay weights the correlation sums: about 2 s of frames.
	echoDecay = 0.98
	// echoCorrelated: below this correlation the caller's audio does not
	// follow the bot: there is no echo to gate.
	echoCorrelated = 0.5
	// echoActive: a bot frame quieter than this (amplitude, of full scale,
	// about -50 dBFS) teaches nothing about the echo.
	echoActive = 0.003
	// echoRatios is how many ratios the gain is learnt from (1 s of loud
	// bot frames); echoPercentile the share of them below the gain.
	echoRatios     = 50
	echoPercentile = 0.5
	// echoPrior: frames of the bot playing during which, with no echo found
	// yet, the echo is assumed to be at most echoPriorGain (-6 dB) of the
	// loudest frame played lately: a caller louder than that is heard.
	echoPrior     = 25
	echoPriorGain = 0.5
)

// NewEchoGate returns an EchoGate.
func NewEchoGate(cfg EchoConfig) *EchoGate {
	cfg.setDefaults()
	lags := int(cfg.MaxDelay / FrameDuration)
	return &EchoGate{
		cfg:    cfg,
		margin: math.Pow(10, cfg.Margin/20),
		ref:    make([]float64, lags+2),
		lags:   lags,
		sx:     make([]float64, lags+1),
		sxy:    make([]float64, lags+1),
		sxx:    make([]float64, lags+1),
		ratios: make([]float64, 0, echoRatios),
		sorted: make([]float64, 0, echoRatios),
	}
}

// Amplitude is a frame's RMS, of full scale: what EchoGate.Played takes.
func Amplitude(pcm []int16) float64 {
	if len(pcm) == 0 {
		return 0
	}
	var sum float64
	for _, s := range pcm {
		x := float64(s) / 32768
		sum += x * x
	}
	return math.Sqrt(sum / float64(len(pcm)))
}

// Played records one frame of the bot's audio as it leaves the server: its
// Amplitude (of the PCM at any rate), measured where the frame was made.
func (g *EchoGate) Played(amp float64) {
	if len(g.queue)-g.qhead >= 4*len(g.ref) { // never heard out (the caller's audio stopped): keep it bounded
		g.qhead++
	}
	g.queue = append(g.queue, amp)
}

// Flush forgets the played frames not yet heard out: the client was told
// to drop its queued audio (a barge-in).
func (g *EchoGate) Flush() { g.queue, g.qhead = g.queue[:0], 0 }

// Near takes the caller's next frame and reports whether it holds the
// caller's own voice (or anything else that is not the bot's echo).
func (g *EchoGate) Near(pcm []int16) bool {
	x := 0.0
	if g.qhead < len(g.queue) {
		x = g.queue[g.qhead]
		g.qhead++
	}
	if g.qhead == len(g.queue) || g.qhead > 1024 { // reuse the array
		n := copy(g.queue, g.queue[g.qhead:])
		g.queue, g.qhead = g.queue[:n], 0
	}
	copy(g.ref, g.ref[1:])
	g.ref[len(g.ref)-1] = x
	y := Amplitude(pcm)
	loudest := slices.Max(g.ref)
	if loudest < echoActive {
		// Nothing played lately could be coming back: the caller's. Nor is
		// it evidence about the echo: the caller alone would dilute it.
		return true
	}
	g.active++

	g.w = echoDecay*g.w + 1
	g.sy = echoDecay*g.sy + y
	g.syy = echoDecay*g.syy + y*y
	vy := g.w*g.syy - g.sy*g.sy
	n := len(g.ref) - 1 // the newest
	best, bestCorr := 0, 0.0
	for lag := 0; lag <= g.lags; lag++ {
		xl := g.ref[n-lag]
		g.sx[lag] = echoDecay*g.sx[lag] + xl
		g.sxy[lag] = echoDecay*g.sxy[lag] + xl*y
		g.sxx[lag] = echoDecay*g.sxx[lag] + xl*xl
		vx := g.w*g.sxx[lag] - g.sx[lag]*g.sx[lag]
		if d := vx * vy; d > 0 {
			if c := (g.w*g.sxy[lag] - g.sx[lag]*g.sy) / math.Sqrt(d); c > bestCorr {
				best, bestCorr = lag, c
			}
		}
	}
	if bestCorr < echoCorrelated {
		if g.active < echoPrior && !g.locked {
			// Too early to know whether anything comes back: assume the
			// echo is no louder than half what was played.
			return y > loudest*echoPriorGain
		}
		return true // no echo path (a headset), or the caller speaking over it
	}
	g.locked = true
	xd := g.around(n - best)
	if xd < echoActive {
		return true // the bot is silent at that delay: whatever is heard is the caller's
	}
	gain, ok := g.learn(y / xd)
	if !ok {
		return y > loudest*echoPriorGain // the prior, until the gain is known
	}
	return y > gain*xd*g.margin
}

// Found reports whether an echo has been found: until then a frame Near
// calls the bot's is only assumed to be (the prior), not known to be.
func (g *EchoGate) Found() bool { return g.locked }

// around is the loudest bot frame at i or next to it: an echo smears over
// a frame or so (the room, a delay between two frames).
func (g *EchoGate) around(i int) float64 {
	m := g.ref[i]
	if i > 0 {
		m = max(m, g.ref[i-1])
	}
	if i+1 < len(g.ref) {
		m = max(m, g.ref[i+1])
	}
	return m
}

// learn adds a ratio and returns the echo's gain, once enough are known.
func (g *EchoGate) learn(r float64) (float64, bool) {
	if len(g.ratios) < echoRatios {
		g.ratios = append(g.ratios, r)
	} else {
		g.ratios[g.next] = r
		g.next = (g.next + 1) % echoRatios
	}
	if len(g.ratios) < echoRatios/5 {
		return 0, false
	}
	g.sorted = append(g.sorted[:0], g.ratios...)
	slices.Sort(g.sorted)
	return g.sorted[int(echoPercentile*float64(len(g.sorted)))], true
}
