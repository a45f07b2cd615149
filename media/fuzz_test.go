package media

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
	"time"
)

// decodeRates are the rates a call's audio may run at.
var decodeRates = []int{8000, 12000, 16000, 24000, 48000}

// resampleRates are the rates a call converts between: the providers'
// (8 to 48 kHz, 22.05 and 44.1 included) and Opus's.
var resampleRates = []int{8000, 11025, 16000, 22050, 24000, 44100, 48000}

// pcmOf reads little-endian 16-bit samples; an odd last byte is dropped.
func pcmOf(b []byte) []int16 {
	s := make([]int16, len(b)/2)
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return s
}

// FuzzResample: for any PCM and any pair of rates, a stream of N samples
// gives exactly ceil(N·out/in) samples whatever the chunks it comes in
// (streaming must not drop or repeat), chunked output equals output in one
// piece, and silence stays silent.
func FuzzResample(f *testing.F) {
	le := func(s []int16) []byte {
		b := make([]byte, 2*len(s))
		for i, v := range s {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
		}
		return b
	}
	f.Add(le(tone(440, 48000, 160, 8000)), uint8(6), uint8(2), uint16(48))
	f.Add(le(tone(1000, 16000, 320, 30000)), uint8(2), uint8(6), uint16(7))
	f.Add([]byte{0xff, 0x7f, 0x00, 0x80, 0xff, 0x7f, 0x00, 0x80}, uint8(3), uint8(5), uint16(1)) // full-scale square
	f.Add([]byte{}, uint8(1), uint8(4), uint16(0))
	f.Add(make([]byte, 99), uint8(0), uint8(0), uint16(10))
	f.Fuzz(func(t *testing.T, data []byte, inSel, outSel uint8, chunk uint16) {
		in := resampleRates[int(inSel)%len(resampleRates)]
		out := resampleRates[int(outSel)%len(resampleRates)]
		pcm := pcmOf(data)
		whole, err := NewResampler(in, out)
		if err != nil {
			t.Fatal(err)
		}
		once := whole.Process(pcm, nil)
		if want := (len(pcm)*out + in - 1) / in; len(once) != want {
			t.Fatalf("%d -> %d Hz: %d samples in, %d out; want %d", in, out, len(pcm), len(once), want)
		}
		chunked, _ := NewResampler(in, out)
		n := int(chunk)%(len(pcm)+1) + 1
		var got []int16
		for i := 0; i < len(pcm); i += n {
			got = chunked.Process(pcm[i:min(i+n, len(pcm))], got)
		}
		if !slices.Equal(got, once) {
			t.Fatalf("%d -> %d Hz in chunks of %d: the output differs from the output in one piece", in, out, n)
		}
		if !slices.ContainsFunc(pcm, func(v int16) bool { return v != 0 }) &&
			slices.ContainsFunc(once, func(v int16) bool { return v != 0 }) {
			t.Fatal("silence in, sound out")
		}
	})
}

// FuzzVAD: any PCM in frames of any sizes from 1 to 120 ms: the level is
// a finite dBFS figure; the noise floor is the lowest level of the last
// 1.5 s of audio (the frames whose durations add up to at most that, the
// current one always), whatever the sizes; and the events alternate — a
// start only while silent, an end only while speaking — in step with
// Speaking.
func FuzzVAD(f *testing.F) {
	f.Add(make([]byte, 640), uint8(2), []byte{19})
	f.Add([]byte{0xff, 0x7f, 0x00, 0x80}, uint8(0), []byte{0})
	f.Add([]byte{1, 2, 3, 4, 5}, uint8(4), []byte{})
	f.Add(tonePCM(8000, 400), uint8(0), []byte{4, 9})
	f.Fuzz(func(t *testing.T, data []byte, rateSel uint8, sizes []byte) {
		rate := decodeRates[int(rateSel)%len(decodeRates)]
		// Short Start and Stop, so that few bytes reach both events.
		v := NewVAD(VADConfig{SampleRate: rate, Start: 5 * time.Millisecond, Stop: 5 * time.Millisecond})
		pcm := pcmOf(data)
		var levels []float64
		var durs []time.Duration
		step := func(fr []int16) {
			was := v.Speaking()
			ev := v.Process(fr)
			switch {
			case ev == VADSpeechStart && (was || !v.Speaking()),
				ev == VADSpeechEnd && (!was || v.Speaking()),
				ev == VADNone && was != v.Speaking():
				t.Fatalf("event %d: speaking %v, then %v", ev, was, v.Speaking())
			}
			lv := v.Level()
			if math.IsNaN(lv) || math.IsInf(lv, 0) || lv < -120.5 || lv > 20 {
				t.Fatalf("level %v dBFS", lv)
			}
			levels = append(levels, lv)
			durs = append(durs, time.Duration(len(fr))*time.Second/time.Duration(rate))
			want, span := lv, durs[len(durs)-1]
			for i := len(levels) - 2; i >= 0 && span+durs[i] <= floorWindow; i-- {
				span += durs[i]
				want = math.Min(want, levels[i])
			}
			if v.Floor() != want {
				t.Fatalf("frame %d (%v): floor %v, want %v, the lowest of the last %v", len(levels), durs[len(durs)-1], v.Floor(), want, span)
			}
		}
		size := func(k int) int {
			if len(sizes) == 0 {
				return rate / 50
			}
			return rate / 1000 * (1 + int(sizes[k%len(sizes)])%120)
		}
		// The data, then 200 ms of silence, three times: speech that
		// starts needs to end.
		k := 0
		for rep := 0; rep < 3; rep++ {
			for i := 0; i < len(pcm); k++ {
				n := min(size(k), len(pcm)-i)
				step(pcm[i : i+n])
				i += n
			}
			for i := 0; i < rate/5; k++ {
				n := min(size(k), rate/5-i)
				step(make([]int16, n))
				i += n
			}
		}
	})
}

// tonePCM is a loud 300 Hz tone as little-endian bytes.
func tonePCM(rate, n int) []byte {
	b := make([]byte, 0, 2*n)
	for _, v := range tone(300, rate, n, 8000) {
		b = binary.LittleEndian.AppendUint16(b, uint16(v))
	}
	return b
}
