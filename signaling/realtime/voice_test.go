package realtime_test

import (
	"encoding/base64"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/media/g711"
	"github.com/parleyhq/parley/media/pcm"
)

// voiceServer has the fake recogniser and synthesiser (16 kHz, a 440 Hz
// tone of 20 ms a character) and the echo model.
func voiceServer(t *testing.T, heard ...string) (*server, *fakes.ASR) {
	asr := &fakes.ASR{}
	for _, h := range heard {
		asr.Script = append(asr.Script, fakes.Utterance{Text: h})
	}
	return start(t, &fakes.Echo{}, opts{asr: asr, tts: &fakes.TTS{}}), asr
}

// speak appends an utterance at rate (a tone loud enough for the VAD,
// after silence, then silence that ends it), encoded as law when it is
// not 0, in 100 ms appends, a little faster than real time.
func speak(c *rt, rate int, law g711.Law, tone time.Duration) {
	silence := func(d time.Duration) []int16 { return make([]int16, int(d.Seconds()*float64(rate))) }
	var all []int16
	all = append(all, silence(500*time.Millisecond)...)
	all = append(all, testkit.Tone(440, rate, int(tone.Seconds()*float64(rate)), fakes.Amplitude)...)
	all = append(all, silence(900*time.Millisecond)...)
	step := rate / 10
	for off := 0; off < len(all); off += step {
		chunk := all[off:min(off+step, len(all))]
		var b []byte
		if law != 0 {
			b = law.Append(nil, chunk)
		} else {
			b = pcm.Append(nil, chunk)
		}
		c.send(map[string]any{"type": "input_audio_buffer.append", "audio": base64.StdEncoding.EncodeToString(b)})
		time.Sleep(50 * time.Millisecond)
	}
}

// A spoken turn with server VAD, as the clients expect it: speech
// started and stopped, the committed user item with its transcript, and
// a response whose audio (PCM16 at 24 kHz, a 20 ms frame a delta) comes
// between its created and its done, with the transcript.
func TestVoiceTurn(t *testing.T) {
	s, _ := voiceServer(t, "what time is it")
	c := connect(t, s)
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"type": "realtime",
		"audio": map[string]any{"input": map[string]any{"transcription": map[string]any{"model": "gpt-4o-mini-transcribe"}}}}})
	_, upd := c.waitType(0, "session.updated")
	if upd.str("audio.input.turn_detection.type") != "" || upd.str("session.audio.input.turn_detection.type") != "server_vad" ||
		upd.get("session.audio.input.turn_detection.interrupt_response") != true {
		t.Fatalf("session %v", upd)
	}
	speak(c, 24000, 0, 600*time.Millisecond)
	end, done := c.waitType(0, "response.done")
	evs := c.all()[:end+1]
	got := typesOf(evs, "response.output_audio.delta", "response.output_audio_transcript.delta", "session.created", "session.updated")
	want := []string{"input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
		"conversation.item.added", "conversation.item.done", "conversation.item.input_audio_transcription.completed",
		"response.created", "response.output_item.added", "conversation.item.added", "response.content_part.added",
		"response.output_audio.done", "response.output_audio_transcript.done", "response.content_part.done",
		"response.output_item.done", "conversation.item.done", "response.done"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events\n%v\nwant\n%v", got, want)
	}
	_, tr := c.waitType(0, "conversation.item.input_audio_transcription.completed")
	if tr.str("transcript") != "what time is it" || tr.str("item_id") != "item_u1" {
		t.Fatalf("transcription %v", tr)
	}
	_, st := c.waitType(0, "input_audio_buffer.speech_started")
	if ms := st.num("audio_start_ms"); ms < 400 || ms > 600 {
		t.Fatalf("speech started at %v ms; the tone starts at 500", ms)
	}
	reply := "echo: what time is it"
	var audio []byte
	for _, e := range evs {
		if e.typ() != "response.output_audio.delta" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(e.str("delta"))
		if err != nil || len(b) != 960 {
			t.Fatalf("a delta of %d bytes (%v): want one 20 ms frame of PCM16 at 24 kHz, 960", len(b), err)
		}
		if e.str("item_id") != "item_a1" || e.str("response_id") != "resp_1" {
			t.Fatalf("delta %v", e)
		}
		audio = append(audio, b...)
	}
	// 20 ms a character, the last frame padded; the resampler's delay may
	// add a frame.
	if n := len(audio) / 960; n < len(reply) || n > len(reply)+2 {
		t.Fatalf("%d frames of audio for %d characters", n, len(reply))
	}
	if lvl := level(pcm.AppendSamples(nil, audio)); lvl < 2000 {
		t.Fatalf("the audio's level is %v: not the synthesiser's tone", lvl)
	}
	if done.str("response.status") != "completed" || !strings.Contains(jsonOf(done), `"transcript":"`+reply+`"`) {
		t.Fatalf("response.done %v", done)
	}
}

