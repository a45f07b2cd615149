package realtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/opus"
	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/signaling"
)

// callsURL is the server's POST /v1/realtime/calls.
func (s *server) callsURL() string { return s.http.URL + "/v1/realtime/calls" }

// rtcCaller is a pion peer as a browser app of OpenAI's WebRTC guide
// makes it: a microphone track (Opus, sendrecv) and the oai-events data
// channel, its offer with every candidate in it.
type rtcCaller struct {
	pc  *webrtc.PeerConnection
	mic *webrtc.TrackLocalStaticSample
	dc  *webrtc.DataChannel
	sdp string

	mu    sync.Mutex
	audio [][]byte // the bot's Opus packets, as they arrived
}

func newRTCCaller(t *testing.T, withAudio, withData bool) *rtcCaller {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	k := &rtcCaller{pc: pc}
	if withAudio {
		k.mic, _ = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "caller")
		if _, err := pc.AddTrack(k.mic); err != nil {
			t.Fatal(err)
		}
	}
	if withData {
		if k.dc, err = pc.CreateDataChannel("oai-events", nil); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for { // ends when the connection closes
			pkt, _, err := remote.ReadRTP()
			if err != nil {
				return
			}
			if len(pkt.Payload) > 0 {
				k.mu.Lock()
				k.audio = append(k.audio, append([]byte(nil), pkt.Payload...))
				k.mu.Unlock()
			}
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	k.sdp = pc.LocalDescription().SDP
	return k
}

// post POSTs body to the calls endpoint and returns the response and its
// body.
func post(t *testing.T, url, contentType string, body []byte, h http.Header) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// call POSTs the offer, sets the answer and returns the client of the
// events on the data channel, once session.created has come.
func (k *rtcCaller) call(t *testing.T, s *server) *rt {
	t.Helper()
	c := &rt{t: t, more: make(chan struct{}, 1), done: make(chan struct{})}
	var once sync.Once
	k.dc.OnMessage(func(m webrtc.DataChannelMessage) {
		if !m.IsString {
			t.Errorf("a binary message on oai-events")
		}
		c.push(m.Data)
	})
	k.dc.OnClose(func() { once.Do(func() { close(c.done) }) })
	c.write = func(b []byte) error { return k.dc.SendText(string(b)) }
	resp, answer := post(t, s.callsURL(), "application/sdp", []byte(k.sdp), nil)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Content-Type") != "application/sdp" ||
		!strings.HasPrefix(resp.Header.Get("Location"), "/v1/realtime/calls/rtc_") {
		t.Fatalf("%s %v: %s", resp.Status, resp.Header, answer)
	}
	if err := k.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatalf("the answer: %v\n%s", err, answer)
	}
	_, e := c.waitType(0, "session.created")
	c.session = strings.TrimPrefix(e.str("session.id"), "sess_")
	return c
}

