//go:build !nospeech

package parley_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/opus"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/flite"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/pipeline/openai"
	"github.com/parleyhq/parley/pipeline/speech"
	"github.com/parleyhq/parley/pipeline/sphinx"
)

var (
	speechOnce sync.Once
	asr        *sphinx.ASR
	voice      *flite.Voice
	speechErr  error
)

// offline is the offline speech stack, loaded once per test binary.
func offline(t *testing.T) (*sphinx.ASR, *flite.Voice) {
	speechOnce.Do(func() {
		if asr, speechErr = sphinx.New(sphinx.Config{Decoders: 2}); speechErr == nil {
			voice, speechErr = flite.New(flite.Config{})
		}
	})
	if speechErr != nil {
		t.Fatal(speechErr)
	}
	return asr, voice
}

// opusSpeech is text spoken by flite kal16 as 20 ms Opus packets at 48 kHz,
// with silence before and after.
func opusSpeech(t *testing.T, v *flite.Voice, text string, before, after time.Duration) [][]byte {
	t.Helper()
	return opusSpeechIn(t, false, v, text, before, after)
}

// opusSpeechIn is opusSpeech; speech: in Opus's VoIP mode (SILK or
// hybrid), as a browser codes a voice.
func opusSpeechIn(t *testing.T, speech bool, v *flite.Voice, text string, before, after time.Duration) [][]byte {
	t.Helper()
	var pcm16 []int16
	if err := v.Synthesize(context.Background(), text, func(p []int16) error { pcm16 = append(pcm16, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	up, _ := media.NewResampler(16000, opus.Rate)
	pcm := make([]int16, int(before.Seconds()*opus.Rate))
	pcm = up.Process(pcm16, pcm)
	pcm = append(pcm, make([]int16, int(after.Seconds()*opus.Rate))...)
	return encodeOpusIn(t, speech, pcm)
}

type heard struct {
	events  []msg
	audio   [][]byte
	at      []time.Time // arrival of each audio frame
	audioAt []int       // for each event, how many audio frames had arrived
}

// callClient says hello with ws audio, streams pkts at real time, and reads
// until the reply to its first turn has been played (state listening after
// speaking) or the timeout.
func callClient(t *testing.T, url string, pkts [][]byte) *heard {
	t.Helper()
	return callOn(t, dial(t, url), pkts)
}

func callOn(t *testing.T, c *client, pkts [][]byte) *heard {
	t.Helper()
	return callRun(t, c, pkts, false)
}

// callRun is callOn; with allowErrors, error events are recorded, not
// failures.
func callRun(t *testing.T, c *client, pkts [][]byte, allowErrors bool) *heard {
	t.Helper()
	c.Send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "ws", "codec": "opus"}})
	return hearCall(t, c, pkts, allowErrors)
}

// hearCall streams pkts on c's call over the WebSocket, at real time, and
// reads until the reply to the caller's turn has been played (state
// listening after speaking).
func hearCall(t *testing.T, c *client, pkts [][]byte, allowErrors bool) *heard {
	t.Helper()
	h := &heard{}
	done := make(chan struct{})
	go func() { // the reader: ends when the reply has been heard or the socket fails
		defer close(done)
		spoke := false
		for {
			_ = c.WS.SetReadDeadline(time.Now().Add(30 * time.Second))
			kind, b, err := c.WS.ReadMessage()
			if err != nil {
				t.Errorf("read: %v", err)
				return
			}
			if kind == websocket.BinaryMessage {
				h.audio = append(h.audio, b)
				h.at = append(h.at, time.Now())
				continue
			}
			var ev msg
			_ = json.Unmarshal(b, &ev)
			ev.Raw = string(b)
			h.events = append(h.events, ev)
			h.audioAt = append(h.audioAt, len(h.audio))
			if ev.Type == "error" && !allowErrors {
				t.Errorf("error: %s", b)
			}
			if ev.Type == "state" && ev.Raw != "" {
				var st struct{ State string }
				_ = json.Unmarshal(b, &st)
				if st.State == "speaking" {
					spoke = true
				}
				if st.State == "listening" && spoke {
					return
				}
			}
		}
	}()
	if err := speak(c, pkts); err != nil {
		t.Fatalf("send audio: %v", err)
	}
	<-done
	return h
}

