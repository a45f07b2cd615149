package g711

import (
	"fmt"
	"math/bits"

	"github.com/parleyhq/parley/media"
)

// Rate is G.711's one sample rate, and Frame its samples per 20 ms.
const (
	Rate  = 8000
	Frame = Rate / media.FramesPerSecond
	// MaxPacket bounds what Decode takes: a second of audio. Telephony
	// sends 20 ms (160 bytes); anything far larger is not a frame.
	MaxPacket = Rate
)

// Law is one of G.711's two companding laws.
type Law uint8

// The two laws.
const (
	MuLaw Law = iota + 1
	ALaw
)

func (l Law) String() string {
	if l == ALaw {
		return "A-law"
	}
	return "mu-law"
}

// NewEncoder implements media.Codec: its encoders always take 8 kHz.
func (l Law) NewEncoder(int) (media.Encoder, error) { return encoder{l}, nil }

// NewDecoder implements media.Codec: its decoders always give 8 kHz.
func (l Law) NewDecoder(int) (media.Decoder, error) { return &decoder{law: l}, nil }

type encoder struct{ law Law }

func (encoder) Rate() int  { return Rate }
func (encoder) Frame() int { return Frame }

func (e encoder) Encode(pcm []int16) ([]byte, error) {
	if len(pcm) != Frame {
		return nil, fmt.Errorf("g711: encode wants %d samples, got %d", Frame, len(pcm))
	}
	return e.law.Append(make([]byte, 0, Frame), pcm), nil
}

type decoder struct {
	law Law
	pcm []int16
}

func (*decoder) Rate() int { return Rate }

// Decode takes any whole number of samples (a byte each), up to a second.
func (d *decoder) Decode(packet []byte) ([]int16, error) {
	if len(packet) == 0 || len(packet) > MaxPacket {
		return nil, fmt.Errorf("%w: %d bytes of %s", media.ErrPacket, len(packet), d.law)
	}
	d.pcm = d.law.AppendPCM(d.pcm[:0], packet)
	return d.pcm, nil
}

// Append appends the codes of pcm to dst.
func (l Law) Append(dst []byte, pcm []int16) []byte {
	enc := encodeMu
	if l == ALaw {
		enc = encodeA
	}
	for _, s := range pcm {
		dst = append(dst, enc(s))
	}
	return dst
}

// AppendPCM appends the samples of codes to dst.
func (l Law) AppendPCM(dst []int16, codes []byte) []int16 {
	table := &muTable
	if l == ALaw {
		table = &aTable
	}
	for _, c := range codes {
		dst = append(dst, table[c])
	}
	return dst
}

// Decoding is a table look-up: 256 samples per law.
var muTable, aTable = func() (mu, a [256]int16) {
	for i := range 256 {
		mu[i], a[i] = decodeMu(byte(i)), decodeA(byte(i))
	}
	return mu, a
}()

const (
	muBias = 0x84  // added before the segment search, so that segment 0 has no gap at zero
	muClip = 32635 // the largest magnitude that biases without overflow
)

// encodeMu is mu-law: sign, a 3-bit segment (the exponent) and a 4-bit
// step within it, all bits inverted.
func encodeMu(s int16) byte {
	v := int32(s)
	var sign byte
	if v < 0 {
		v, sign = -v, 0x80
	}
	v = min(v, muClip) + muBias
	seg := bits.Len32(uint32(v>>7)) - 1 // 0..7: v is in [2^(seg+7), 2^(seg+8))
	step := byte(v>>(seg+3)) & 0x0f
	return ^(sign | byte(seg)<<4 | step)
}

func decodeMu(c byte) int16 {
	c = ^c
	seg, step := (c>>4)&7, int32(c&0x0f)
	v := ((step << 3) + muBias) << seg
	v -= muBias
	if c&0x80 != 0 {
		return int16(-v)
	}
	return int16(v)
}

// encodeA is A-law on the 13 most significant bits: segments 0 and 1
// share one step size (the linear part), every later one doubles it; the
// even bits are inverted (the 0x55 mask).
func encodeA(s int16) byte {
	v := int32(s) >> 3
	mask := byte(0xd5)
	if v < 0 {
		v, mask = -v-1, 0x55
	}
	seg := max(bits.Len32(uint32(v))-5, 0) // 0..8: v < 32 << seg
	if seg > 7 {
		return 0x7f ^ mask
	}
	shift := max(seg, 1)
	return (byte(seg)<<4 | byte(v>>shift)&0x0f) ^ mask
}

func decodeA(c byte) int16 {
	c ^= 0x55
	seg := int32(c>>4) & 7
	v := int32(c&0x0f)<<4 + 8 // the middle of the step
	if seg > 0 {
		v = (v + 0x100) << (seg - 1)
	}
	if c&0x80 != 0 {
		return int16(v)
	}
	return int16(-v)
}
