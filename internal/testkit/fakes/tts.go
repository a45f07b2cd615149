package fakes

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parleyhq/parley/pipeline/speech"
)

// TTS is a fake speech.TTS whose audio a test can count: a text of n
// characters lasts n × PerChar, a 440 Hz tone handed over in chunks of
// Chunk.
type TTS struct {
	// Rate is its SampleRate; default 16000.
	Rate int
	// PerChar is the audio made per character of text; default 20 ms
	// (a character is a frame).
	PerChar time.Duration
	// Chunk is how much audio each emit gets; default 20 ms.
	Chunk time.Duration
	// Fail, if set, is asked about each text; an error it returns is
	// what Synthesize fails with once half of the text's audio is out.
	Fail func(text string) error
	// Done, if set, runs once a text's audio is all emitted, before
	// Synthesize returns: a synthesiser slow to end its stream can block
	// in it.
	Done func(text string)

	mu      sync.Mutex
	texts   []string
	emitted int // samples, of every text
	changes changes
}

// Amplitude is the peak of the fake's tone.
const Amplitude = 8000

// SampleRate implements speech.TTS.
func (t *TTS) SampleRate() int {
	if t.Rate <= 0 {
		return 16000
	}
	return t.Rate
}

// Samples is how many samples Synthesize makes of text.
func (t *TTS) Samples(text string) int {
	per := t.PerChar
	if per <= 0 {
		per = 20 * time.Millisecond
	}
	d := per * time.Duration(utf8.RuneCountInString(text))
	return int(d * time.Duration(t.SampleRate()) / time.Second)
}

// Synthesize implements speech.TTS, on the caller's goroutine.
func (t *TTS) Synthesize(ctx context.Context, text string, emit func(pcm []int16) error) error {
	t.mu.Lock()
	t.texts = append(t.texts, text)
	t.mu.Unlock()
	t.changes.changed()
	n, fail := t.Samples(text), error(nil)
	if t.Fail != nil {
		if fail = t.Fail(text); fail != nil {
			n /= 2
		}
	}
	chunk := t.chunk()
	for off := 0; off < n; off += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		pcm := make([]int16, min(chunk, n-off))
		for i := range pcm { // the phase runs on across chunks
			pcm[i] = int16(Amplitude * math.Sin(2*math.Pi*440*float64(off+i)/float64(t.SampleRate())))
		}
		if err := emit(pcm); err != nil {
			return err
		}
		t.mu.Lock()
		t.emitted += len(pcm)
		t.mu.Unlock()
		t.changes.changed()
	}
	if fail == nil && t.Done != nil {
		t.Done(text)
	}
	return fail
}

func (t *TTS) chunk() int {
	d := t.Chunk
	if d <= 0 {
		d = 20 * time.Millisecond
	}
	return max(1, int(d*time.Duration(t.SampleRate())/time.Second))
}

// Texts are the texts Synthesize was asked to speak, in order.
func (t *TTS) Texts() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.texts...)
}

// Emitted is how many samples emit has taken, of every text.
func (t *TTS) Emitted() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.emitted
}

// WaitTexts waits until Synthesize has been asked n texts and returns
// them.
func (t *TTS) WaitTexts(tb testing.TB, n int) []string {
	tb.Helper()
	t.changes.wait(tb, fmt.Sprintf("%d texts to speak", n), func() bool { return len(t.Texts()) >= n })
	return t.Texts()
}

// WaitEmitted waits until emit has taken n samples, of every text.
func (t *TTS) WaitEmitted(tb testing.TB, n int) {
	tb.Helper()
	t.changes.wait(tb, fmt.Sprintf("%d samples synthesised", n), func() bool { return t.Emitted() >= n })
}

// WaitFor waits until cond, asked each time Synthesize starts a text or
// emit returns, holds: e.g. that the audio emitted has reached a queue.
func (t *TTS) WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	t.changes.wait(tb, what, cond)
}

var _ speech.TTS = (*TTS)(nil)
