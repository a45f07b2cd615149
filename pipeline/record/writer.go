package record

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strconv"
	"time"
)

// The channels of the file.
const (
	left  = 0 // the caller
	right = 1 // the bot
)

const (
	headerSize = 44
	// window is how far behind the latest audio the file is written: a
	// frame of the other channel arriving that much later still finds its
	// place in memory.
	window = 250 * time.Millisecond
	// chunk: audio is written once this much more is due, so that the
	// file sees a write (and a header) about every 100 ms, not every frame.
	chunk = 100 * time.Millisecond
	// placementSlack: a frame due this soon after its channel's previous
	// one ends follows it at once. Packets arrive with jitter, the
	// pacer's ticks too (late by tens of ms on a loaded machine), and what
	// the listener heard had no such holes: the pacer sends 60 ms ahead
	// and a client's jitter buffer holds more. A later frame is a true
	// gap, which the listener heard as one.
	placementSlack = 100 * time.Millisecond
	// maxAhead bounds the audio held in memory when a channel runs ahead
	// of the clock (audio sent faster than real time): past it, the
	// oldest is written, and the other channel's late frames go after it.
	maxAhead = 5 * time.Second
	// maxRuns bounds the bot frame positions kept for cuts and the
	// transcript (a run is the frames played back to back: about one per
	// reply).
	maxRuns = 256
	// maxData is the most audio a WAV file's 32-bit sizes can say.
	maxData = 1<<32 - 1 - 36
)

// writer is a recording's files, owned by its goroutine. Positions are in
// sample frames (one sample of each channel) from the call's start.
type writer struct {
	wav, txt *os.File
	rate     int64
	start    time.Time
	base     int64    // frames written to the file
	buf      []int16  // interleaved, from base
	next     [2]int64 // where each channel's next frame may go
	started  [2]bool
	latest   int64  // the latest position due by the clock (arrival or sending)
	runs     []run  // where the bot's recent frames are
	out      []byte // flush's, kept for the next
	full     bool   // the file is as long as a WAV can be
	err      error  // the first write error: nothing more is written
}

// run is a stretch of bot frames played back to back: first to
// first+n-1, from pos to end.
type run struct {
	first, n, pos, end int64
}

// line is one line of the transcript. Times are seconds from the call's
// start.
type line struct {
	At          seconds  `json:"at"`
	Speaker     string   `json:"speaker"` // caller or bot
	Turn        int64    `json:"turn,omitempty"`
	Source      string   `json:"source,omitempty"` // the caller's: voice or text
	Text        string   `json:"text"`
	From        *seconds `json:"from,omitempty"` // when the speech began in the audio
	To          *seconds `json:"to,omitempty"`   // and ended
	Interrupted *bool    `json:"interrupted,omitempty"`
}

// seconds is written with 3 decimals: the millisecond.
type seconds float64

func (s seconds) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(s), 'f', 3, 64), nil
}

func newWriter(wav, txt *os.File, rate int, start time.Time) *writer {
	return &writer{wav: wav, txt: txt, rate: int64(rate), start: start}
}

// samples is d in sample frames.
func (w *writer) samples(d time.Duration) int64 { return int64(d.Seconds() * float64(w.rate)) }

func (w *writer) secs(pos int64) seconds { return seconds(float64(pos) / float64(w.rate)) }

// due is the position of time at.
func (w *writer) due(at time.Time) int64 { return max(0, w.samples(at.Sub(w.start))) }

// end is the position after the last frame held.
func (w *writer) end() int64 { return w.base + int64(len(w.buf)/2) }

func (w *writer) handle(it *item) error {
	if w.err != nil {
		return nil
	}
	switch it.kind {
	case callerAudio:
		if !w.full {
			w.place(left, it.pcm, it.at)
		}
	case botAudio:
		if !w.full {
			pos := w.place(right, it.pcm, it.at)
			w.ran(it.frame, pos, pos+int64(len(it.pcm)))
		}
	case cutBot:
		return w.cut(it.frame, it.last)
	case heardLine:
		if !it.from.IsZero() {
			from, to := w.secs(w.due(it.from)), w.secs(w.due(it.to))
			it.line.From, it.line.To = &from, &to
		}
		return w.writeLine(it.line, it.at)
	case spokeLine:
		if it.last >= it.frame {
			if from, _, ok := w.frame(it.frame); ok {
				_, to, _ := w.frame(it.last)
				f, t := w.secs(from), w.secs(to)
				it.line.From, it.line.To = &f, &t
			}
		}
		return w.writeLine(it.line, it.at)
	}
	return nil
}

// place puts pcm on channel ch, due at at, and returns where it went.
func (w *writer) place(ch int, pcm []int16, at time.Time) int64 {
	due := w.due(at)
	w.latest = max(w.latest, due)
	pos := w.next[ch]
	if due > pos+w.samples(placementSlack) || !w.started[ch] {
		pos = max(pos, due)
	}
	w.started[ch] = true
	pos = max(pos, w.base) // what is written stays
	n := int64(len(pcm))
	w.grow(pos + n)
	off := 2 * (pos - w.base)
	for i, s := range pcm {
		w.buf[off+2*int64(i)+int64(ch)] = s
	}
	w.next[ch] = pos + n
	return pos
}

