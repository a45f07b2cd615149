//go:build nospeech

package sphinx

import (
	"context"
	"errors"
	"time"

	"github.com/parleyhq/parley/pipeline/speech"
)

// Config of an ASR.
type Config struct {
	ModelDir     string
	Decoders     int
	Queue        int
	PartialEvery time.Duration
}

// ASR is unavailable in a nospeech build.
type ASR struct{}

var errNoSpeech = errors.New("sphinx: this build has no offline speech (built with -tags nospeech); use an OpenAI-compatible ASR_BASE_URL")

// New reports that this build has no pocketsphinx.
func New(Config) (*ASR, error) { return nil, errNoSpeech }

// SampleRate implements speech.ASR.
func (*ASR) SampleRate() int { return 16000 }

// NewCall implements speech.ASR.
func (*ASR) NewCall(context.Context, func(string)) (speech.Recognizer, error) {
	return nil, errNoSpeech
}
