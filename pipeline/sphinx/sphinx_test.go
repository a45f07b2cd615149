//go:build !nospeech

package sphinx

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/pipeline/flite"
)

// fliteSpeech is flite's kal16 voice (16 kHz), which pocketsphinx recognises
// almost perfectly.
func fliteSpeech(t *testing.T, text string) []int16 {
	t.Helper()
	v, err := flite.New(flite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var pcm []int16
	if err := v.Synthesize(context.Background(), text, func(p []int16) error { pcm = append(pcm, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	// Silence around it, as a VAD-cut utterance has.
	return append(append(make([]int16, 3200), pcm...), make([]int16, 3200)...)
}

func recognise(t *testing.T, r interface {
	Write([]int16) error
	End(context.Context) (string, error)
}, pcm []int16) string {
	t.Helper()
	for i := 0; i < len(pcm); i += 320 {
		if err := r.Write(pcm[i:min(i+320, len(pcm))]); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	text, err := r.End(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

func TestRecognisesFliteSpeech(t *testing.T) {
	a, err := New(Config{Decoders: 2})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var partials []string
	r, err := a.NewCall(context.Background(), func(p string) { mu.Lock(); partials = append(partials, p); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := recognise(t, r, fliteSpeech(t, "what time is it")); got != "what time is it" {
		t.Fatalf("recognised %q", got)
	}
	mu.Lock()
	if len(partials) == 0 {
		t.Fatal("no partial result while the utterance was decoded")
	}
	mu.Unlock()
	// A second utterance on the same call.
	if got := recognise(t, r, fliteSpeech(t, "hello there")); got != "hello there" {
		t.Fatalf("second utterance: %q", got)
	}
}

func TestCallsGetTheirOwnDecoders(t *testing.T) {
	a, err := New(Config{Decoders: 2})
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{"what time is it", "hello there"}
	var wg sync.WaitGroup
	for _, text := range texts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := a.NewCall(context.Background(), nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer r.Close()
			if got := recognise(t, r, fliteSpeech(t, text)); got != text {
				t.Errorf("recognised %q, want %q", got, text)
			}
		}()
	}
	wg.Wait()

	// The pool is bounded: with both decoders taken, a third call waits
	// and then is refused.
	r1, _ := a.NewCall(context.Background(), nil)
	r2, _ := a.NewCall(context.Background(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := a.NewCall(ctx, nil); err != ErrNoDecoder {
		t.Fatalf("third call with two decoders: %v", err)
	}
	r1.Close()
	r3, err := a.NewCall(context.Background(), nil)
	if err != nil {
		t.Fatalf("after a call ended: %v", err)
	}
	r2.Close()
	r3.Close()
}

// A decoder that served a call starts the next one from the normalisation
// it was loaded with, not from what the last caller's audio taught it, so
// that what a call hears does not depend on who called before.
func TestEachCallStartsAsLoaded(t *testing.T) {
	a, err := New(Config{Decoders: 1}) // one decoder: every call gets it
	if err != nil {
		t.Fatal(err)
	}
	loaded := a.idle[0].normalisation()
	speech := fliteSpeech(t, "what time is it")
	// The first caller, on a muffled line: each sample the mean of its
	// last four, which tilts the spectrum the normaliser learns.
	muffled := make([]int16, len(speech))
	for i := range speech {
		var sum int
		for k := max(0, i-3); k <= i; k++ {
			sum += int(speech[k])
		}
		muffled[i] = int16(sum / 4)
	}
	var learnt []float32
	for call, pcm := range [][]int16{muffled, speech} {
		r, err := a.NewCall(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		d := r.(*recognizer).dec
		if got := d.normalisation(); !slices.Equal(got, loaded) {
			t.Fatalf("call %d starts from %v, not the %v loaded", call+1, got, loaded)
		}
		for range 3 {
			recognise(t, r, pcm)
		}
		if call == 0 {
			learnt = d.normalisation()
		}
		r.Close()
	}
	if slices.Equal(learnt, loaded) {
		t.Fatal("the muffled call taught the normaliser nothing: the test shows nothing")
	}
}