// grow extends the buffer with silence up to position to.
func (w *writer) grow(to int64) {
	if n := 2 * (to - w.base); n > int64(len(w.buf)) {
		w.buf = append(w.buf, make([]int16, n-int64(len(w.buf)))...)
	}
}

// ran notes that bot frame n went from pos to end.
func (w *writer) ran(n, pos, end int64) {
	if k := len(w.runs) - 1; k >= 0 {
		if r := &w.runs[k]; n == r.first+r.n && pos == r.end {
			r.n++
			r.end = end
			return
		}
	}
	if len(w.runs) == maxRuns {
		w.runs = append(w.runs[:0], w.runs[1:]...)
	}
	w.runs = append(w.runs, run{first: n, n: 1, pos: pos, end: end})
}

// frame is where bot frame n is, if it was recorded. A frame older than
// those remembered is taken to be where the oldest is, one dropped from the
// queue where the next one is.
func (w *writer) frame(n int64) (from, to int64, ok bool) {
	for i := len(w.runs) - 1; i >= 0; i-- {
		r := w.runs[i]
		switch {
		case n < r.first && i > 0:
			continue
		case n >= r.first+r.n && i == len(w.runs)-1:
			return 0, 0, false // not sent yet, or dropped
		case n >= r.first+r.n:
			next := w.runs[i+1]
			return next.pos, next.pos, true
		}
		k := max(0, n-r.first)
		per := (r.end - r.pos) / r.n
		from = r.pos + k*per
		if k == r.n-1 {
			return from, r.end, true
		}
		return from, from + per, true
	}
	return 0, 0, false
}

// cut silences the bot's frames played+1 to sent, wherever they are.
func (w *writer) cut(played, sent int64) error {
	from, _, ok := w.frame(played + 1)
	if !ok {
		return nil // nothing was sent after what was played
	}
	_, to, ok := w.frame(sent)
	if !ok {
		to = w.next[right]
	}
	for p := max(from, w.base); p < min(to, w.end()); p++ {
		w.buf[2*(p-w.base)+right] = 0
	}
	if from < w.base {
		return w.silenceWritten(from, min(to, w.base))
	}
	return nil
}

// silenceWritten zeroes the right channel of the file from position from
// to to, a block at a time.
func (w *writer) silenceWritten(from, to int64) error {
	const block = 8192 // frames
	b := make([]byte, 4*min(block, to-from))
	for p := from; p < to; p += block {
		n := min(block, to-p)
		part := b[:4*n]
		off := headerSize + 4*p
		if _, err := w.wav.ReadAt(part, off); err != nil {
			return w.failed(err)
		}
		for i := int64(0); i < n; i++ {
			part[4*i+2], part[4*i+3] = 0, 0
		}
		if _, err := w.wav.WriteAt(part, off); err != nil {
			return w.failed(err)
		}
	}
	return nil
}

// flush writes what is more than window behind the latest audio, once a
// chunk of it is due, or everything (at the end).
func (w *writer) flush(all bool) error {
	if w.err != nil || w.full {
		return nil
	}
	limit := w.end()
	if !all {
		limit = max(w.latest-w.samples(window), w.end()-w.samples(maxAhead))
		if limit-w.base < w.samples(chunk) {
			return nil
		}
	}
	if limit*4 > maxData {
		limit, w.full = maxData/4, true
	}
	if limit <= w.base {
		return nil
	}
	w.grow(limit)
	n := limit - w.base
	b := slices.Grow(w.out[:0], int(4*n))[:4*n]
	w.out = b
	for i, s := range w.buf[:2*n] {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
	}
	if _, err := w.wav.WriteAt(b, headerSize+4*w.base); err != nil {
		return w.failed(err)
	}
	w.buf = append(w.buf[:0], w.buf[2*n:]...)
	w.base = limit
	return w.header()
}

// header writes the WAV header for what the file holds.
func (w *writer) header() error {
	data := uint32(4 * w.base)
	h := make([]byte, 0, headerSize)
	le := binary.LittleEndian
	h = append(h, "RIFF"...)
	h = le.AppendUint32(h, 36+data)
	h = append(h, "WAVEfmt "...)
	h = le.AppendUint32(h, 16)
	h = le.AppendUint16(h, 1) // PCM
	h = le.AppendUint16(h, 2) // stereo
	h = le.AppendUint32(h, uint32(w.rate))
	h = le.AppendUint32(h, uint32(w.rate)*4) // bytes a second
	h = le.AppendUint16(h, 4)                // bytes a frame
	h = le.AppendUint16(h, 16)               // bits a sample
	h = append(h, "data"...)
	h = le.AppendUint32(h, data)
	if _, err := w.wav.WriteAt(h, 0); err != nil {
		return w.failed(err)
	}
	return nil
}

// writeLine appends one line to the transcript, in one write.
func (w *writer) writeLine(l *line, at time.Time) error {
	l.At = seconds(max(0, at.Sub(w.start).Seconds()))
	b, err := json.Marshal(l)
	if err != nil {
		return w.failed(err)
	}
	if _, err := w.txt.Write(append(b, '\n')); err != nil {
		return w.failed(err)
	}
	return nil
}

// finish writes everything held and closes the files.
func (w *writer) finish() error {
	err := w.flush(true)
	return errors.Join(err, w.close())
}

func (w *writer) close() error {
	return errors.Join(w.wav.Close(), w.txt.Close())
}

func (w *writer) failed(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}
