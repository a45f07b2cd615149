package media

import (
	"errors"
	"testing"
)

// FuzzDecode: the audio input path (a WebSocket binary frame or an RTP
// payload, as the caller sent it) either decodes to whole Opus frames of
// at most 120 ms, which the VAD takes, or is refused with ErrPacket. It
// never panics, whatever the bytes.
func FuzzDecode(f *testing.F) {
	enc, _ := NewEncoder(0)
	speech, _ := enc.Encode(tone(300, SampleRate, FrameSamples, 8000))
	silence, _ := enc.Encode(make([]int16, FrameSamples))
	for _, p := range [][]byte{speech, silence, {0xf8, 0xff, 0xfe}, {0x00}, {0xff, 0xff, 0xff, 0xff}, make([]byte, 200), nil} {
		f.Add(p, uint8(0))
		f.Add(p, uint8(2))
	}
	f.Fuzz(func(t *testing.T, packet []byte, rateSel uint8) {
		rate := []int{8000, 16000, 48000}[int(rateSel)%3]
		dec, err := NewDecoderRate(rate)
		if err != nil {
			t.Fatal(err)
		}
		vad := NewVAD(VADConfig{SampleRate: rate})
		for i := 0; i < 2; i++ { // twice: the decoder's state after a bad packet
			pcm, err := dec.Decode(packet)
			if err != nil {
				if !errors.Is(err, ErrPacket) {
					t.Fatalf("error %v does not wrap ErrPacket", err)
				}
				continue
			}
			step := rate / 400 // 2.5 ms, Opus's shortest frame
			if len(pcm) == 0 || len(pcm)%step != 0 || len(pcm) > rate*120/1000 {
				t.Fatalf("%d samples at %d Hz from a %d-byte packet", len(pcm), rate, len(packet))
			}
			vad.Process(pcm)
		}
	})
}
