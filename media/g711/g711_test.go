package g711

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/media"
)

// Values from the G.711 tables: silence, the largest magnitudes, and the
// smallest steps.
func TestKnownCodes(t *testing.T) {
	for _, tc := range []struct {
		law  Law
		pcm  int16
		code byte
	}{
		{MuLaw, 0, 0xff},
		{MuLaw, 32767, 0x80},
		{MuLaw, -32768, 0x00},
		{MuLaw, 8, 0xfe},
		{MuLaw, -8, 0x7e},
		{ALaw, 0, 0xd5},
		{ALaw, -1, 0x55},
		{ALaw, 32767, 0xaa},
		{ALaw, -32768, 0x2a},
		{ALaw, 16, 0xd4},
	} {
		t.Run(fmt.Sprintf("%s %d", tc.law, tc.pcm), func(t *testing.T) {
			if got := tc.law.Append(nil, []int16{tc.pcm})[0]; got != tc.code {
				t.Fatalf("%d encodes to %#02x, want %#02x", tc.pcm, got, tc.code)
			}
		})
	}
	for _, tc := range []struct {
		law  Law
		code byte
		pcm  int16
	}{
		{MuLaw, 0xff, 0}, {MuLaw, 0x7f, 0}, {MuLaw, 0x80, 32124}, {MuLaw, 0x00, -32124}, {MuLaw, 0xfe, 8},
		{ALaw, 0xd5, 8}, {ALaw, 0x55, -8}, {ALaw, 0xaa, 32256}, {ALaw, 0x2a, -32256},
	} {
		if got := tc.law.AppendPCM(nil, []byte{tc.code})[0]; got != tc.pcm {
			t.Errorf("%s %#02x decodes to %d, want %d", tc.law, tc.code, got, tc.pcm)
		}
	}
}

// Every code decodes to a value that encodes back to it (mu-law's two
// zeros aside), and decoded values rise with the code within each sign.
func TestEveryCodeRoundTrips(t *testing.T) {
	for _, law := range []Law{MuLaw, ALaw} {
		t.Run(law.String(), func(t *testing.T) {
			for c := range 256 {
				if law == MuLaw && c == 0x7f { // -0: decodes to 0, which is +0
					continue
				}
				pcm := law.AppendPCM(nil, []byte{byte(c)})
				if back := law.Append(nil, pcm)[0]; back != byte(c) {
					t.Fatalf("%#02x -> %d -> %#02x", c, pcm[0], back)
				}
			}
			prev := int16(math.MinInt16)
			for v := int32(-32768); v <= 32767; v += 7 {
				got := law.AppendPCM(nil, law.Append(nil, []int16{int16(v)}))[0]
				if got < prev { // monotone (ties allowed), whatever the sign
					t.Fatalf("%d -> %d after %d: not monotone", v, got, prev)
				}
				prev = got
			}
		})
	}
}

// A loud tone through the codec keeps its level and about 35 dB SNR, the
// figure G.711 is known for at speech levels.
func TestToneThroughTheCodec(t *testing.T) {
	src := testkit.Tone(440, Rate, Rate, 12000)
	for _, law := range []Law{MuLaw, ALaw} {
		t.Run(law.String(), func(t *testing.T) {
			var c media.Codec = law
			enc, _ := c.NewEncoder(16000)
			dec, _ := c.NewDecoder(48000)
			if enc.Rate() != Rate || dec.Rate() != Rate || enc.Frame() != 160 {
				t.Fatalf("rates %d/%d, frame %d: G.711 is 8 kHz, 160 samples", enc.Rate(), dec.Rate(), enc.Frame())
			}
			var out []int16
			for i := 0; i+Frame <= len(src); i += Frame {
				pkt, err := enc.Encode(src[i : i+Frame])
				if err != nil || len(pkt) != Frame {
					t.Fatalf("%d bytes, %v", len(pkt), err)
				}
				pcm, err := dec.Decode(pkt)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, pcm...)
			}
			noise := make([]int16, len(src))
			for i := range src {
				noise[i] = src[i] - out[i]
			}
			if snr := testkit.DB(testkit.RMS(src) / testkit.RMS(noise)); snr < 30 {
				t.Fatalf("SNR %.1f dB", snr)
			}
		})
	}
}

func TestBadPackets(t *testing.T) {
	dec, _ := MuLaw.NewDecoder(Rate)
	for name, pkt := range map[string][]byte{"empty": nil, "over a second": make([]byte, MaxPacket+1)} {
		if _, err := dec.Decode(pkt); !errors.Is(err, media.ErrPacket) {
			t.Errorf("%s: %v, want media.ErrPacket", name, err)
		}
	}
	// Any length up to a second is samples: Twilio's 160 bytes, or not.
	if pcm, err := dec.Decode(make([]byte, 7)); err != nil || len(pcm) != 7 {
		t.Fatalf("7 bytes: %d samples, %v", len(pcm), err)
	}
	enc, _ := ALaw.NewEncoder(Rate)
	if _, err := enc.Encode(make([]int16, 100)); err == nil {
		t.Fatal("a short frame must be refused")
	}
}

func BenchmarkEncodeMuLaw(b *testing.B) {
	enc, _ := MuLaw.NewEncoder(Rate)
	frame := testkit.Tone(440, Rate, Frame, 8000)
	for b.Loop() {
		_, _ = enc.Encode(frame)
	}
}

func BenchmarkDecodeMuLaw(b *testing.B) {
	dec, _ := MuLaw.NewDecoder(Rate)
	pkt := MuLaw.Append(nil, testkit.Tone(440, Rate, Frame, 8000))
	for b.Loop() {
		_, _ = dec.Decode(pkt)
	}
}