// opusSpeech is text spoken by flite as 20 ms Opus packets at 48 kHz,
// with silence before and after.
func opusSpeech(t *testing.T, text string, before, after time.Duration) [][]byte {
	t.Helper()
	_, tts := offline(t)
	var pcm16 []int16
	if err := tts.Synthesize(context.Background(), text, func(p []int16) error { pcm16 = append(pcm16, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	up, _ := media.NewResampler(tts.SampleRate(), opus.Rate)
	pcm := up.Process(pcm16, make([]int16, int(before.Seconds()*opus.Rate)))
	pcm = append(pcm, make([]int16, int(after.Seconds()*opus.Rate))...)
	enc, _ := opus.NewEncoder(opus.Rate, 0)
	var pkts [][]byte
	for i := 0; i+opus.FrameSamples <= len(pcm); i += opus.FrameSamples {
		p, err := enc.Encode(pcm[i : i+opus.FrameSamples])
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, p)
	}
	return pkts
}

// TestWebRTCCall: a call over POST /v1/realtime/calls with the defaults,
// on a host whose only network is loopback (the test re-executes itself
// in a network namespace with only lo up). The caller speaks flite's
// "what time is it" on its track; on the data channel come
// session.created, speech started and stopped, the transcript, the
// response with the local responder's reply and the bot's audio's start
// and stop, and no audio deltas (the audio is on the track); the bot's
// audio arrives as Opus that decodes to speech, not silence. Closing the
// peer connection ends the session's connection.
func TestWebRTCCall(t *testing.T) {
	if !testkit.InLoopbackNetns(t) {
		return
	}
	s := offlineServer(t, false)
	speech := opusSpeech(t, "what time is it", 500*time.Millisecond, 1500*time.Millisecond)
	k := newRTCCaller(t, true, true)
	c := k.call(t, s)
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"type": "realtime",
		"audio": map[string]any{"input": map[string]any{"transcription": map[string]any{"model": "whisper-1"}}}}})
	c.waitType(0, "session.updated")

	tick := time.NewTicker(20 * time.Millisecond)
	for _, p := range speech { // at real time, as a microphone
		<-tick.C
		if err := k.mic.WriteSample(pionmedia.Sample{Data: p, Duration: 20 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	tick.Stop()

	_, tr := c.waitType(0, "conversation.item.input_audio_transcription.completed")
	if tr.str("transcript") != "what time is it" {
		t.Fatalf("transcript %v", tr)
	}
	end, done := c.waitType(0, "response.done")
	c.waitType(end, "output_audio_buffer.stopped")
	if done.str("response.status") != "completed" || !strings.Contains(jsonOf(done), `"transcript":"It is `) {
		t.Fatalf("response.done %v", done)
	}
	got := strings.Join(typesOf(c.all()), " ")
	for _, want := range []string{"input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
		"input_audio_buffer.committed", "response.created", "output_audio_buffer.started",
		"response.output_audio_transcript.delta", "response.output_audio.done"} {
		if !strings.Contains(got, want) {
			t.Fatalf("no %s in %s", want, got)
		}
	}
	if strings.Contains(got, "response.output_audio.delta") {
		t.Fatalf("audio deltas on the data channel: %s", got)
	}

	k.mu.Lock()
	audio := append([][]byte(nil), k.audio...)
	k.mu.Unlock()
	if len(audio) < 40 {
		t.Fatalf("%d packets of the bot's audio", len(audio))
	}
	dec, _ := opus.NewDecoder(opus.Rate)
	var pcm []int16
	for i, p := range audio {
		out, err := dec.Decode(p)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		pcm = append(pcm, out...)
	}
	if lvl := testkit.RMS(pcm); lvl < 300 {
		t.Fatalf("the bot's audio has an RMS of %v: silence, not flite's speech", lvl)
	}

	// Events go both ways still: a typed turn is answered.
	from := len(c.all())
	c.send(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user",
		"content": []any{map[string]any{"type": "input_text", "text": "what is the date"}}}})
	c.send(map[string]any{"type": "response.create"})
	if _, d := c.waitType(from, "response.done"); !strings.Contains(jsonOf(d), `Today is `) {
		t.Fatalf("the typed turn's response %v", d)
	}
	// An append has no place here: the audio is the track.
	id := c.send(map[string]any{"type": "input_audio_buffer.append", "audio": "AAAA"})
	if e := c.errorFor(id); !strings.Contains(e.str("error.message"), "audio track") {
		t.Fatalf("append over WebRTC: %v", e)
	}

	_ = k.pc.Close()
	waitFor(t, "the session's connection to end", func() bool { return s.gw.OpenForTest() == 0 })
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Bad requests to POST /v1/realtime/calls: each gets the API's error
// shape with its status, and the server goes on (a good call after them
// is answered).
func TestWebRTCBadRequests(t *testing.T) {
	s := offlineServer(t, false)
	good := newRTCCaller(t, true, true).sdp
	noAudio := newRTCCaller(t, false, true).sdp
	noData := newRTCCaller(t, true, false).sdp
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("sdp", good)
	_ = mw.WriteField("session", `{"type": "realtime", "output_modalities": ["chirp"]}`)
	_ = mw.Close()
	for _, tc := range []struct {
		name, method, contentType string
		body                      []byte
		status                    int
		code, inMessage           string
	}{
		{"wrong method", http.MethodGet, "", nil, http.StatusMethodNotAllowed, "method_not_allowed", "POST an SDP offer"},
		{"not SDP", http.MethodPost, "application/sdp", []byte(`{"sdp": "nope"}`), http.StatusBadRequest, "invalid_offer", "not an SDP offer"},
		{"broken SDP", http.MethodPost, "application/sdp", []byte("v=0\r\nm=audio\r\n"), http.StatusBadRequest, "invalid_offer", "could not be parsed"},
		{"no audio", http.MethodPost, "application/sdp", []byte(noAudio), http.StatusBadRequest, "invalid_offer", "no audio"},
		{"no data channel", http.MethodPost, "application/sdp", []byte(noData), http.StatusBadRequest, "invalid_offer", "oai-events"},
		{"too large", http.MethodPost, "application/sdp", bytes.Repeat([]byte("a"), 300<<10), http.StatusRequestEntityTooLarge, "body_too_large", "over"},
		{"JSON body", http.MethodPost, "application/json", []byte(good), http.StatusUnsupportedMediaType, "unsupported_content_type", "application/sdp"},
		{"bad session in the form", http.MethodPost, mw.FormDataContentType(), form.Bytes(), http.StatusBadRequest, "invalid_value", "chirp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, s.callsURL(), bytes.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var e ev
			if err := json.Unmarshal(b, &e); err != nil || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%s: %q is not a JSON error (%v)", resp.Status, b, err)
			}
			if resp.StatusCode != tc.status || e.str("error.code") != tc.code || e.str("error.type") != "invalid_request_error" ||
				!strings.Contains(e.str("error.message"), tc.inMessage) {
				t.Fatalf("%s %s; want %d %s containing %q", resp.Status, b, tc.status, tc.code, tc.inMessage)
			}
		})
	}
	if n := s.gw.OpenForTest(); n != 0 {
		t.Fatalf("%d sockets open after the refusals", n)
	}
	resp, answer := post(t, s.callsURL(), "application/sdp", []byte(good), nil)
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(answer, "v=0") {
		t.Fatalf("a good offer after the bad: %s %q", resp.Status, answer)
	}
}

