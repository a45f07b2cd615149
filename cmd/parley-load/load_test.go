package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/hraban/opus.v2"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/media/g711"
)

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := summarize(d, 0)
	if s.P50 != 50 || s.P95 != 95 || s.P99 != 99 || s.Max != 100 || s.N != 100 {
		t.Fatalf("%+v", s)
	}
	if s := summarize(d, 10*time.Millisecond); s.P50 != 40 {
		t.Fatalf("minus the upstream's time: p50 %v", s.P50)
	}
	if s := summarize(nil, 0); s.N != 0 {
		t.Fatalf("empty: %+v", s)
	}
}

// The fake upstream speaks the real formats: chat deltas and, for a list
// of prompts, one choice per prompt by index, each ending with stop.
func TestFakeUpstreamFormats(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := newUpstream(upstreamConfig{Words: 3, BatchConc: 2}).serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lines := func(path, body string) []string {
		resp, err := http.Post("http://"+addr+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "data: ") {
				out = append(out, strings.TrimPrefix(l, "data: "))
			}
		}
		return out
	}
	chat := lines("/v1/chat/completions", `{"model":"m","messages":[],"stream":true}`)
	if len(chat) != 5 || chat[len(chat)-1] != "[DONE]" || !strings.Contains(chat[0], `"delta":{"content":"word "}`) {
		t.Fatalf("chat stream: %q", chat)
	}
	comp := lines("/v1/completions", `{"model":"m","prompt":["a","b"],"stream":true}`)
	stops := map[string]bool{}
	for _, l := range comp {
		if strings.Contains(l, `"finish_reason":"stop"`) {
			stops[l[strings.Index(l, `"index":`):strings.Index(l, `,"text"`)]] = true
		}
	}
	if len(comp) != 7 || comp[6] != "[DONE]" || len(stops) != 2 {
		t.Fatalf("completions stream: %q", comp)
	}
}

// The voice scenario's microphone: flite speech as 20 ms Opus packets that
// decode back to speech, and a silence packet.
func TestSpeechPackets(t *testing.T) {
	speech, silence, err := speechPackets("what time is it")
	if err != nil {
		t.Fatal(err)
	}
	if len(speech) < 25 || len(silence) == 0 {
		t.Fatalf("%d speech packets, silence %d bytes", len(speech), len(silence))
	}
	dec, err := opus.NewDecoder(48000, 1)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 960)
	var energy float64
	for i, p := range speech {
		n, err := dec.Decode(p, pcm)
		if err != nil || n != 960 {
			t.Fatalf("packet %d: %d samples, %v", i, n, err)
		}
		for _, s := range pcm[:n] {
			energy += float64(s) * float64(s)
		}
	}
	if rms := math.Sqrt(energy / float64(960*len(speech))); rms < 300 {
		t.Fatalf("rms %.0f: not speech", rms)
	}
}

// The zero-cost speech fakes answer in the OpenAI wire formats.
func TestFakeSpeechEndpoints(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := newUpstream(upstreamConfig{Transcript: "what time is it"}).serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr+"/v1/audio/transcriptions", "multipart/form-data; boundary=x", strings.NewReader("--x--"))
	if err != nil {
		t.Fatal(err)
	}
	var tr struct{ Text string }
	_ = json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if tr.Text != "what time is it" {
		t.Fatalf("transcript %q", tr.Text)
	}
	resp, err = http.Post("http://"+addr+"/v1/audio/speech", "application/json", strings.NewReader(`{"model":"tts-1","input":"Hello.","voice":"alloy","response_format":"pcm"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := 2 * len("Hello.") * 24000 * 60 / 1000; len(b) != want {
		t.Fatalf("%d bytes of PCM, want %d (60 ms per character at 24 kHz)", len(b), want)
	}
}

// The phone scenario's line: its mu-law codes are G.711's (the server's
// own codec, in this test only: the load generator imports nothing of
// the server), and flite's speech makes whole 20 ms frames of it.
func TestPhoneLine(t *testing.T) {
	for v := int32(-32768); v <= 32767; v += 7 {
		if got, want := muLaw(v), g711.MuLaw.Append(nil, []int16{int16(v)})[0]; got != want {
			t.Fatalf("mu-law of %d: %#x, want %#x", v, got, want)
		}
	}
	speech, silence, err := mulawFrames("what time is it")
	if err != nil {
		t.Fatal(err)
	}
	if len(speech) < 25 || len(silence) != 160 || silence[0] != 0xff {
		t.Fatalf("%d frames, silence %x", len(speech), silence[:2])
	}
	loud := 0
	for _, f := range speech {
		if len(f) != 160 {
			t.Fatalf("a frame of %d bytes", len(f))
		}
		if testkit.RMS(g711.MuLaw.AppendPCM(nil, f)) > 1000 {
			loud++
		}
	}
	if loud < len(speech)/3 {
		t.Fatalf("only %d of %d frames are speech", loud, len(speech))
	}
}

// -server-env takes KEY=VALUE pairs only (an empty value is one).
func TestServerEnv(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{{"GOGC=400", true}, {"PARLEY_MEMORY_LIMIT=", true}, {"GOGC", false}, {"=400", false}, {"GO GC=1", false}} {
		t.Run(tc.in, func(t *testing.T) {
			var e envList
			if err := e.Set(tc.in); (err == nil) != tc.ok {
				t.Fatalf("Set(%q): %v, want ok %v", tc.in, err, tc.ok)
			}
		})
	}
}

func TestRecoveredAfter(t *testing.T) {
	for _, tc := range []struct {
		name string
		each []int
		n    int
		want int
	}{
		{"at once", []int{100, 100, 100}, 3, 0},
		{"after two seconds", []int{10, 50, 100, 100}, 4, 2},
		{"fell back", []int{100, 10, 100}, 3, 2},
		{"never", []int{100, 100, 10}, 3, -1},
		{"the series ends early", []int{100}, 3, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := recoveredAfter(tc.each, tc.n, 95); got != tc.want {
				t.Fatalf("recoveredAfter(%v, %d) = %d, want %d", tc.each, tc.n, got, tc.want)
			}
		})
	}
}

func TestPerSecond(t *testing.T) {
	t0 := time.Unix(100, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	got := perSecond(t0, []time.Time{at(10), at(999), at(2500), at(-5)})
	if want := []int{2, 0, 1}; !slices.Equal(got, want) {
		t.Fatalf("perSecond = %v, want %v", got, want)
	}
}

func TestSecondsWith(t *testing.T) {
	for _, tc := range []struct {
		counts []int
		want   string
	}{
		{nil, ""},
		{[]int{0, 0}, ""},
		{[]int{5}, "0"},
		{[]int{0, 3, 4, 1, 0, 0, 2}, "1-3, 6"},
		{[]int{1, 0, 1, 0, 1}, "0, 2, 4"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := secondsWith(tc.counts); got != tc.want {
				t.Fatalf("secondsWith(%v) = %q, want %q", tc.counts, got, tc.want)
			}
		})
	}
}
