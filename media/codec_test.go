package media

import (
	"errors"
	"testing"
)

func TestOpusRoundTrip(t *testing.T) {
	enc, err := NewEncoder(0)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	src := tone(440, SampleRate, SampleRate, 8000) // 1 s
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
	if g := db(rms(out[SampleRate/4:]) / rms(src[SampleRate/4:])); g < -2 || g > 2 {
		t.Fatalf("level after Opus: %.1f dB", g)
	}
}

func TestBadInput(t *testing.T) {
	dec, _ := NewDecoder()
	for name, pkt := range map[string][]byte{
		"empty":     {},
		"oversized": make([]byte, MaxPacket+1),
		"garbage":   {0xff, 0xff, 0xff, 0xff, 0x00, 0x13},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := dec.Decode(pkt); !errors.Is(err, ErrPacket) {
				t.Fatalf("got %v, want ErrPacket", err)
			}
		})
	}
	// The decoder still works after garbage.
	enc, _ := NewEncoder(0)
	pkt, _ := enc.Encode(make([]int16, FrameSamples))
	if _, err := dec.Decode(pkt); err != nil {
		t.Fatalf("after bad packets: %v", err)
	}
	if _, err := enc.Encode(make([]int16, 100)); err == nil {
		t.Fatal("a short frame must be refused")
	}
	if _, err := NewEncoder(11); err == nil {
		t.Fatal("complexity 11 must be refused")
	}
}

func BenchmarkOpusDecode(b *testing.B) {
	enc, _ := NewEncoder(0)
	dec, _ := NewDecoder()
	pkt, _ := enc.Encode(tone(440, SampleRate, FrameSamples, 8000))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = dec.Decode(pkt)
	}
}

func BenchmarkOpusEncode(b *testing.B) {
	enc, _ := NewEncoder(0)
	frame := tone(440, SampleRate, FrameSamples, 8000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = enc.Encode(frame)
	}
}