// A browser page of another origin POSTs its offer (the agents SDK's
// WebRTC transport from an app's page): its preflight is answered for
// the origins -allowed-origins allows (by default the server's own host,
// so another origin must be listed; here one is, a default changed for
// it, and the default's refusal is the first case), and the answer
// exposes its Location. A disallowed origin gets no CORS headers.
func TestWebRTCCORS(t *testing.T) {
	asr, tts := offline(t)
	def := start(t, local.New(local.Config{}), opts{asr: asr, tts: tts})
	listed := start(t, local.New(local.Config{}), opts{asr: asr, tts: tts,
		gateway: signaling.Config{AllowedOrigins: []string{"https://app.example"}}})
	for _, tc := range []struct {
		name, origin, method string
		srv                  *server
		allowed              bool
	}{
		{"another origin, by default", "https://app.example", http.MethodOptions, def, false},
		{"the server's own host, by default", "", http.MethodOptions, def, true},
		{"a listed origin's preflight", "https://app.example", http.MethodOptions, listed, true},
		{"an unlisted origin's preflight", "https://evil.example", http.MethodOptions, listed, false},
		{"a listed origin's POST", "https://app.example", http.MethodPost, listed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin := tc.origin
			if origin == "" {
				origin = tc.srv.http.URL // the page served by Parley itself
			}
			req, _ := http.NewRequest(tc.method, tc.srv.callsURL(), strings.NewReader("not an offer"))
			req.Header.Set("Origin", origin)
			req.Header.Set("Content-Type", "application/sdp")
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.Header.Get("Access-Control-Allow-Origin")
			switch {
			case !tc.allowed && got != "":
				t.Fatalf("%s: Access-Control-Allow-Origin %q for an origin not allowed", resp.Status, got)
			case !tc.allowed:
				return
			case got != origin:
				t.Fatalf("%s: Access-Control-Allow-Origin %q, want %q", resp.Status, got, origin)
			case tc.method == http.MethodOptions && (resp.StatusCode != http.StatusNoContent ||
				resp.Header.Get("Access-Control-Allow-Methods") != "POST" ||
				resp.Header.Get("Access-Control-Allow-Headers") != "authorization, content-type"):
				t.Fatalf("preflight: %s %v", resp.Status, resp.Header)
			case tc.method == http.MethodPost && resp.Header.Get("Access-Control-Expose-Headers") != "Location":
				t.Fatalf("POST: %s %v", resp.Status, resp.Header)
			}
		})
	}
}

