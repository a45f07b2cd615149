package speech

import (
	"context"
	"time"
)

// TTS speaks text. Providers: flite (offline, cgo) and OpenAI-compatible
// /v1/audio/speech.
type TTS interface {
	// SampleRate of the mono PCM that Synthesize produces.
	SampleRate() int
	// Synthesize speaks text, handing PCM to emit as it is made, in order,
	// from the calling goroutine. It returns when the text is spoken, when
	// emit returns an error (which it returns), or promptly once ctx ends.
	// Safe for concurrent use.
	Synthesize(ctx context.Context, text string, emit func(pcm []int16) error) error
}

// ASR recognises speech. Providers: pocketsphinx (offline, cgo) and
// OpenAI-compatible /v1/audio/transcriptions.
type ASR interface {
	// SampleRate of the mono PCM that recognisers take.
	SampleRate() int
	// NewCall reserves a recogniser for one call; Close releases it. A
	// recogniser keeps state between the utterances of its call (as
	// pocketsphinx does), so calls do not share one. partial, if not nil,
	// is called with the best guess so far while an utterance is being
	// recognised, from the recogniser's own goroutine. Safe for concurrent
	// use.
	NewCall(ctx context.Context, partial func(text string)) (Recognizer, error)
}

// Recognizer is one call's speech recogniser. Write, End and Close are
// called from one goroutine (the call's).
type Recognizer interface {
	// Write queues audio of the current utterance, starting one if none is
	// open. It never waits for recognition; a recogniser that falls too far
	// behind returns an error and the audio is dropped.
	Write(pcm []int16) error
	// End closes the utterance and returns its final transcript ("" for
	// none).
	End(ctx context.Context) (string, error)
	// Close releases the recogniser; an open utterance is dropped.
	Close()
}

// Lagger is a Recognizer that knows how far its words lag the audio: how
// much of what was written its latest partial words do not yet cover
// (audio queued, or decoded since its last partial). A call waits for
// them to catch up before it ends a turn on what they say. Lag is safe
// to call from the goroutine that writes.
type Lagger interface {
	Lag() time.Duration
}