// speak sends pkts on c's socket at real time, a packet every 20 ms, as a
// microphone does; it stops at the first failed write.
func speak(c *client, pkts [][]byte) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for _, p := range pkts {
		<-tick.C
		if err := c.Write(websocket.BinaryMessage, p); err != nil {
			return err
		}
	}
	return nil
}

// remoteSpeech is the OpenAI-compatible recogniser and synthesiser on a
// fake speech server that hears transcript.
func remoteSpeech(t *testing.T, transcript string) (speech.ASR, speech.TTS, *sync.Map) {
	t.Helper()
	base, seen := fakeSpeechServer(t, transcript)
	asr, err := openai.NewTranscription(openai.Config{BaseURL: base, Model: "whisper-1"}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	tts, err := openai.NewSpeech(openai.Config{BaseURL: base, Model: "tts-1"}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return asr, tts, seen
}

// recorder is the offline responder, remembering the conversations it saw.
type recorder struct {
	*local.Responder
	mu    sync.Mutex
	convs [][]llm.Message
}

func (r *recorder) Stream(ctx context.Context, reqs []llm.Request, emit func(int, llm.Piece)) error {
	r.mu.Lock()
	r.convs = append(r.convs, llm.Messages(reqs)...)
	r.mu.Unlock()
	return r.Responder.Stream(ctx, reqs, emit)
}

func TestVoiceCallOverTheWebSocket(t *testing.T) {
	asr, v := offline(t)
	model := &recorder{Responder: local.New(local.Config{})}
	r := startReplica(t, newRedis(t), model, replicaOpts{asr: asr, tts: v})
	c := dial(t, r.URL)
	h := callOn(t, c, opusSpeech(t, v, "what time is it", 500*time.Millisecond, 1500*time.Millisecond))
	defer func() {
		// A typed turn in the middle of the call: answered in the same
		// session, with the spoken turn in its history.
		c.Send(map[string]any{"type": "text", "text": "and the date?"})
		evs := c.Until("reply.done", 2)
		if !strings.HasPrefix(evs[len(evs)-1].Text, "Today is ") {
			t.Fatalf("typed turn: %q", evs[len(evs)-1].Text)
		}
		model.mu.Lock()
		conv := model.convs[len(model.convs)-1]
		model.mu.Unlock()
		var got []string
		for _, m := range conv[1:] {
			got = append(got, m.Role+": "+m.Content)
		}
		if len(got) != 3 || got[0] != "user: what time is it" || !strings.HasPrefix(got[1], "assistant: It is ") || got[2] != "user: and the date?" {
			t.Fatalf("the typed turn's history: %q", got)
		}
	}()

	var final, done *msg
	var states []string
	for i, ev := range h.events {
		switch {
		case ev.Type == "transcript" && ev.Final:
			final = &h.events[i]
		case ev.Type == "reply.done":
			done = &h.events[i]
			if h.audioAt[i] != len(h.audio) {
				t.Fatalf("reply.done came after %d of %d audio frames: the audio must come first", h.audioAt[i], len(h.audio))
			}
		case ev.Type == "state":
			var st struct{ State string }
			_ = json.Unmarshal([]byte(ev.Raw), &st)
			states = append(states, st.State)
		}
	}
	if final == nil || final.Text != "what time is it" || !strings.Contains(final.Raw, `"source":"voice"`) {
		t.Fatalf("final transcript: %+v", final)
	}
	if done == nil || !strings.HasPrefix(done.Text, "It is ") {
		t.Fatalf("reply: %+v", done)
	}
	if got := strings.Join(states, ","); got != "listening,thinking,speaking,listening" {
		t.Fatalf("states %s", got)
	}
	// The turn's latency figures: all there, and consistent with each other.
	var lat *event.Latency
	for _, ev := range h.events {
		if ev.Type == "latency" {
			lat = &event.Latency{}
			_ = json.Unmarshal([]byte(ev.Raw), lat)
		}
	}
	// Voice-to-voice starts at the end of the caller's voiced audio, so it
	// holds the end-of-turn silence, reported as endpoint_ms; server_ms
	// starts at the decision. "What time is it" is a question: the
	// endpointing's short silence (300 ms, and pipeline/call's
	// TestEndpointing holds it to that on its fake clock), not the fixed
	// 600 ms of before, so the caller hears the answer sooner. Here, with
	// pocketsphinx's words coming every 300 ms of audio, the turn waits
	// for them to cover the silence's start: on a loaded machine, later.
	if lat == nil || lat.Turn != 1 || lat.ASR == nil || lat.VoiceToVoice == nil || lat.Endpoint == nil ||
		*lat.ASR < 0 || lat.LLMFirstToken < 0 || lat.TTSFirstAudio < 0 || lat.Server < *lat.ASR ||
		lat.EndpointWhy != "question" ||
		*lat.Endpoint < 300 || *lat.Endpoint >= 600 ||
		*lat.VoiceToVoice < *lat.Endpoint+lat.Server { // more: the audio's wait to be heard, on a loaded machine

		b, _ := json.Marshal(lat)
		t.Fatalf("latency event: %s", b)
	}
	t.Logf("latency: voice to voice %d ms = endpoint %d ms + server %d ms (asr %d ms, model first token %d ms, tts first audio %d ms)",
		*lat.VoiceToVoice, *lat.Endpoint, lat.Server, *lat.ASR, lat.LLMFirstToken, lat.TTSFirstAudio)

	// The audio decodes, and it is as long as the reply spoken by flite.
	dec, _ := opus.NewDecoder(opus.Rate)
	for i, p := range h.audio {
		if _, err := dec.Decode(p); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	var want int
	_ = v.Synthesize(context.Background(), done.Text, func(p []int16) error { want += len(p); return nil })
	wantFrames := want * 3 / opus.FrameSamples
	if n := len(h.audio); n < wantFrames*9/10 || n > wantFrames*11/10+2 {
		t.Fatalf("%d frames of bot audio; the reply spoken is about %d", n, wantFrames)
	}
	// Paced at real time, not sent at once: the frames arrive over most of
	// the audio's own duration.
	span := h.at[len(h.at)-1].Sub(h.at[0])
	if audio := time.Duration(len(h.audio)) * 20 * time.Millisecond; span < audio/2 {
		t.Fatalf("%v of audio arrived within %v", audio, span)
	}
}

func TestGarbageAudioIsDroppedAndTheCallGoesOn(t *testing.T) {
	asr, v := offline(t)
	r := startReplica(t, newRedis(t), local.New(local.Config{}), replicaOpts{asr: asr, tts: v, call: call.Config{}})
	c := dial(t, r.URL)
	c.Send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "ws"}})
	if ev := c.Next(); ev.Type != "session" {
		t.Fatalf("%s", ev.Raw)
	}
	c.SendRaw(websocket.BinaryMessage, []byte{0xff, 0xfe, 0xfd})
	for {
		ev := c.Next()
		if ev.Type == "error" {
			if ev.Code != "bad_request" || !strings.Contains(ev.Message, "not a 20 ms Opus packet") {
				t.Fatalf("%s", ev.Raw)
			}
			break
		}
	}
	// The call and the session go on: a typed turn is answered (and spoken).
	c.Send(map[string]any{"type": "text", "text": "what time is it"})
	evs := c.Until("reply.done", 1)
	if !strings.HasPrefix(evs[len(evs)-1].Text, "It is ") {
		t.Fatalf("reply %q", evs[len(evs)-1].Text)
	}
}

