//go:build nospeech

package flite

import (
	"context"
	"errors"
)

// Config of a Voice.
type Config struct {
	Voice string
}

// Voice is unavailable in a nospeech build.
type Voice struct{}

var errNoSpeech = errors.New("flite: this build has no offline speech (built with -tags nospeech); use an OpenAI-compatible TTS_BASE_URL")

// New reports that this build has no flite.
func New(Config) (*Voice, error) { return nil, errNoSpeech }

// SampleRate implements speech.TTS.
func (*Voice) SampleRate() int { return 0 }

// Synthesize implements speech.TTS.
func (*Voice) Synthesize(context.Context, string, func([]int16) error) error { return errNoSpeech }
