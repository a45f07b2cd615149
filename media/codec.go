package media

import (
	"errors"
	"fmt"

	"gopkg.in/hraban/opus.v2"
)

// The one audio format on the wire, both ways.
const (
	SampleRate   = 48000
	FrameSamples = SampleRate / 50 // 20 ms, mono
	// MaxPacket is the largest Opus packet we accept or produce; a 20 ms
	// mono packet is far smaller, so anything above is not audio.
	MaxPacket = 1500
)

// ErrPacket wraps every decoding failure: the packet is dropped and
// counted, the call goes on.
var ErrPacket = errors.New("bad opus packet")

// OpusRate reports whether Opus encodes from and decodes to rate (Hz)
// itself. Audio at such a rate needs no resampler: Opus converts on its
// own, for less work than decoding at 48 kHz and resampling.
func OpusRate(rate int) bool {
	switch rate {
	case 8000, 12000, 16000, 24000, 48000:
		return true
	}
	return false
}

// Decoder turns Opus packets into mono PCM, at 48 kHz unless made with
// NewDecoderRate.
type Decoder struct {
	d   *opus.Decoder
	pcm []int16
}

// NewDecoder returns a 48 kHz Decoder for one stream.
func NewDecoder() (*Decoder, error) { return NewDecoderRate(SampleRate) }

// NewDecoderRate returns a Decoder for one stream whose PCM is at rate, one
// of the rates OpusRate accepts.
func NewDecoderRate(rate int) (*Decoder, error) {
	if !OpusRate(rate) {
		return nil, fmt.Errorf("media: opus cannot decode to %d Hz", rate)
	}
	d, err := opus.NewDecoder(rate, 1)
	if err != nil {
		return nil, fmt.Errorf("media: opus decoder: %w", err)
	}
	// 120 ms is the longest Opus frame.
	return &Decoder{d: d, pcm: make([]int16, rate*120/1000)}, nil
}

// Decode decodes one packet. The samples are valid until the next call.
func (d *Decoder) Decode(packet []byte) ([]int16, error) {
	if len(packet) == 0 || len(packet) > MaxPacket {
		return nil, fmt.Errorf("%w: %d bytes", ErrPacket, len(packet))
	}
	n, err := d.d.Decode(packet, d.pcm)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPacket, err)
	}
	return d.pcm[:n], nil
}

// Encoder turns 20 ms of 48 kHz mono PCM into an Opus packet.
type Encoder struct {
	e     *opus.Encoder
	out   []byte
	frame int // samples per 20 ms
}

// NewEncoder returns an Encoder tuned for speech. complexity is 0 to 10;
// 0 means the default, 5 (about 200 µs a frame on one core here).
func NewEncoder(complexity int) (*Encoder, error) { return NewEncoderRate(SampleRate, complexity) }

// NewEncoderRate is NewEncoder for PCM at rate, one of the rates OpusRate
// accepts; its frames are rate/50 samples. The packets are 20 ms Opus
// packets like any other, decoded at whatever rate the receiver likes.
func NewEncoderRate(rate, complexity int) (*Encoder, error) {
	if complexity <= 0 {
		complexity = 5
	}
	if complexity > 10 {
		return nil, fmt.Errorf("media: opus complexity %d: want 1 to 10", complexity)
	}
	if !OpusRate(rate) {
		return nil, fmt.Errorf("media: opus cannot encode from %d Hz", rate)
	}
	e, err := opus.NewEncoder(rate, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("media: opus encoder: %w", err)
	}
	if err := e.SetComplexity(complexity); err != nil {
		return nil, fmt.Errorf("media: opus complexity: %w", err)
	}
	return &Encoder{e: e, out: make([]byte, MaxPacket), frame: rate / 50}, nil
}

// Frame is the number of samples Encode takes: 20 ms at the encoder's rate.
func (e *Encoder) Frame() int { return e.frame }

// Encode encodes exactly Frame() samples. The packet is a new slice.
func (e *Encoder) Encode(pcm []int16) ([]byte, error) {
	if len(pcm) != e.frame {
		return nil, fmt.Errorf("media: encode wants %d samples, got %d", e.frame, len(pcm))
	}
	n, err := e.e.Encode(pcm, e.out)
	if err != nil {
		return nil, fmt.Errorf("media: opus encode: %w", err)
	}
	return append([]byte(nil), e.out[:n]...), nil
}