// Barge-in: the caller speaks over a long reply. The bot's audio stops
// once the caller's words say it is an interruption, and at the latest
// after BargeInAfter (600 ms) of the caller's voice (counted in 20 ms
// frames, the pacer's clock: the words come from the recogniser, whose
// speed depends on the machine, the backstop does not), interrupted
// arrives, the stored reply is a prefix of the full one, and the caller's
// words become the next turn.
func TestBargeIn(t *testing.T) {
	asr, v := offline(t)
	r := startReplica(t, newRedis(t), local.New(local.Config{}), replicaOpts{asr: asr, tts: v})
	// A browser's microphone in both of Opus's modes: WebCodecs at
	// 32 kbps sends a voice mostly in hybrid and the rest in CELT,
	// WebRTC in SILK or hybrid throughout.
	for _, mode := range []struct {
		name   string
		speech bool
	}{{"CELT", false}, {"VoIP mode", true}} {
		t.Run(mode.name, func(t *testing.T) { bargeIn(t, r.URL, v, mode.speech) })
	}
}

// bargeIn speaks over a long reply, in Opus's VoIP mode if speech, and
// checks that the bot stopped at once and the words became the next turn.
func bargeIn(t *testing.T, url string, v *flite.Voice, speech bool) {
	c := dial(t, url)
	c.Send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "ws"}})
	if ev := c.Next(); ev.Type != "session" {
		t.Fatalf("%s", ev.Raw)
	}
	full := local.New(local.Config{}).Reply("help") // about 8 s spoken

	type item struct {
		ev    msg
		audio bool
	}
	msgs := make(chan item, 10000)
	go func() { // ends when the socket closes
		for {
			kind, b, err := c.WS.ReadMessage()
			if err != nil {
				close(msgs)
				return
			}
			m := item{audio: kind == websocket.BinaryMessage}
			if !m.audio {
				_ = json.Unmarshal(b, &m.ev)
				m.ev.Raw = string(b)
			}
			msgs <- m
		}
	}()
	next := func() item {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatal("socket closed")
			}
			return m
		case <-time.After(30 * time.Second):
			t.Fatal("nothing received for 30 s")
		}
		return item{}
	}

	c.Send(map[string]any{"type": "text", "text": "help"})
	for frames := 0; frames < 50; { // a second of the reply
		if next().audio {
			frames++
		}
	}
	// Speak over it, at real time, and count the bot's frames from then on.
	pkts := opusSpeechIn(t, speech, v, "what time is it", 0, 1500*time.Millisecond)
	onset := speechOnsetFrames(t, v, "what time is it")
	sentDone := make(chan struct{})
	go func() { // ends when the speech is sent or the socket fails
		defer close(sentDone)
		_ = speak(c, pkts)
	}()
	botFrames := 0
	var interrupted, done1 *msg
	for done1 == nil {
		m := next()
		switch {
		case m.audio:
			botFrames++
		case m.ev.Type == "interrupted" && m.ev.Turn == 1:
			interrupted = &m.ev
		case m.ev.Type == "reply.done" && m.ev.Turn == 1:
			done1 = &m.ev
		}
	}
	// Frames of the caller's audio until 600 ms of it is voice (the
	// backstop, which counts the VAD's start and not the pauses between
	// words), the pacer's lead of 3, and 3 for the listening loop behind
	// on a loaded machine.
	limit := voicedBy(t, v, "what time is it", call.DefaultBargeInAfter) + 3 + 3
	t.Logf("bot frames after the caller began: %d (limit %d, speech onset at frame %d); stored reply: %q", botFrames, limit, onset, done1.Text)
	if botFrames > limit {
		t.Fatalf("%d bot frames after the caller began speaking; want at most %d (the caller's speech, then 600 ms)", botFrames, limit)
	}
	if interrupted == nil || !done1.Interrupted {
		t.Fatalf("want interrupted, then reply.done marked interrupted; got %+v", done1)
	}
	if done1.Text == full || !strings.HasPrefix(full, done1.Text) {
		t.Fatalf("stored reply %q is not a strict prefix of %q", done1.Text, full)
	}
	// The caller's words are the next turn, answered.
	var final *msg
	for {
		m := next()
		if m.ev.Type == "transcript" && m.ev.Final && m.ev.Turn == 2 {
			final = &m.ev
		}
		if m.ev.Type == "reply.done" && m.ev.Turn == 2 {
			if final == nil || final.Text != "what time is it" || !strings.HasPrefix(m.ev.Text, "It is ") {
				t.Fatalf("turn 2: transcript %+v, reply %q", final, m.ev.Text)
			}
			break
		}
	}
	<-sentDone
}

