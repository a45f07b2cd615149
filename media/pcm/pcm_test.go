package pcm

import (
	"errors"
	"slices"
	"testing"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/media"
)

func TestRoundTrip(t *testing.T) {
	var c media.Codec = Codec{Rate: 24000}
	enc, err := c.NewEncoder(16000)
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := c.NewDecoder(16000)
	if enc.Rate() != 24000 || dec.Rate() != 24000 || enc.Frame() != 480 {
		t.Fatalf("rates %d/%d, frame %d: want 24 kHz, 480 samples", enc.Rate(), dec.Rate(), enc.Frame())
	}
	src := testkit.Tone(440, 24000, 480, 30000)
	pkt, err := enc.Encode(src)
	if err != nil || len(pkt) != 960 {
		t.Fatalf("%d bytes, %v", len(pkt), err)
	}
	if pkt[0] != byte(uint16(src[0])) || pkt[3] != byte(uint16(src[1])>>8) {
		t.Fatal("not little-endian")
	}
	got, err := dec.Decode(pkt)
	if err != nil || !slices.Equal(got, src) {
		t.Fatalf("round trip differs: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	dec, _ := Codec{Rate: 24000}.NewDecoder(0)
	for name, pkt := range map[string][]byte{"empty": nil, "odd": {1, 2, 3}, "too long": make([]byte, MaxPacket+2)} {
		if _, err := dec.Decode(pkt); !errors.Is(err, media.ErrPacket) {
			t.Errorf("%s: %v, want media.ErrPacket", name, err)
		}
	}
	if _, err := (Codec{Rate: 1000}).NewEncoder(0); err == nil {
		t.Error("1 kHz must be refused")
	}
}