// level is the RMS of pcm.
func level(pcm []int16) float64 {
	var sum float64
	for _, s := range pcm {
		sum += float64(s) * float64(s)
	}
	if len(pcm) == 0 {
		return 0
	}
	return math.Sqrt(sum / float64(len(pcm)))
}

// G.711 both ways, as a telephony bridge sets it: mu-law in, A-law out,
// a 20 ms delta of 160 bytes.
func TestVoiceG711(t *testing.T) {
	s, _ := voiceServer(t, "hello")
	c := connect(t, s)
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"audio": map[string]any{
		"input": map[string]any{"format": map[string]any{"type": "audio/pcmu"}}, "output": map[string]any{"format": map[string]any{"type": "audio/pcma"}}}}})
	_, upd := c.waitType(0, "session.updated")
	if upd.str("session.audio.input.format.type") != "audio/pcmu" || upd.str("session.audio.output.format.type") != "audio/pcma" {
		t.Fatalf("session %v", upd)
	}
	speak(c, 8000, g711.MuLaw, 600*time.Millisecond)
	end, _ := c.waitType(0, "response.done")
	var pcmOut []int16
	for _, e := range c.all()[:end] {
		if e.typ() == "response.output_audio.delta" {
			b, _ := base64.StdEncoding.DecodeString(e.str("delta"))
			if len(b) != 160 {
				t.Fatalf("a G.711 delta of %d bytes", len(b))
			}
			pcmOut = g711.ALaw.AppendPCM(pcmOut, b)
		}
	}
	if len(pcmOut) == 0 || level(pcmOut) < 2000 {
		t.Fatalf("%d samples at level %v", len(pcmOut), level(pcmOut))
	}
}

// Text replies to speech: with output_modalities ["text"], the caller's
// turn is a user item and the connection asks for a text response.
func TestVoiceInTextOut(t *testing.T) {
	s, _ := voiceServer(t, "hello there")
	c := connect(t, s)
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"output_modalities": []any{"text"}}})
	c.waitType(0, "session.updated")
	speak(c, 24000, 0, 600*time.Millisecond)
	_, done := c.waitType(0, "response.done")
	if !strings.Contains(jsonOf(done), `"text":"echo: hello there"`) {
		t.Fatalf("response.done %v", done)
	}
	for _, e := range c.all() {
		if e.typ() == "response.output_audio.delta" {
			t.Fatal("audio in a text session")
		}
	}
}

// The beta names: a voice turn's events as beta clients read them.
func TestBetaNames(t *testing.T) {
	s, _ := voiceServer(t, "hello")
	c := dial(t, s.URL, http.Header{"Openai-Beta": {"realtime=v1"}})
	c.waitType(0, "session.created")
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw", "modalities": []any{"audio", "text"}}})
	_, upd := c.waitType(0, "session.updated")
	if upd.str("session.output_audio_format") != "g711_ulaw" {
		t.Fatalf("session %v", upd)
	}
	speak(c, 8000, g711.MuLaw, 600*time.Millisecond)
	end, _ := c.waitType(0, "response.done")
	got := strings.Join(typesOf(c.all()[:end+1]), " ")
	for _, want := range []string{"conversation.item.created", "response.audio.delta", "response.audio_transcript.delta", "response.audio.done", "response.audio_transcript.done"} {
		if !strings.Contains(got, want) {
			t.Fatalf("no %s in %s", want, got)
		}
	}
	for _, ga := range []string{"conversation.item.added", "response.output_audio.delta"} {
		if strings.Contains(got, ga) {
			t.Fatalf("GA's %s in a beta session", ga)
		}
	}
}

// server_vad's idle_timeout_ms: the caller silent that long after a
// response, the model is asked to go on: timeout_triggered, then a
// spoken response.
func TestIdleTimeout(t *testing.T) {
	s, _ := voiceServer(t, "hello")
	c := connect(t, s)
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"audio": map[string]any{"input": map[string]any{
		"turn_detection": map[string]any{"type": "server_vad", "idle_timeout_ms": 300}}}}})
	_, upd := c.waitType(0, "session.updated")
	if upd.num("session.audio.input.turn_detection.idle_timeout_ms") != 300 {
		t.Fatalf("session %v", upd)
	}
	speak(c, 24000, 0, 600*time.Millisecond)
	first, _ := c.waitType(0, "response.done")
	i, trig := c.waitType(first, "input_audio_buffer.timeout_triggered")
	if trig.str("item_id") == "" {
		t.Fatalf("timeout_triggered %v", trig)
	}
	_, done := c.wait(i, "the response it asked for", func(e ev) bool { return e.typ() == "response.done" })
	if done.str("response.id") != "resp_2" || !strings.Contains(jsonOf(done), `"output_audio"`) {
		t.Fatalf("response.done %v", done)
	}
}