// voicedBy is how many 20 ms frames into flite's rendering of text d of
// it has been voice (frames above -40 dBFS, the VAD's floor and more).
func voicedBy(t *testing.T, v *flite.Voice, text string, d time.Duration) int {
	var pcm []int16
	_ = v.Synthesize(context.Background(), text, func(p []int16) error { pcm = append(pcm, p...); return nil })
	voiced := 0
	for i := 0; i+320 <= len(pcm); i += 320 {
		var sum float64
		for _, s := range pcm[i : i+320] {
			sum += float64(s) * float64(s)
		}
		if sum/320 >= 32768*32768/10000 { // -40 dBFS
			voiced++
		}
		if time.Duration(voiced)*media.FrameDuration >= d {
			return i/320 + 1
		}
	}
	return len(pcm) / 320
}

// speechOnsetFrames is how many 20 ms frames into flite's rendering of text
// the speech becomes audible (-30 dBFS).
func speechOnsetFrames(t *testing.T, v *flite.Voice, text string) int {
	var pcm []int16
	_ = v.Synthesize(context.Background(), text, func(p []int16) error { pcm = append(pcm, p...); return nil })
	for i := 0; i+320 <= len(pcm); i += 320 {
		var sum float64
		for _, s := range pcm[i : i+320] {
			sum += float64(s) * float64(s)
		}
		if sum/320 >= 32768*32768/1000 { // -30 dBFS
			return i / 320
		}
	}
	t.Fatal("flite rendered silence")
	return 0
}

