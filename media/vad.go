package media

import (
	"math"
	"time"
)

// VADConfig tunes a VAD. A zero field means the default in its comment.
type VADConfig struct {
	SampleRate int           // of the frames given to Process; default 16000
	Start      time.Duration // speech this long starts a turn; default 200ms
	Stop       time.Duration // silence this long ends it; default 600ms
	// Threshold: how far above the noise floor a frame must be to count as
	// speech, in dB; default 5 (a 20 ms frame of steady noise varies by
	// well under 1 dB, so this is safe, and it keeps weak syllables).
	Threshold float64
	// MinLevel: frames quieter than this (dBFS) are never speech; default -50.
	MinLevel float64
}

func (c *VADConfig) setDefaults() {
	if c.SampleRate <= 0 {
		c.SampleRate = 16000
	}
	if c.Start <= 0 {
		c.Start = 200 * time.Millisecond
	}
	if c.Stop <= 0 {
		c.Stop = 600 * time.Millisecond
	}
	if c.Threshold <= 0 {
		c.Threshold = 5
	}
	if c.MinLevel == 0 {
		c.MinLevel = -50
	}
}

// VADEvent is what a frame changed.
type VADEvent int

// VAD events.
const (
	VADNone        VADEvent = iota
	VADSpeechStart          // the caller started speaking (after Start of speech)
	VADSpeechEnd            // the caller stopped (after Stop of silence)
)

// VAD detects speech in a stream of frames. It band-limits the signal to
// the voice band (so hum and hiss count less), estimates the noise floor
// as the minimum level over the last 1.5 s (speech always dips between
// words, so it does not lift the floor, while a steady noise that starts
// becomes the floor within 1.5 s), and applies start and stop hysteresis,
// with short gaps inside speech bridged.
type VAD struct {
	cfg      VADConfig
	hp, lp   biquad
	floor    float64       // dBFS
	lows     []floorLevel  // the levels that may yet be the floor: rising, oldest first
	clock    time.Duration // audio processed so far
	speaking bool
	voiced   time.Duration // speech run while not speaking (gaps bridged)
	gap      time.Duration // current non-speech run while counting voiced
	silence  time.Duration // non-speech run while speaking
	trailing time.Duration // the silence that ended the last utterance
	onset    time.Duration // the speech run that started the last utterance
	level    float64       // last frame's level, dBFS
	raw      bool          // the last frame was speech by its level, whatever ProcessHeard was told
}

// NewVAD returns a VAD.
func NewVAD(cfg VADConfig) *VAD {
	cfg.setDefaults()
	sr := float64(cfg.SampleRate)
	return &VAD{
		cfg: cfg,
		hp:  highpass(200, sr),
		lp:  lowpass(math.Min(4000, sr*0.45), sr),
	}
}

// Speaking reports whether the caller is speaking (between a start and an
// end event).
func (v *VAD) Speaking() bool { return v.speaking }

// Level is the last frame's voice-band level in dBFS.
func (v *VAD) Level() float64 { return v.level }

// TrailingSilence is, after a VADSpeechEnd, the silence that ended the
// utterance: from the end of its last voiced frame to the decision, in
// audio time (Stop, or a frame more).
func (v *VAD) TrailingSilence() time.Duration { return v.trailing }

// Onset is, after a VADSpeechStart, how long before the end of the frame
// that started the utterance its speech began: the voiced run that reached
// Start, its bridged gaps included.
func (v *VAD) Onset() time.Duration { return v.onset }

// Raw reports whether the last frame was speech by its level alone,
// before ProcessHeard's judgement of it.
func (v *VAD) Raw() bool { return v.raw }

// SetStop changes the silence that ends an utterance, from the next
// frame: an endpointer reads it from the words so far. A silence already
// past the new one ends the utterance at the next frame of silence.
func (v *VAD) SetStop(d time.Duration) {
	if d > 0 {
		v.cfg.Stop = d
	}
}

// Stop is the silence that ends an utterance, in force.
func (v *VAD) Stop() time.Duration { return v.cfg.Stop }

// Floor is the current noise floor estimate in dBFS.
func (v *VAD) Floor() float64 { return v.floor }

// bridge: a non-speech run this short does not break a speech run being
// counted towards Start (stop closures, pauses between syllables).
const bridge = 150 * time.Millisecond

