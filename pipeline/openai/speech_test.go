package openai

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parleyhq/parley/media"
)

func TestSpeechStreamsPCM(t *testing.T) {
	var req speechRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/audio/speech" || r.Header.Get("Authorization") != "Bearer "+key {
			http.Error(w, "wrong", 400)
			return
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "audio/pcm")
		// 1000 samples, sent in odd-sized pieces so samples straddle writes.
		var pcm bytes.Buffer
		for i := 0; i < 1000; i++ {
			_ = binary.Write(&pcm, binary.LittleEndian, int16(i))
		}
		b := pcm.Bytes()
		for i := 0; i < len(b); i += 333 {
			w.Write(b[i:min(i+333, len(b))])
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	s, err := NewSpeech(Config{BaseURL: srv.URL + "/v1", Model: "tts-1", APIKey: key}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int16
	chunks := 0
	if err := s.Synthesize(context.Background(), "Hello.", func(p []int16) error { got = append(got, p...); chunks++; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1000 || got[0] != 0 || got[999] != 999 || got[500] != 500 {
		t.Fatalf("got %d samples, wrong values", len(got))
	}
	if req.Input != "Hello." || req.ResponseFormat != "pcm" || req.Voice != "alloy" || req.Model != "tts-1" || s.SampleRate() != 24000 {
		t.Fatalf("request %+v", req)
	}
}

func TestSpeechErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(429)
		w.Write([]byte(`{"error":{"message":"slow down"}}`))
	}))
	defer srv.Close()
	s, _ := NewSpeech(Config{BaseURL: srv.URL, Model: "m", APIKey: key}, "", 0)
	err := s.Synthesize(context.Background(), "x", func([]int16) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "429") || !strings.Contains(err.Error(), "slow down") || strings.Contains(err.Error(), key) {
		t.Fatalf("got %v", err)
	}
}

func TestTranscriptionUploadsWAV(t *testing.T) {
	var wav *media.WAV
	var model, format string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/audio/transcriptions" {
			http.NotFound(w, r)
			return
		}
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f, _, err := r.FormFile("file")
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		b, _ := io.ReadAll(f)
		wav, _ = media.ReadWAV(bytes.NewReader(b))
		model, format = r.FormValue("model"), r.FormValue("response_format")
		w.Write([]byte(`{"text":"what time is it"}`))
	}))
	defer srv.Close()
	asr, err := NewTranscription(Config{BaseURL: srv.URL + "/v1", Model: "whisper-1"}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := asr.NewCall(context.Background(), nil)
	defer r.Close()
	for i := 0; i < 10; i++ {
		_ = r.Write(make([]int16, 320))
	}
	text, err := r.End(context.Background())
	if err != nil || text != "what time is it" {
		t.Fatalf("%q %v", text, err)
	}
	if wav == nil || wav.Rate != 16000 || len(wav.Samples) != 3200 || model != "whisper-1" || format != "json" {
		t.Fatalf("upload: %+v model %q format %q", wav, model, format)
	}
	// An empty utterance makes no request.
	wav = nil
	if text, err := r.End(context.Background()); text != "" || err != nil || wav != nil {
		t.Fatalf("empty utterance: %q %v", text, err)
	}
	if err := r.Write(make([]int16, 16000*61)); err != ErrTooLong {
		t.Fatalf("61 s: %v", err)
	}
}