// fakeSpeechServer is an OpenAI-compatible server for /v1/audio/
// transcriptions (a WAV upload; it answers a fixed text) and
// /v1/audio/speech (24 kHz PCM, 60 ms per character of input).
func fakeSpeechServer(t *testing.T, transcript string) (string, *sync.Map) {
	seen := &sync.Map{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/audio/transcriptions":
			f, _, err := r.FormFile("file")
			if err != nil {
				http.Error(w, `{"error":{"message":"no file"}}`, 400)
				return
			}
			b, _ := io.ReadAll(f)
			wav, err := media.ReadWAV(bytes.NewReader(b))
			if err != nil || wav.Rate != 16000 {
				http.Error(w, `{"error":{"message":"not a 16 kHz WAV"}}`, 400)
				return
			}
			seen.Store("asr_seconds", float64(len(wav.Samples))/16000)
			fmt.Fprintf(w, `{"text":%q}`, transcript)
		case "/v1/audio/speech":
			var req struct {
				Input          string `json:"input"`
				ResponseFormat string `json:"response_format"`
			}
			_ = json.NewDecoder(r.Body).Decode(&req)
			seen.Store("tts_format", req.ResponseFormat)
			n := len(req.Input) * 24000 * 60 / 1000
			pcm := make([]byte, 2*n)
			for i := 0; i < n; i++ {
				v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/24000))
				binary.LittleEndian.PutUint16(pcm[2*i:], uint16(v))
			}
			w.Write(pcm)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1", seen
}

func TestVoiceCallWithRemoteProviders(t *testing.T) {
	_, v := offline(t) // flite only makes the caller's speech
	rasr, rtts, seen := remoteSpeech(t, "what time is it")
	r := startReplica(t, newRedis(t), local.New(local.Config{}), replicaOpts{asr: rasr, tts: rtts})
	h := callClient(t, r.URL, opusSpeech(t, v, "what time is it", 500*time.Millisecond, 1500*time.Millisecond))
	var final, done *msg
	for i, ev := range h.events {
		if ev.Type == "transcript" && ev.Final {
			final = &h.events[i]
		}
		if ev.Type == "reply.done" {
			done = &h.events[i]
		}
	}
	if final == nil || final.Text != "what time is it" || done == nil || !strings.HasPrefix(done.Text, "It is ") {
		t.Fatalf("transcript %+v reply %+v", final, done)
	}
	secs, _ := seen.Load("asr_seconds")
	if s, _ := secs.(float64); s < 0.5 || s > 3 {
		t.Fatalf("the uploaded utterance is %v s long", secs)
	}
	if f, _ := seen.Load("tts_format"); f != "pcm" {
		t.Fatalf("tts asked for %v", f)
	}
	// 60 ms per character of the reply, at 24 kHz, resampled to 48 kHz frames.
	want := len(done.Text) * 3
	if n := len(h.audio); n < want*9/10 || n > want*11/10+3 {
		t.Fatalf("%d frames of audio, want about %d", n, want)
	}
}

// failingLLM is a model that is down.
type failingLLM struct{}

func (failingLLM) MaxBatch() int    { return 1 }
func (failingLLM) CallsTools() bool { return false }
func (failingLLM) Stream(context.Context, []llm.Request, func(int, llm.Piece)) error {
	return errors.New("the model is down")
}

