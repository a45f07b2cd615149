package opus

import (
	"errors"
	"testing"

	"github.com/parleyhq/parley/media"
)

// decodeRates are the rates a call's decoder may run at (NativeRate).
var decodeRates = []int{8000, 12000, 16000, 24000, 48000}

// FuzzDecode: the audio input path (a WebSocket binary frame or an RTP
// payload, as the caller sent it) either decodes to whole Opus frames of
// at most 120 ms, which the VAD takes, or is refused with ErrPacket and a
// reason. It never panics, whatever the bytes, and it does not spoil the
// stream: a good packet after it still decodes to its 20 ms.
func FuzzDecode(f *testing.F) {
	enc, err := NewEncoder(Rate, 0)
	if err != nil {
		f.Fatal(err)
	}
	speech, _ := enc.Encode(tone(300, Rate, FrameSamples, 8000))
	silence, _ := enc.Encode(make([]int16, FrameSamples))
	for _, p := range [][]byte{
		speech, silence, speech[:len(speech)/2], {0xf8, 0xff, 0xfe}, {0x00}, {0xff, 0xff, 0xff, 0xff},
		{0x03, 0x81}, // code 3: a frame count byte, then nothing
		{0x0b, 0xff, 0xff}, make([]byte, 200), make([]byte, MaxPacket+1), nil,
	} {
		f.Add(p, uint8(0))
		f.Add(p, uint8(2))
		f.Add(p, uint8(4))
	}
	f.Fuzz(func(t *testing.T, packet []byte, rateSel uint8) {
		rate := decodeRates[int(rateSel)%len(decodeRates)]
		dec, err := NewDecoder(rate)
		if err != nil {
			t.Fatal(err)
		}
		vad := media.NewVAD(media.VADConfig{SampleRate: rate})
		for i := 0; i < 2; i++ { // twice: the decoder's state after a bad packet
			pcm, err := dec.Decode(packet)
			if err != nil {
				if !errors.Is(err, media.ErrPacket) || err.Error() == media.ErrPacket.Error() {
					t.Fatalf("error %q: want media.ErrPacket and a reason", err)
				}
				if pcm != nil {
					t.Fatal("samples with an error")
				}
				continue
			}
			if len(packet) == 0 || len(packet) > MaxPacket {
				t.Fatalf("a %d-byte packet accepted", len(packet))
			}
			step := rate / 400 // 2.5 ms, Opus's shortest frame
			if len(pcm) == 0 || len(pcm)%step != 0 || len(pcm) > rate*120/1000 {
				t.Fatalf("%d samples at %d Hz from a %d-byte packet", len(pcm), rate, len(packet))
			}
			vad.Process(pcm)
		}
		pcm, err := dec.Decode(speech)
		if err != nil || len(pcm) != rate/50 {
			t.Fatalf("a good packet after this one: %d samples, %v", len(pcm), err)
		}
	})
}
