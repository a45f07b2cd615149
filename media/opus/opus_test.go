package opus

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/media"
)

var (
	tone = testkit.Tone
	rms  = testkit.RMS
	db   = testkit.DB
)

func TestOpusRoundTrip(t *testing.T) {
	enc, err := NewEncoder(Rate, 0)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoder(Rate)
	if err != nil {
		t.Fatal(err)
	}
	src := tone(440, Rate, Rate, 8000) // 1 s
	var out []int16
	for i := 0; i+FrameSamples <= len(src); i += FrameSamples {
		pkt, err := enc.Encode(src[i : i+FrameSamples])
		if err != nil {
			t.Fatal(err)
		}
		if len(pkt) == 0 || len(pkt) > MaxPacket {
			t.Fatalf("packet of %d bytes", len(pkt))
		}
		pcm, err := dec.Decode(pkt)
		if err != nil {
			t.Fatal(err)
		}
		if len(pcm) != FrameSamples {
			t.Fatalf("decoded %d samples, want %d", len(pcm), FrameSamples)
		}
		out = append(out, pcm...)
	}
	// A lossy codec: the level survives within a dB or two.
	if g := db(rms(out[Rate/4:]) / rms(src[Rate/4:])); g < -2 || g > 2 {
		t.Fatalf("level after Opus: %.1f dB", g)
	}
}

func TestBadInput(t *testing.T) {
	dec, _ := NewDecoder(Rate)
	for name, pkt := range map[string][]byte{
		"empty":     {},
		"oversized": make([]byte, MaxPacket+1),
		"garbage":   {0xff, 0xff, 0xff, 0xff, 0x00, 0x13},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := dec.Decode(pkt); !errors.Is(err, media.ErrPacket) {
				t.Fatalf("got %v, want ErrPacket", err)
			}
		})
	}
	// The decoder still works after garbage.
	enc, _ := NewEncoder(Rate, 0)
	pkt, _ := enc.Encode(make([]int16, FrameSamples))
	if _, err := dec.Decode(pkt); err != nil {
		t.Fatalf("after bad packets: %v", err)
	}
	if _, err := enc.Encode(make([]int16, 100)); err == nil {
		t.Fatal("a short frame must be refused")
	}
	if _, err := NewEncoder(Rate, 11); err == nil {
		t.Fatal("complexity 11 must be refused")
	}
}

func BenchmarkOpusDecode(b *testing.B) {
	enc, _ := NewEncoder(Rate, 0)
	dec, _ := NewDecoder(Rate)
	pkt, _ := enc.Encode(tone(440, Rate, FrameSamples, 8000))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = dec.Decode(pkt)
	}
}

func BenchmarkOpusEncode(b *testing.B) {
	enc, _ := NewEncoder(Rate, 0)
	frame := tone(440, Rate, FrameSamples, 8000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = enc.Encode(frame)
	}
}

// Opus encodes from and decodes to its own rates: a packet made at one
// rate decodes at any other to 20 ms of the same tone.
func TestOpusRates(t *testing.T) {
	for _, tc := range []struct{ enc, dec int }{{16000, 16000}, {16000, 48000}, {24000, 48000}, {48000, 16000}, {8000, 24000}} {
		t.Run(fmt.Sprintf("%d to %d", tc.enc, tc.dec), func(t *testing.T) {
			enc, err := NewEncoder(tc.enc, 0)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := NewDecoder(tc.dec)
			if err != nil {
				t.Fatal(err)
			}
			if enc.Frame() != tc.enc/50 {
				t.Fatalf("frame %d samples at %d Hz", enc.Frame(), tc.enc)
			}
			src := tone(440, tc.enc, tc.enc/2, 8000) // 500 ms
			var out []int16
			for i := 0; i+enc.Frame() <= len(src); i += enc.Frame() {
				pkt, err := enc.Encode(src[i : i+enc.Frame()])
				if err != nil {
					t.Fatal(err)
				}
				pcm, err := dec.Decode(pkt)
				if err != nil {
					t.Fatal(err)
				}
				if len(pcm) != tc.dec/50 {
					t.Fatalf("decoded %d samples, want %d", len(pcm), tc.dec/50)
				}
				out = append(out, pcm...)
			}
			// After the codec's start-up, the tone's level comes through.
			if got, want := rms(out[len(out)/2:]), rms(src[len(src)/2:]); got < want*0.7 || got > want*1.3 {
				t.Fatalf("rms %.0f, want about %.0f", got, want)
			}
		})
	}
	for _, r := range []int{0, 11025, 22050, 44100} {
		if _, err := NewEncoder(r, 0); err == nil {
			t.Errorf("an encoder at %d Hz", r)
		}
		if _, err := NewDecoder(r); err == nil {
			t.Errorf("a decoder at %d Hz", r)
		}
	}
}