// A refused offer (no key, a wrong one; authentication on, a default
// changed for it) is told why in the API's error shape, as the SDKs read
// it, with the refusal's reason as its code.
func TestWebRTCRefusedInTheAPIShape(t *testing.T) {
	asr, tts := offline(t)
	s := start(t, local.New(local.Config{}), opts{asr: asr, tts: tts,
		gateway: signaling.Config{Auth: signaling.AuthConfig{Tokens: []string{"sk-good"}}}})
	for _, key := range []string{"", "sk-wrong"} {
		t.Run("key "+key, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, s.callsURL(), strings.NewReader("v=0\r\n"))
			req.Header.Set("Content-Type", "application/sdp")
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e ev
			b, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != http.StatusUnauthorized ||
				resp.Header.Get("Content-Type") != "application/json" ||
				e.str("error.type") != "invalid_request_error" || e.str("error.code") != "unauthorized" || e.str("error.message") == "" {
				t.Fatalf("%s %s: %s", resp.Status, resp.Header.Get("Content-Type"), b)
			}
		})
	}
}

// A barge-in over WebRTC: the caller speaks on its track over a long
// reply. speech_started, the response cancelled (turn_detected), the
// output buffer cleared, the bot's audio stops on the track; the client's
// truncate at what it played is accepted and cuts the item.
func TestWebRTCBargeIn(t *testing.T) {
	if !testkit.InLoopbackNetns(t) {
		return
	}
	s := offlineServer(t, false)
	speech := opusSpeech(t, "stop, what time is it", 0, 1500*time.Millisecond)
	k := newRTCCaller(t, true, true)
	c := k.call(t, s)
	c.send(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user",
		"content": []any{map[string]any{"type": "input_text", "text": "help"}}}}) // about 8 s spoken
	c.send(map[string]any{"type": "response.create"})
	c.waitType(0, "output_audio_buffer.started")
	packets := func() int { k.mu.Lock(); defer k.mu.Unlock(); return len(k.audio) }
	waitFor(t, "a second of the reply", func() bool { return packets() >= 50 })

	tick := time.NewTicker(20 * time.Millisecond)
	for _, p := range speech { // over the reply, at real time
		<-tick.C
		if err := k.mic.WriteSample(pionmedia.Sample{Data: p, Duration: 20 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	tick.Stop()
	end, done := c.wait(0, "the cut response", func(e ev) bool { return e.typ() == "response.done" && e.str("response.id") == "resp_1" })
	if done.str("response.status") != "cancelled" || done.str("response.status_details.reason") != "turn_detected" {
		t.Fatalf("response.done %v", done)
	}
	c.waitType(end, "output_audio_buffer.cleared")
	got := strings.Join(typesOf(c.all()), " ")
	for _, want := range []string{"input_audio_buffer.speech_started", "output_audio_buffer.cleared"} {
		if !strings.Contains(got, want) {
			t.Fatalf("no %s in %s", want, got)
		}
	}
	// What the caller heard: the packets that came (8 s were not sent).
	heardMs := packets() * 20
	if heardMs >= 7000 {
		t.Fatalf("%d ms of the reply came on the track: it was not cut", heardMs)
	}
	item := ""
	for _, e := range c.all() {
		if e.typ() == "response.output_item.added" && e.str("response_id") == "resp_1" {
			item = e.str("item.id")
		}
	}
	id := c.send(map[string]any{"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": heardMs / 2})
	_, tr := c.wait(0, "the truncate's answer", func(e ev) bool {
		return e.typ() == "conversation.item.truncated" || e.typ() == "error" && e.str("event_id") != "" && strings.Contains(jsonOf(e), id)
	})
	if tr.typ() != "conversation.item.truncated" || tr.str("item_id") != item || int(tr.num("audio_end_ms")) != heardMs/2 {
		t.Fatalf("truncate: %v", tr)
	}
	_ = k.pc.Close()
	waitFor(t, "the session's connection to end", func() bool { return s.gw.OpenForTest() == 0 })
}