// Process takes one frame (any length, typically 20 ms) and reports
// whether it started or ended speech.
func (v *VAD) Process(frame []int16) VADEvent { return v.ProcessHeard(frame, true) }

// ProcessHeard is Process for a frame an EchoGate has judged: with near
// false (only the bot's own voice coming back) the frame is not speech,
// however loud, while the noise floor still learns from it.
func (v *VAD) ProcessHeard(frame []int16, near bool) VADEvent {
	if len(frame) == 0 {
		return VADNone
	}
	var sum float64
	for _, s := range frame {
		x := v.lp.step(v.hp.step(float64(s) / 32768))
		sum += x * x
	}
	level := 10 * math.Log10(sum/float64(len(frame))+1e-12)
	v.level = level
	dur := time.Duration(len(frame)) * time.Second / time.Duration(v.cfg.SampleRate)
	v.trackFloor(level, dur)
	v.raw = level > v.cfg.MinLevel && level > v.floor+v.cfg.Threshold
	speech := near && v.raw

	if !v.speaking {
		if speech {
			v.voiced += dur + v.gap
			v.gap = 0
		} else if v.voiced > 0 {
			v.gap += dur
			if v.gap > bridge {
				v.voiced, v.gap = 0, 0
			}
		}
		if v.voiced >= v.cfg.Start {
			v.onset = v.voiced
			v.speaking, v.voiced, v.gap, v.silence = true, 0, 0, 0
			return VADSpeechStart
		}
		return VADNone
	}
	if speech {
		v.silence = 0
		return VADNone
	}
	v.silence += dur
	if v.silence >= v.cfg.Stop {
		v.speaking, v.trailing, v.silence = false, v.silence, 0
		return VADSpeechEnd
	}
	return VADNone
}

// floorWindow is how far back the noise floor's minimum looks.
const floorWindow = 1500 * time.Millisecond

// floorLevel is a frame's level and when the frame began, on the VAD's
// clock.
type floorLevel struct {
	level float64
	start time.Duration
}

// trackFloor makes the floor the lowest level of the frames that began
// within floorWindow (the current one always counts). The window is kept
// in time, not in frames: frames may differ in size (Opus packets last
// 2.5 to 120 ms), and the first must not decide the window for the whole
// call. Only the levels that can still be the minimum are kept, so each
// frame costs O(1) on average, however short.
func (v *VAD) trackFloor(level float64, frame time.Duration) {
	start := v.clock
	v.clock += frame
	for len(v.lows) > 0 && v.lows[len(v.lows)-1].level >= level {
		v.lows = v.lows[:len(v.lows)-1]
	}
	v.lows = append(v.lows, floorLevel{level, start})
	i := 0
	for i < len(v.lows)-1 && v.clock-v.lows[i].start > floorWindow {
		i++
	}
	v.lows = v.lows[i:]
	v.floor = v.lows[0].level
}

// biquad is a second-order IIR section (RBJ cookbook).
type biquad struct {
	b0, b1, b2, a1, a2 float64
	x1, x2, y1, y2     float64
}

func (f *biquad) step(x float64) float64 {
	y := f.b0*x + f.b1*f.x1 + f.b2*f.x2 - f.a1*f.y1 - f.a2*f.y2
	f.x2, f.x1 = f.x1, x
	f.y2, f.y1 = f.y1, y
	return y
}

func highpass(fc, sr float64) biquad {
	w := 2 * math.Pi * fc / sr
	alpha := math.Sin(w) / math.Sqrt2 // Butterworth: Q = 1/sqrt(2), alpha = sin(w)/(2Q)
	cw := math.Cos(w)
	a0 := 1 + alpha
	return biquad{b0: (1 + cw) / 2 / a0, b1: -(1 + cw) / a0, b2: (1 + cw) / 2 / a0, a1: -2 * cw / a0, a2: (1 - alpha) / a0}
}

func lowpass(fc, sr float64) biquad {
	w := 2 * math.Pi * fc / sr
	alpha := math.Sin(w) / math.Sqrt2
	cw := math.Cos(w)
	a0 := 1 + alpha
	return biquad{b0: (1 - cw) / 2 / a0, b1: (1 - cw) / a0, b2: (1 - cw) / 2 / a0, a1: -2 * cw / a0, a2: (1 - alpha) / a0}
}
