package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// WAV is 16-bit PCM audio as a RIFF/WAVE file holds it.
type WAV struct {
	Rate     int
	Channels int
	Samples  []int16 // interleaved when Channels > 1
}

// ReadWAV parses a 16-bit PCM WAV file.
func ReadWAV(r io.Reader) (*WAV, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("media: wav header: %w", err)
	}
	if string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		return nil, errors.New("media: not a RIFF/WAVE file")
	}
	w := &WAV{}
	var gotFmt bool
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			return nil, fmt.Errorf("media: wav: no data chunk: %w", err)
		}
		size := int64(binary.LittleEndian.Uint32(ch[4:8]))
		switch string(ch[0:4]) {
		case "fmt ":
			if size < 16 {
				return nil, errors.New("media: wav: short fmt chunk")
			}
			var f [16]byte
			if _, err := io.ReadFull(r, f[:]); err != nil {
				return nil, err
			}
			if format := binary.LittleEndian.Uint16(f[0:2]); format != 1 {
				return nil, fmt.Errorf("media: wav: format %d, want 1 (PCM)", format)
			}
			w.Channels = int(binary.LittleEndian.Uint16(f[2:4]))
			w.Rate = int(binary.LittleEndian.Uint32(f[4:8]))
			if bits := binary.LittleEndian.Uint16(f[14:16]); bits != 16 {
				return nil, fmt.Errorf("media: wav: %d bits, want 16", bits)
			}
			if _, err := io.CopyN(io.Discard, r, size-16+size%2); err != nil {
				return nil, err
			}
			gotFmt = true
		case "data":
			if !gotFmt {
				return nil, errors.New("media: wav: data before fmt")
			}
			// Some writers (streaming ones) leave the size 0 or too big:
			// read what is there.
			data, err := io.ReadAll(io.LimitReader(r, size))
			if err != nil {
				return nil, err
			}
			if size == 0 || size == 0xffffffff {
				rest, _ := io.ReadAll(r)
				data = append(data, rest...)
			}
			w.Samples = make([]int16, len(data)/2)
			for i := range w.Samples {
				w.Samples[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
			}
			return w, nil
		default:
			if _, err := io.CopyN(io.Discard, r, size+size%2); err != nil {
				return nil, err
			}
		}
	}
}

// Bytes encodes the audio as a WAV file.
func (w *WAV) Bytes() []byte {
	var b bytes.Buffer
	data := len(w.Samples) * 2
	le := binary.LittleEndian
	b.WriteString("RIFF")
	_ = binary.Write(&b, le, uint32(36+data))
	b.WriteString("WAVEfmt ")
	_ = binary.Write(&b, le, uint32(16))
	_ = binary.Write(&b, le, uint16(1))
	_ = binary.Write(&b, le, uint16(w.Channels))
	_ = binary.Write(&b, le, uint32(w.Rate))
	_ = binary.Write(&b, le, uint32(w.Rate*w.Channels*2))
	_ = binary.Write(&b, le, uint16(w.Channels*2))
	_ = binary.Write(&b, le, uint16(16))
	b.WriteString("data")
	_ = binary.Write(&b, le, uint32(data))
	_ = binary.Write(&b, le, w.Samples)
	return b.Bytes()
}
