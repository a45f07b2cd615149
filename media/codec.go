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

// Decoder turns Opus packets into 48 kHz mono PCM.
type Decoder struct {
	d   *opus.Decoder
	pcm []int16
}

// NewDecoder returns a Decoder for one stream.
func NewDecoder() (*Decoder, error) {
	d, err := opus.NewDecoder(SampleRate, 1)
	if err != nil {
		return nil, fmt.Errorf("media: opus decoder: %w", err)
	}
	// 120 ms is the longest Opus frame.
	return &Decoder{d: d, pcm: make([]int16, SampleRate*120/1000)}, nil
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
	e   *opus.Encoder
	out []byte
}

// NewEncoder returns an Encoder tuned for speech. complexity is 0 to 10;
// 0 means the default, 5 (about 200 µs a frame on one core here).
func NewEncoder(complexity int) (*Encoder, error) {
	if complexity <= 0 {
		complexity = 5
	}
	if complexity > 10 {
		return nil, fmt.Errorf("media: opus complexity %d: want 1 to 10", complexity)
	}
	e, err := opus.NewEncoder(SampleRate, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("media: opus encoder: %w", err)
	}
	if err := e.SetComplexity(complexity); err != nil {
		return nil, fmt.Errorf("media: opus complexity: %w", err)
	}
	return &Encoder{e: e, out: make([]byte, MaxPacket)}, nil
}

// Encode encodes exactly FrameSamples samples. The packet is a new slice.
func (e *Encoder) Encode(pcm []int16) ([]byte, error) {
	if len(pcm) != FrameSamples {
		return nil, fmt.Errorf("media: encode wants %d samples, got %d", FrameSamples, len(pcm))
	}
	n, err := e.e.Encode(pcm, e.out)
	if err != nil {
		return nil, fmt.Errorf("media: opus encode: %w", err)
	}
	return append([]byte(nil), e.out[:n]...), nil
}
