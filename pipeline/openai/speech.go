package openai

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/speech"
)

// Speech speaks text through POST {base}/audio/speech with
// response_format "pcm" (16-bit little-endian mono), read as it streams.
type Speech struct {
	cfg   Config
	voice string
	rate  int
}

var _ speech.TTS = (*Speech)(nil)

// NewSpeech returns a TTS client. voice defaults to "alloy"; rate is the
// sample rate the server sends PCM at (OpenAI: 24000, the default).
func NewSpeech(cfg Config, voice string, rate int) (*Speech, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if voice == "" {
		voice = "alloy"
	}
	if rate <= 0 {
		rate = 24000
	}
	return &Speech{cfg: cfg, voice: voice, rate: rate}, nil
}

// SampleRate implements speech.TTS.
func (s *Speech) SampleRate() int { return s.rate }

type speechRequest struct {
	Model          string `json:"model"`
	Input          string `json:"input"`
	Voice          string `json:"voice"`
	ResponseFormat string `json:"response_format"`
}

// Synthesize implements speech.TTS.
func (s *Speech) Synthesize(ctx context.Context, text string, emit func(pcm []int16) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	resp, err := post(ctx, &s.cfg, "/audio/speech", speechRequest{Model: s.cfg.Model, Input: text, Voice: s.voice, ResponseFormat: "pcm"})
	if err != nil {
		return fmt.Errorf("tts %w", err)
	}
	defer resp.Body.Close()
	// 20 ms at the server's rate per read; a sample split across reads is
	// carried over.
	buf := make([]byte, s.rate/50*2)
	var carry []byte
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			data := append(carry, buf[:n]...)
			whole := len(data) &^ 1
			pcm := make([]int16, whole/2)
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
			}
			carry = append(carry[:0], data[whole:]...)
			if len(pcm) > 0 {
				if err := emit(pcm); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("tts upstream: reading audio: %w", rerr)
		}
	}
}

// Transcription recognises an utterance through POST
// {base}/audio/transcriptions, uploading it as a WAV file when the
// utterance ends. The endpoint is not streaming, so there are no partial
// results.
type Transcription struct {
	cfg      Config
	rate     int
	language string
	maxSamp  int
}

var _ speech.ASR = (*Transcription)(nil)

// NewTranscription returns an ASR client that uploads audio at rate Hz
// (default 16000) and language ("" lets the server detect it).
func NewTranscription(cfg Config, rate int, language string) (*Transcription, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if rate <= 0 {
		rate = 16000
	}
	return &Transcription{cfg: cfg, rate: rate, language: language, maxSamp: rate * 60}, nil
}

// SampleRate implements speech.ASR.
func (t *Transcription) SampleRate() int { return t.rate }

// NewCall implements speech.ASR.
func (t *Transcription) NewCall(ctx context.Context, partial func(string)) (speech.Recognizer, error) {
	return &utterance{t: t}, nil
}

// ErrTooLong is returned by Write past 60 s of audio in one utterance.
var ErrTooLong = errors.New("asr: an utterance longer than 60 s; audio dropped")

type utterance struct {
	t   *Transcription
	pcm []int16
}

func (u *utterance) Write(pcm []int16) error {
	if len(u.pcm)+len(pcm) > u.t.maxSamp {
		return ErrTooLong
	}
	u.pcm = append(u.pcm, pcm...)
	return nil
}

func (u *utterance) Close() { u.pcm = nil }

func (u *utterance) End(ctx context.Context) (string, error) {
	pcm := u.pcm
	u.pcm = nil
	if len(pcm) == 0 {
		return "", nil
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "utterance.wav")
	_, _ = fw.Write((&media.WAV{Rate: u.t.rate, Channels: 1, Samples: pcm}).Bytes())
	_ = mw.WriteField("model", u.t.cfg.Model)
	_ = mw.WriteField("response_format", "json")
	if u.t.language != "" {
		_ = mw.WriteField("language", u.t.language)
	}
	_ = mw.Close()
	ctx, cancel := context.WithTimeout(ctx, u.t.cfg.Timeout)
	defer cancel()
	resp, err := do(ctx, &u.t.cfg, "/audio/transcriptions", mw.FormDataContentType(), body.Bytes())
	if err != nil {
		return "", fmt.Errorf("asr %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Text string `json:"text"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return "", fmt.Errorf("asr upstream: bad JSON: %w", err)
	}
	return out.Text, nil
}