// Behind the media.Codec seam, encoders and decoders run at the rate asked
// for when Opus takes it, else at 48 kHz for the caller to resample.
func TestCodecRates(t *testing.T) {
	var c media.Codec = Codec{}
	for _, tc := range []struct{ ask, want int }{{16000, 16000}, {24000, 24000}, {8000, 8000}, {22050, Rate}, {44100, Rate}, {0, Rate}} {
		t.Run(fmt.Sprint(tc.ask), func(t *testing.T) {
			enc, err := c.NewEncoder(tc.ask)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := c.NewDecoder(tc.ask)
			if err != nil {
				t.Fatal(err)
			}
			if enc.Rate() != tc.want || dec.Rate() != tc.want || enc.Frame() != tc.want/50 {
				t.Fatalf("encoder %d Hz (%d samples), decoder %d Hz; want %d Hz", enc.Rate(), enc.Frame(), dec.Rate(), tc.want)
			}
		})
	}
	if _, err := (Codec{Complexity: 11}).NewEncoder(Rate); err == nil {
		t.Fatal("complexity 11 must be refused")
	}
}

// The bot's voice goes out in CELT alone at Bitrate by default, and in
// the VoIP mode's SILK or hybrid packets with Codec.Speech. The mode is
// in each packet's first byte (RFC 6716, 3.1: configurations 16 to 31 are
// CELT-only).
func TestEncoderModes(t *testing.T) {
	for _, tc := range []struct {
		codec Codec
		rate  int
		celt  bool
	}{
		{Codec{}, 16000, true},
		{Codec{}, 24000, true},
		{Codec{}, 48000, true},
		// CELT at every complexity: Opus's general-audio application
		// sends this speech in SILK or hybrid from complexity 7.
		{Codec{Complexity: 7}, 16000, true},
		{Codec{Complexity: 10}, 24000, true},
		{Codec{Complexity: 10}, 48000, true},
		{Codec{Speech: true}, 16000, false},
		{Codec{Speech: true}, 24000, false},
	} {
		t.Run(fmt.Sprintf("speech %v, complexity %d, %d Hz", tc.codec.Speech, tc.codec.Complexity, tc.rate), func(t *testing.T) {
			enc, err := tc.codec.NewEncoder(tc.rate)
			if err != nil {
				t.Fatal(err)
			}
			n := enc.Frame()
			src := speechLike(tc.rate, tc.rate) // 1 s
			bytes := 0
			for i := 0; i+n <= len(src); i += n {
				pkt, err := enc.Encode(src[i : i+n])
				if err != nil {
					t.Fatal(err)
				}
				if celt := pkt[0]>>3 >= 16; celt != tc.celt {
					t.Fatalf("frame %d: configuration %d, CELT %v; want CELT %v", i/n, pkt[0]>>3, celt, tc.celt)
				}
				bytes += len(pkt)
			}
			kbps := bytes * 8 / 1000
			if tc.celt && (kbps < Bitrate/1000*3/4 || kbps > Bitrate/1000*5/4) {
				t.Fatalf("%d kbps, want about %d", kbps, Bitrate/1000)
			}
		})
	}
}

// speechLike is n samples at rate of a voiced sound: a 140 Hz
// fundamental with its harmonics falling off, its loudness moving at a
// syllable's pace, so that the VoIP mode's classifier takes it for speech.
func speechLike(rate, n int) []int16 {
	out := make([]int16, n)
	for i := range out {
		t := float64(i) / float64(rate)
		v := 0.0
		for h := 1; h <= 20; h++ {
			v += math.Sin(2*math.Pi*140*float64(h)*t) / float64(h)
		}
		env := 0.5 + 0.5*math.Sin(2*math.Pi*4*t)
		out[i] = int16(6000 * env * v)
	}
	return out
}