// The model fails: the caller is told so in words (the error event) and
// hears the apology, and the call goes on.
func TestUpstreamFailureIsSpokenAndTheCallGoesOn(t *testing.T) {
	_, v := offline(t)
	rasr, rtts, _ := remoteSpeech(t, "what time is it")
	r := startReplica(t, newRedis(t), failingLLM{}, replicaOpts{asr: rasr, tts: rtts})
	c := dial(t, r.URL)
	h := callRun(t, c, opusSpeech(t, v, "what time is it", 500*time.Millisecond, 1500*time.Millisecond), true)
	errAt := -1
	for i, ev := range h.events {
		switch {
		case ev.Type == "error" && ev.Code == "upstream" && ev.Turn == 1 && strings.Contains(ev.Message, "the model is down"):
			errAt = i
		case ev.Type == "reply.done":
			t.Fatalf("a failed turn has a reply: %s", ev.Raw)
		}
	}
	if errAt < 0 {
		t.Fatalf("no upstream error for turn 1: %v", h.events)
	}
	// The apology's audio comes after the error: 60 ms per character from
	// the fake synthesiser.
	after := len(h.audio) - h.audioAt[errAt]
	if want := len(call.DefaultApology) * 3; after < want*9/10 || after > want*11/10+3 {
		t.Fatalf("%d frames after the error, want the apology's %d", after, want)
	}
	// The socket and the session go on: a typed turn is answered (with the
	// same error, the model being down).
	c.Send(map[string]any{"type": "text", "text": "hello?"})
	for {
		ev := c.Next()
		if ev.Type == "error" && ev.Turn == 2 && ev.Code == "upstream" {
			break
		}
	}
}

// Redis goes away while the bot speaks: the call's audio keeps flowing
// (it does not go through Redis), and once Redis is back the turn is
// stored and its reply.done arrives.
func TestCallAudioFlowsThroughARedisRestart(t *testing.T) {
	asr, v := offline(t)
	rs := redistest.StartPersistent(t)
	r := startReplica(t, rs.Client(), local.New(local.Config{}), replicaOpts{asr: asr, tts: v})
	c := dial(t, r.URL)
	c.Send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "ws", "codec": "opus"}})
	hello := c.Next()
	if hello.Type != "session" {
		t.Fatalf("%s", hello.Raw)
	}
	caller, pkts := c, opusSpeech(t, v, "what time is it", 500*time.Millisecond, 1500*time.Millisecond)
	go func() { _ = speak(caller, pkts) }() // ends with the packets or the socket
	before, after := 0, 0
	stopped, restarted := false, false
	var done string
	for done == "" {
		timeout := 30 * time.Second
		if stopped && !restarted {
			timeout = 2 * time.Second // the audio has ended when nothing comes for this long (frames come every 20 ms)
		}
		_ = c.WS.SetReadDeadline(time.Now().Add(timeout))
		kind, b, err := c.WS.ReadMessage()
		switch {
		case err != nil && stopped && !restarted && strings.Contains(err.Error(), "timeout"):
			// gorilla's conn is unusable after a read timeout: resume on a
			// new socket once Redis is back.
			rs.Restart()
			restarted = true
			c = dial(t, r.URL)
			c.Resume(hello.Session, hello.Token, "")
			continue
		case err != nil:
			t.Fatalf("read: %v (frames %d before the stop, %d after)", err, before, after)
		case kind == websocket.BinaryMessage && !stopped:
			before++
			rs.Stop()
			stopped = true
		case kind == websocket.BinaryMessage:
			after++
		}
		var ev msg
		if kind == websocket.TextMessage && json.Unmarshal(b, &ev) == nil && ev.Type == "reply.done" && ev.Turn == 1 {
			done = ev.Text
		}
	}
	var want int
	_ = v.Synthesize(context.Background(), done, func(p []int16) error { want += len(p); return nil })
	wantFrames := want * 3 / opus.FrameSamples
	if after < wantFrames*8/10 {
		t.Fatalf("%d frames came while Redis was away, of the reply's %d", after, wantFrames)
	}
	if !strings.HasPrefix(done, "It is ") || !restarted {
		t.Fatalf("reply.done %q (restarted %v)", done, restarted)
	}
}
