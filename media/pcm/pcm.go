package pcm

import (
	"encoding/binary"
	"fmt"

	"github.com/parleyhq/parley/media"
)

// MaxPacket bounds what Decode takes, in bytes: a second at 48 kHz.
const MaxPacket = 2 * 48000

// Codec is 16-bit little-endian PCM at Rate (Hz).
type Codec struct{ Rate int }

// NewEncoder implements media.Codec: its encoders take PCM at c.Rate.
func (c Codec) NewEncoder(int) (media.Encoder, error) {
	if c.Rate < 8000 || c.Rate > 48000 {
		return nil, fmt.Errorf("pcm: rate %d Hz: want 8000 to 48000", c.Rate)
	}
	return encoder{rate: c.Rate, frame: c.Rate / media.FramesPerSecond}, nil
}

// NewDecoder implements media.Codec: its decoders give PCM at c.Rate.
func (c Codec) NewDecoder(int) (media.Decoder, error) {
	if c.Rate < 8000 || c.Rate > 48000 {
		return nil, fmt.Errorf("pcm: rate %d Hz: want 8000 to 48000", c.Rate)
	}
	return &decoder{rate: c.Rate}, nil
}

type encoder struct{ rate, frame int }

func (e encoder) Rate() int  { return e.rate }
func (e encoder) Frame() int { return e.frame }

func (e encoder) Encode(pcm []int16) ([]byte, error) {
	if len(pcm) != e.frame {
		return nil, fmt.Errorf("pcm: encode wants %d samples, got %d", e.frame, len(pcm))
	}
	return Append(make([]byte, 0, 2*len(pcm)), pcm), nil
}

type decoder struct {
	rate int
	pcm  []int16
}

func (d *decoder) Rate() int { return d.rate }

// Decode takes any whole number of samples up to MaxPacket bytes.
func (d *decoder) Decode(packet []byte) ([]int16, error) {
	if len(packet) == 0 || len(packet) > MaxPacket || len(packet)%2 != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not whole 16-bit samples (or is over %d)", media.ErrPacket, len(packet), MaxPacket)
	}
	d.pcm = AppendSamples(d.pcm[:0], packet)
	return d.pcm, nil
}

// Append appends pcm to dst as little-endian bytes.
func Append(dst []byte, pcm []int16) []byte {
	for _, s := range pcm {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(s))
	}
	return dst
}

// AppendSamples appends the little-endian samples of b to dst; an odd
// last byte is ignored.
func AppendSamples(dst []int16, b []byte) []int16 {
	for i := 0; i+1 < len(b); i += 2 {
		dst = append(dst, int16(binary.LittleEndian.Uint16(b[i:])))
	}
	return dst
}
