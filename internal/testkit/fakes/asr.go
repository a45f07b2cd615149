package fakes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/pipeline/speech"
)

// ASR is a fake speech.ASR whose recognisers hear what the test scripted.
type ASR struct {
	// Rate is the SampleRate its recognisers take; default 16000.
	Rate int
	// Script is what the n-th utterance of every call is recognised as
	// (past its end: "", no words).
	Script []Utterance
	// NewErr, if set, is what NewCall fails with.
	NewErr error
	// Lagging is how far its recognisers say their words lag the audio
	// (speech.Lagger); set it at any time.
	Lagging atomic.Int64 // a time.Duration

	mu      sync.Mutex
	calls   []*Recognizer
	changes changes
}

// Utterance is what one utterance is recognised as.
type Utterance struct {
	Text     string   // End's transcript
	Err      error    // End's error, if set
	Partials []string // handed to partial, one at each Write, in order
	// Wait, if set, holds End until it is closed (or End's context ends):
	// a recogniser that takes its time.
	Wait <-chan struct{}
}

// SampleRate implements speech.ASR.
func (a *ASR) SampleRate() int {
	if a.Rate <= 0 {
		return 16000
	}
	return a.Rate
}

// NewCall implements speech.ASR.
func (a *ASR) NewCall(ctx context.Context, partial func(text string)) (speech.Recognizer, error) {
	if a.NewErr != nil {
		return nil, a.NewErr
	}
	r := &Recognizer{asr: a, partial: partial}
	a.mu.Lock()
	a.calls = append(a.calls, r)
	a.mu.Unlock()
	a.changes.changed()
	return r, nil
}

// Calls are the recognisers made so far, oldest first.
func (a *ASR) Calls() []*Recognizer {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*Recognizer(nil), a.calls...)
}

// WaitCalls waits for n recognisers and returns them.
func (a *ASR) WaitCalls(tb testing.TB, n int) []*Recognizer {
	tb.Helper()
	a.changes.wait(tb, fmt.Sprintf("%d recognisers", n), func() bool { return len(a.Calls()) >= n })
	return a.Calls()
}

// ErrClosed is what Write returns after Close.
var ErrClosed = errors.New("fakes: recogniser closed")

// Recognizer is one call's fake recogniser (speech.Recognizer). It
// records the audio of each utterance and each Write's length. Partials
// are handed over from Write's goroutine: the fake has none of its own.
type Recognizer struct {
	asr     *ASR
	partial func(string)

	mu       sync.Mutex
	done     [][]int16 // ended utterances
	open     []int16
	writes   []int // samples of each Write
	partials int   // of the open utterance, handed over
	ends     int   // End calls begun
	closed   bool
}

// Lag implements speech.Lagger: the ASR's Lagging.
func (r *Recognizer) Lag() time.Duration { return time.Duration(r.asr.Lagging.Load()) }

// Write implements speech.Recognizer.
func (r *Recognizer) Write(pcm []int16) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.open = append(r.open, pcm...)
	r.writes = append(r.writes, len(pcm))
	var partial string
	if u := r.utterance(len(r.done)); r.partials < len(u.Partials) {
		partial = u.Partials[r.partials]
		r.partials++
	}
	r.mu.Unlock()
	if partial != "" && r.partial != nil {
		r.partial(partial)
	}
	r.asr.changes.changed()
	return nil
}

// End implements speech.Recognizer: the scripted transcript of this
// utterance.
func (r *Recognizer) End(ctx context.Context) (string, error) {
	r.mu.Lock()
	u := r.utterance(len(r.done))
	r.done = append(r.done, r.open)
	r.open, r.partials = nil, 0
	r.ends++
	r.mu.Unlock()
	r.asr.changes.changed()
	if u.Wait != nil {
		select {
		case <-u.Wait:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return u.Text, u.Err
}

// Close implements speech.Recognizer.
func (r *Recognizer) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.asr.changes.changed()
}

// utterance is the script of the n-th utterance (from 0), under r.mu.
func (r *Recognizer) utterance(n int) Utterance {
	if n < len(r.asr.Script) {
		return r.asr.Script[n]
	}
	return Utterance{}
}

// Utterances are the audio of the utterances ended so far.
func (r *Recognizer) Utterances() [][]int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]int16(nil), r.done...)
}

// Writes are the lengths, in samples, of the Writes so far.
func (r *Recognizer) Writes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.writes...)
}

// Ends is how many times End was called (counted as it begins).
func (r *Recognizer) Ends() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ends
}

// Closed reports whether Close was called.
func (r *Recognizer) Closed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// WaitEnds waits until End has been called n times and returns the
// utterances' audio.
func (r *Recognizer) WaitEnds(tb testing.TB, n int) [][]int16 {
	tb.Helper()
	r.asr.changes.wait(tb, fmt.Sprintf("%d ended utterances", n), func() bool { return r.Ends() >= n })
	return r.Utterances()
}

// WaitFor waits until cond, asked after each Write, End or Close of r,
// holds: e.g. that another Write has come.
func (r *Recognizer) WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	r.asr.changes.wait(tb, what, cond)
}

var (
	_ speech.ASR        = (*ASR)(nil)
	_ speech.Recognizer = (*Recognizer)(nil)
)
