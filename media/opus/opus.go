package opus

import (
	"fmt"

	hraban "gopkg.in/hraban/opus.v2"

	"github.com/parleyhq/parley/media"
)

// Opus's own rate, and the size of its 20 ms frame there.
const (
	Rate         = 48000
	FrameSamples = Rate / media.FramesPerSecond
	// MaxPacket is the largest Opus packet we accept or produce; a 20 ms
	// mono packet is far smaller, so anything above is not audio.
	MaxPacket = 1500
)

// NativeRate reports whether Opus encodes from and decodes to rate (Hz)
// itself. Audio at such a rate needs no resampler: Opus converts on its
// own, for less work than decoding at 48 kHz and resampling.
func NativeRate(rate int) bool {
	switch rate {
	case 8000, 12000, 16000, 24000, 48000:
		return true
	}
	return false
}

// Codec is Opus behind media.Codec: mono encoders of the bot's voice, and
// decoders. Encoders and decoders run at the rate asked for when Opus
// takes it (NativeRate), else at 48 kHz.
type Codec struct {
	Complexity int // of the encoders, 1 to 10; 0 means 5
	// Speech: the encoders use Opus's VoIP mode (SILK, with CELT above
	// 8 kHz: tuned for speech at low bitrates) at its own bitrate, for
	// about three times the CPU of the default, CELT alone at 32 kbps: a
	// third of a voice call's CPU for the same synthesised speech, as
	// clear to a recogniser (docs/benchmarks.md, "The bot's voice in
	// CELT"). Default false.
	Speech bool
}

// NewEncoder implements media.Codec.
func (c Codec) NewEncoder(rate int) (media.Encoder, error) {
	if !NativeRate(rate) {
		rate = Rate
	}
	if c.Speech {
		return NewSpeechEncoder(rate, c.Complexity)
	}
	return NewEncoder(rate, c.Complexity)
}

// NewDecoder implements media.Codec.
func (c Codec) NewDecoder(rate int) (media.Decoder, error) {
	if !NativeRate(rate) {
		rate = Rate
	}
	return NewDecoder(rate)
}

// Decoder turns Opus packets into mono PCM.
type Decoder struct {
	d    *hraban.Decoder
	pcm  []int16
	rate int
}

// NewDecoder returns a Decoder for one stream whose PCM is at rate, one of
// the rates NativeRate accepts.
func NewDecoder(rate int) (*Decoder, error) {
	if !NativeRate(rate) {
		return nil, fmt.Errorf("opus: cannot decode to %d Hz", rate)
	}
	d, err := hraban.NewDecoder(rate, 1)
	if err != nil {
		return nil, fmt.Errorf("opus: decoder: %w", err)
	}
	// 120 ms is the longest Opus frame.
	return &Decoder{d: d, pcm: make([]int16, rate*120/1000), rate: rate}, nil
}

// Rate implements media.Decoder.
func (d *Decoder) Rate() int { return d.rate }

// Decode decodes one packet. The samples are valid until the next call.
func (d *Decoder) Decode(packet []byte) ([]int16, error) {
	if len(packet) == 0 || len(packet) > MaxPacket {
		return nil, fmt.Errorf("%w: %d bytes is no Opus packet", media.ErrPacket, len(packet))
	}
	n, err := d.d.Decode(packet, d.pcm)
	if err != nil {
		return nil, fmt.Errorf("%w: opus: %v", media.ErrPacket, err)
	}
	return d.pcm[:n], nil
}

// Encoder turns 20 ms of mono PCM into an Opus packet.
type Encoder struct {
	e     *hraban.Encoder
	out   []byte
	rate  int
	frame int // samples per 20 ms
}

// Bitrate is what an Encoder (not a speech one) sends: 32 kbps, where
// CELT carries speech well at every rate here (80 bytes a packet).
const Bitrate = 32000

// NewEncoder returns an Encoder for PCM at rate (one of the rates
// NativeRate accepts) in CELT alone at Bitrate; its packets are 20 ms
// Opus packets like any other, decoded at whatever rate the receiver
// likes. complexity is 1 to 10; 0 means 5.
//
// It is Opus's restricted low-delay application, CELT whatever the
// complexity: the general-audio one is CELT only up to complexity 6, and
// from 7 its signal analysis takes speech to SILK or hybrid, at 3 to 6
// times the CPU (BenchmarkEncodeComplexity). It also spares the 4 ms
// Opus otherwise waits to switch modes.
func NewEncoder(rate, complexity int) (*Encoder, error) {
	return newEncoder(rate, complexity, hraban.AppRestrictedLowdelay, Bitrate)
}

// NewSpeechEncoder is NewEncoder in Opus's VoIP mode at its own bitrate
// (Codec.Speech).
func NewSpeechEncoder(rate, complexity int) (*Encoder, error) {
	return newEncoder(rate, complexity, hraban.AppVoIP, 0)
}

// newEncoder is an Encoder of app; bitrate 0 leaves Opus's own.
func newEncoder(rate, complexity int, app hraban.Application, bitrate int) (*Encoder, error) {
	if complexity <= 0 {
		complexity = 5
	}
	if complexity > 10 {
		return nil, fmt.Errorf("opus: complexity %d: want 1 to 10", complexity)
	}
	if !NativeRate(rate) {
		return nil, fmt.Errorf("opus: cannot encode from %d Hz", rate)
	}
	e, err := hraban.NewEncoder(rate, 1, app)
	if err != nil {
		return nil, fmt.Errorf("opus: encoder: %w", err)
	}
	if err := e.SetComplexity(complexity); err != nil {
		return nil, fmt.Errorf("opus: complexity: %w", err)
	}
	if bitrate > 0 {
		if err := e.SetBitrate(bitrate); err != nil {
			return nil, fmt.Errorf("opus: bitrate: %w", err)
		}
	}
	return &Encoder{e: e, out: make([]byte, MaxPacket), rate: rate, frame: rate / media.FramesPerSecond}, nil
}

// Rate implements media.Encoder.
func (e *Encoder) Rate() int { return e.rate }

// Frame implements media.Encoder: 20 ms at the encoder's rate.
func (e *Encoder) Frame() int { return e.frame }

// Encode encodes exactly Frame() samples. The packet is a new slice.
func (e *Encoder) Encode(pcm []int16) ([]byte, error) {
	if len(pcm) != e.frame {
		return nil, fmt.Errorf("opus: encode wants %d samples, got %d", e.frame, len(pcm))
	}
	n, err := e.e.Encode(pcm, e.out)
	if err != nil {
		return nil, fmt.Errorf("opus: encode: %w", err)
	}
	return append([]byte(nil), e.out[:n]...), nil
}
