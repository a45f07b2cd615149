package realtime_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/testkit/npm"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/g711"
)

// A Twilio bridge through the Realtime endpoint, as such apps are
// written: a small server takes Twilio's Media Stream, opens a Realtime
// session in G.711 mu-law both ways with server VAD, passes the caller's
// media payloads on as input_audio_buffer.append unchanged and the
// reply's audio deltas back as media (a mark after each), and on
// speech_started clears Twilio's buffer and truncates the reply to what
// the marks say was played. The fake Twilio streams flite's speech as a
// phone line does and plays what it gets at real time. Against the real
// server with the offline stack (pocketsphinx, the local responder,
// flite): a bridge of the test's own, GA and beta, and the agents SDK's
// TwilioRealtimeTransportLayer (@openai/agents-extensions, from npm).
func TestTwilioBridge(t *testing.T) {
	for _, beta := range []bool{false, true} {
		name := map[bool]string{false: "GA", true: "beta"}[beta]
		t.Run(name, func(t *testing.T) {
			s := offlineServer(t, false)
			b := startBridge(t, s.URL, beta)
			twilioBridgeCall(t, b, b.url, beta)
		})
	}
	t.Run("agents-extensions", func(t *testing.T) {
		s := offlineServer(t, false)
		n := startNodeBridge(t, s.URL)
		twilioBridgeCall(t, n, n.url, false)
	})
}

// bridgeApp is a bridge as the test sees it: the Realtime events it got,
// with a "client.truncate" of its own for each truncate it sent; prompt
// has the bot answer a text, send sends a client event.
type bridgeApp interface {
	all() []ev
	wait(t *testing.T, from int, what string, match func(ev) bool) (int, ev)
	prompt(t *testing.T, text string)
	send(t *testing.T, v map[string]any)
}

const longPrompt = "echo one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"

func twilioBridgeCall(t *testing.T, b bridgeApp, url string, beta bool) {
	tw := dialFakeTwilio(t, url)
	_, upd := b.wait(t, 0, "session.updated", func(e ev) bool { return e.typ() == "session.updated" })
	if f := upd.get("session.audio.output.format.type"); !beta && (f != "audio/pcmu" || upd.str("session.audio.input.format.type") != "audio/pcmu") {
		t.Fatalf("session.updated %v", upd)
	}
	if beta && (upd.str("session.input_audio_format") != "g711_ulaw" || upd.str("session.output_audio_format") != "g711_ulaw") {
		t.Fatalf("session.updated %v", upd)
	}

	// The caller greets; pocketsphinx hears it; the answer comes back as
	// mu-law, played at real time. (pocketsphinx's model is for 16 kHz
	// and hears the phone's 4 kHz band poorly: "what time is it" comes
	// out "what are what"; a greeting it gets right.)
	tw.say(mulawFrames(t, "hello"))
	_, tr := b.wait(t, 0, "the caller's transcript", func(e ev) bool {
		return e.typ() == "conversation.item.input_audio_transcription.completed"
	})
	if heard := tr.str("transcript"); heard != "hello" {
		t.Fatalf("the caller said %q, transcribed %q", "hello", heard)
	}
	_, done := b.wait(t, 0, "the answer's response.done", func(e ev) bool { return e.typ() == "response.done" })
	if done.str("response.status") != "completed" {
		t.Fatalf("response.done %v", done)
	}
	tw.waitPlayed(t)
	checkPhoneReply(t, transcriptIn(done), tw.received())

	// The bot speaks first, as apps have it greet; the caller talks over
	// it: speech_started, the response cancelled by the server (its
	// turn_detected), Twilio's buffer cleared, and the truncate of what
	// was played accepted.
	from := len(b.all())
	b.prompt(t, longPrompt)
	_, created := b.wait(t, from, "the long reply", func(e ev) bool { return e.typ() == "response.created" })
	long := created.str("response.id")
	tw.waitPlayedAtLeast(t, tw.playedCount()+50) // a second of it played
	tw.say(mulawFrames(t, "stop talking please"))
	b.wait(t, from, "speech_started over the reply", func(e ev) bool { return e.typ() == "input_audio_buffer.speech_started" })
	_, cancelled := b.wait(t, from, "the long reply's response.done", func(e ev) bool {
		return e.typ() == "response.done" && e.str("response.id") == long
	})
	if cancelled.str("response.status") != "cancelled" || cancelled.str("response.status_details.reason") != "turn_detected" {
		t.Fatalf("the interrupted response ended %v", cancelled)
	}
	tw.waitUntil(t, "a clear", func() bool { return tw.ncleard > 0 })
	j, trunc := b.wait(t, from, "the bridge's truncate", func(e ev) bool { return e.typ() == "client.truncate" })
	item, playedMs := trunc.str("item_id"), int64(trunc.num("audio_end_ms"))
	_, ok := b.wait(t, j, "conversation.item.truncated", func(e ev) bool {
		return e.typ() == "conversation.item.truncated" || e.typ() == "error"
	})
	sentMs := sentMsOf(b.all(), item)
	if ok.typ() != "conversation.item.truncated" || ok.str("item_id") != item || int64(ok.num("audio_end_ms")) != playedMs {
		t.Fatalf("the truncate of %s at %d ms (of %d sent) was answered %v", item, playedMs, sentMs, ok)
	}
	if playedMs < 1000 || playedMs > sentMs {
		t.Fatalf("truncated at %d ms, with %d ms sent; a second at least was played", playedMs, sentMs)
	}
	// The reply stopped: far less of it was sent than it is long.
	if whole := int64(len(pcm16k(t, longPrompt)) / 16); sentMs > whole*3/4 {
		t.Fatalf("%d ms of a %d ms reply were sent: it was not cut", sentMs, whole)
	}
	// The item keeps the words played (at most those sent, far from the
	// whole reply's), and the model will see them.
	k := len(b.all())
	b.send(t, map[string]any{"type": "conversation.item.retrieve", "item_id": item})
	_, ret := b.wait(t, k, "the truncated item", func(e ev) bool { return e.typ() == "conversation.item.retrieved" })
	heard := transcriptIn(ev{"response": map[string]any{"output": []any{ret.get("item")}}})
	if sent := transcriptIn(cancelled); heard == "" || !strings.HasPrefix(sent, heard) || strings.Contains(heard, "sixteen") {
		t.Fatalf("the truncated item says %q of %q sent", heard, sent)
	}
	for _, e := range b.all() {
		if e.typ() == "error" {
			t.Fatalf("the session sent an error: %v", e)
		}
	}
}

// sentMsOf is how much audio of item the bridge got, in milliseconds of
// mu-law (8 bytes each): a delta's payload, or its length in "bytes".
func sentMsOf(evs []ev, item string) int64 {
	n := 0
	for _, e := range evs {
		if (e.typ() == "response.output_audio.delta" || e.typ() == "response.audio.delta") && e.str("item_id") == item {
			raw, _ := base64.StdEncoding.DecodeString(e.str("delta"))
			n += len(raw) + int(e.num("bytes"))
		}
	}
	return int64(n / 8)
}

// transcriptIn is the transcript of a response.done's audio message.
func transcriptIn(done ev) string {
	out, _ := done.get("response.output").([]any)
	for _, o := range out {
		item, _ := o.(map[string]any)
		content, _ := item["content"].([]any)
		for _, c := range content {
			part, _ := c.(map[string]any)
			if s, _ := part["transcript"].(string); s != "" {
				return s
			}
		}
	}
	return ""
}

// checkPhoneReply: the reply is 20 ms mu-law frames, about as many as
// flite's rendering of its transcript takes, speech (not silence), and
// paced: never far ahead of real time from the first frame (a loaded
// machine only delays frames), and spread over most of its duration.
func checkPhoneReply(t *testing.T, reply string, frames []phoneFrame) {
	t.Helper()
	if reply == "" || len(frames) == 0 {
		t.Fatalf("reply %q in %d frames", reply, len(frames))
	}
	var pcm []int16
	for k, f := range frames {
		if len(f.payload) != g711.Frame {
			t.Fatalf("frame %d has %d bytes; want 160 (20 ms of 8 kHz mu-law)", k, len(f.payload))
		}
		pcm = g711.MuLaw.AppendPCM(pcm, f.payload)
		// k frames may be out after (k - lead) frames' time; the lead
		// is the pacer's 3 and a wide margin for a stalled first frame.
		if ahead := time.Duration(k-15)*media.FrameDuration - f.at.Sub(frames[0].at); ahead > 0 {
			t.Fatalf("frame %d came %v ahead of real time: a burst", k, ahead)
		}
	}
	if lv := level(pcm); lv < 500 {
		t.Fatalf("the reply's level is %.0f: silence, not speech", lv)
	}
	voiced := 0
	for off := 0; off+800 <= len(pcm); off += 800 { // 100 ms windows
		if level(pcm[off:off+800]) > 300 {
			voiced++
		}
	}
	if voiced < len(pcm)/800/3 {
		t.Fatalf("%d of %d windows of 100 ms are voiced", voiced, len(pcm)/800)
	}
	want := len(pcm16k(t, reply)) / 2 / g711.Frame
	if n := len(frames); n < want*9/10 || n > want*11/10+3 {
		t.Fatalf("%d frames of the reply %q; flite speaks it in about %d", n, reply, want)
	}
	span := frames[len(frames)-1].at.Sub(frames[0].at)
	if audio := time.Duration(len(frames)) * media.FrameDuration; span < audio/2 {
		t.Fatalf("%v of audio arrived within %v: not paced", audio, span)
	}
	t.Logf("the reply %q: %d frames over %v, %d of %d windows voiced", reply, len(frames), span, voiced, len(pcm)/800)
}

// pcm16k is text as flite speaks it (16 kHz).
func pcm16k(t *testing.T, text string) []int16 {
	t.Helper()
	_, tts := offline(t)
	var pcm []int16
	if err := tts.Synthesize(context.Background(), text, func(p []int16) error { pcm = append(pcm, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	return pcm
}

// mulawFrames is text spoken by flite as a phone line carries it: 8 kHz
// mu-law in 20 ms frames, after 200 ms of silence.
func mulawFrames(t *testing.T, text string) [][]byte {
	t.Helper()
	_, tts := offline(t)
	down, err := media.NewResampler(tts.SampleRate(), g711.Rate)
	if err != nil {
		t.Fatal(err)
	}
	pcm := down.Process(pcm16k(t, text), make([]int16, g711.Rate/5))
	var frames [][]byte
	for i := 0; i+g711.Frame <= len(pcm); i += g711.Frame {
		frames = append(frames, g711.MuLaw.Append(nil, pcm[i:i+g711.Frame]))
	}
	return frames
}

// --- the bridge: the app between Twilio and the Realtime API ---

type bridge struct {
	url    string // ws://…/media-stream, where Twilio connects
	parley string
	beta   bool

	mu     sync.Mutex
	events []ev // the Realtime events it got
	more   chan struct{}
	rt     *websocket.Conn // nil until Twilio connects
	rmu    sync.Mutex      // writes to rt
	// what it played: the reply item now going to Twilio (and whether
	// its response has ended), the audio it sent of it and what Twilio's
	// marks say was played
	item, resp       string
	ended            bool
	sentMs, playedMs int64
	pending          int // marks not yet echoed
}

func startBridge(t *testing.T, parley string, beta bool) *bridge {
	b := &bridge{parley: parley, beta: beta, more: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(srv.Close)
	b.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/media-stream"
	return b
}

var upgrader = websocket.Upgrader{}

// serve is one call: Twilio's stream in, a Realtime session out. It
// returns when either socket ends, and closes both.
func (b *bridge) serve(w http.ResponseWriter, r *http.Request) {
	tw, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer tw.Close()
	tw.SetReadLimit(1 << 20)
	h := http.Header{"Authorization": {"Bearer sk-test"}}
	if b.beta {
		h.Set("OpenAI-Beta", "realtime=v1")
	}
	rt, _, err := websocket.DefaultDialer.Dial(b.parley+"?model=gpt-realtime", h)
	if err != nil {
		return
	}
	defer rt.Close()
	rt.SetReadLimit(1 << 20)
	b.mu.Lock()
	b.rt = rt
	b.mu.Unlock()
	b.sessionUpdate()
	var twmu sync.Mutex // writes to Twilio
	var sid string
	toTwilio := func(v map[string]any) {
		twmu.Lock()
		defer twmu.Unlock()
		v["streamSid"] = sid
		_ = tw.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_ = tw.WriteJSON(v)
	}
	done := make(chan struct{})
	go func() { // ends when the Realtime socket closes (the deferred Close)
		defer close(done)
		b.fromRealtime(rt, toTwilio)
	}()
	for {
		var m struct {
			Event     string
			StreamSid string
			Media     struct{ Payload string }
			Mark      struct{ Name string }
		}
		if err := tw.ReadJSON(&m); err != nil {
			break
		}
		switch m.Event {
		case "start":
			twmu.Lock()
			sid = m.StreamSid
			twmu.Unlock()
		case "media": // the payload as it came: both sides speak mu-law
			b.write(map[string]any{"type": "input_audio_buffer.append", "audio": m.Media.Payload})
		case "mark":
			b.played(m.Mark.Name)
		case "stop":
			return
		}
	}
	rt.Close()
	<-done
}

func (b *bridge) sessionUpdate() {
	if b.beta {
		b.write(map[string]any{"type": "session.update", "session": map[string]any{
			"input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw",
			"turn_detection":            map[string]any{"type": "server_vad"},
			"input_audio_transcription": map[string]any{"model": "whisper-1"},
			"modalities":                []string{"text", "audio"}, "voice": "alloy",
			"instructions": "You are a helpful phone assistant.",
		}})
		return
	}
	b.write(map[string]any{"type": "session.update", "session": map[string]any{
		"type": "realtime", "output_modalities": []string{"audio"},
		"instructions": "You are a helpful phone assistant.",
		"audio": map[string]any{
			"input": map[string]any{"format": map[string]any{"type": "audio/pcmu"},
				"turn_detection": map[string]any{"type": "server_vad"},
				"transcription":  map[string]any{"model": "gpt-4o-mini-transcribe"}},
			"output": map[string]any{"format": map[string]any{"type": "audio/pcmu"}, "voice": "alloy"},
		},
	}})
}

// fromRealtime handles the session's events until its socket closes.
func (b *bridge) fromRealtime(rt *websocket.Conn, toTwilio func(map[string]any)) {
	for {
		var e ev
		if err := rt.ReadJSON(&e); err != nil {
			return
		}
		b.mu.Lock()
		b.events = append(b.events, e)
		b.mu.Unlock()
		select {
		case b.more <- struct{}{}:
		default:
		}
		switch e.typ() {
		case "response.output_audio.delta", "response.audio.delta":
			raw, _ := base64.StdEncoding.DecodeString(e.str("delta"))
			b.mu.Lock()
			if e.str("item_id") != b.item {
				b.item, b.resp, b.ended = e.str("item_id"), e.str("response_id"), false
				b.sentMs, b.playedMs, b.pending = 0, 0, 0
			}
			b.sentMs += int64(len(raw) / 8) // 8 bytes a millisecond
			mark := fmt.Sprintf("%s:%d", b.item, b.sentMs)
			b.pending++
			b.mu.Unlock()
			toTwilio(map[string]any{"event": "media", "media": map[string]any{"payload": e.str("delta")}})
			toTwilio(map[string]any{"event": "mark", "mark": map[string]any{"name": mark}})
		case "response.done":
			b.mu.Lock()
			b.ended = b.ended || e.str("response.id") == b.resp
			b.mu.Unlock()
		case "input_audio_buffer.speech_started":
			// Playing: audio not yet heard, or more to come (a slow
			// moment may have emptied Twilio's buffer).
			b.mu.Lock()
			playing := b.item != "" && (b.pending > 0 || !b.ended)
			item, played := b.item, b.playedMs
			if playing {
				b.item, b.pending = "", 0 // its marks still to come are not heard
				b.events = append(b.events, ev{"type": "client.truncate", "item_id": item, "audio_end_ms": float64(played)})
			}
			b.mu.Unlock()
			if playing {
				toTwilio(map[string]any{"event": "clear"})
				b.write(map[string]any{"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": played})
			}
		}
	}
}

// played takes a mark Twilio echoed: the audio up to it was heard.
func (b *bridge) played(name string) {
	i := strings.LastIndexByte(name, ':')
	if i < 0 {
		return
	}
	ms, err := strconv.ParseInt(name[i+1:], 10, 64)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil && name[:i] == b.item {
		b.playedMs = max(b.playedMs, ms)
		b.pending--
	}
}

func (b *bridge) send(_ *testing.T, v map[string]any) { b.write(v) }

// write sends a client event to the Realtime socket.
func (b *bridge) write(v map[string]any) {
	b.mu.Lock()
	rt := b.rt
	b.mu.Unlock()
	data, _ := json.Marshal(v)
	b.rmu.Lock()
	defer b.rmu.Unlock()
	_ = rt.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = rt.WriteMessage(websocket.TextMessage, data)
}

// prompt has the bot say something, as an app greets a caller: a user
// text item and response.create.
func (b *bridge) prompt(t *testing.T, text string) {
	t.Helper()
	b.write(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user",
		"content": []any{map[string]any{"type": "input_text", "text": text}}}})
	b.write(map[string]any{"type": "response.create"})
}

func (b *bridge) all() []ev {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]ev(nil), b.events...)
}

// wait waits for the first event after the from-th that match accepts.
func (b *bridge) wait(t *testing.T, from int, what string, match func(ev) bool) (int, ev) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		evs := b.all()
		for i := from; i < len(evs); i++ {
			if match(evs[i]) {
				return i, evs[i]
			}
		}
		select {
		case <-b.more:
		case <-deadline:
			t.Fatalf("no %s within 30s; the bridge got %s", what, types(b.all()))
		}
	}
}

// --- the fake Twilio: a Media Stream as Twilio sends it ---

// phoneFrame is a media frame the fake got from the bridge, and when.
type phoneFrame struct {
	at      time.Time
	payload []byte
}

// fakeTwilio is Twilio's side of a call's Media Stream. It keeps the line
// open (a media frame of the caller every 20 ms: what say queued, else
// silence) and plays what it gets at real time: one frame every 20 ms
// from a buffer, a mark echoed when the audio before it has played, a
// clear dropping the buffer and echoing its marks at once.
type fakeTwilio struct {
	ws  *websocket.Conn
	sid string
	wmu sync.Mutex // writes

	mu      sync.Mutex
	caller  [][]byte     // the caller's frames still to send
	got     []phoneFrame // every frame of the bot's
	buffer  []string     // to play: "" a frame, else a mark's name
	nplayed int          // frames played
	ncleard int
	done    chan struct{}
}

func dialFakeTwilio(t *testing.T, url string) *fakeTwilio {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTwilio{ws: ws, sid: "MZ" + strconv.FormatInt(time.Now().UnixNano(), 16), done: make(chan struct{})}
	t.Cleanup(func() { _ = ws.Close(); <-f.done })
	f.write(map[string]any{"event": "connected", "protocol": "Call", "version": "1.0.0"})
	f.write(map[string]any{"event": "start", "sequenceNumber": "1", "streamSid": f.sid, "start": map[string]any{
		"streamSid": f.sid, "accountSid": "AC0", "callSid": "CA0", "tracks": []string{"inbound"},
		"mediaFormat": map[string]any{"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
	go f.read() // ends when the socket closes
	go f.line() // ends with read
	return f
}

func (f *fakeTwilio) write(v any) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	_ = f.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = f.ws.WriteJSON(v)
}

// line sends the caller's side and plays the bot's, a 20 ms tick each.
func (f *fakeTwilio) line() {
	quiet := g711.MuLaw.Append(nil, make([]int16, g711.Frame))
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-f.done:
			return
		case <-tick.C:
		}
		fr := quiet
		var marks []string
		f.mu.Lock()
		if len(f.caller) > 0 {
			fr, f.caller = f.caller[0], f.caller[1:]
		}
		for len(f.buffer) > 0 && f.buffer[0] != "" {
			marks, f.buffer = append(marks, f.buffer[0]), f.buffer[1:]
		}
		if len(f.buffer) > 0 { // a frame plays
			f.buffer = f.buffer[1:]
			f.nplayed++
		}
		f.mu.Unlock()
		f.write(map[string]any{"event": "media", "sequenceNumber": strconv.Itoa(n + 2), "streamSid": f.sid,
			"media": map[string]any{"track": "inbound", "chunk": strconv.Itoa(n + 1), "timestamp": strconv.Itoa(n * 20),
				"payload": base64.StdEncoding.EncodeToString(fr)}})
		f.echo(marks)
	}
}

func (f *fakeTwilio) echo(marks []string) {
	for _, m := range marks {
		f.write(map[string]any{"event": "mark", "streamSid": f.sid, "sequenceNumber": "0", "mark": map[string]any{"name": m}})
	}
}

func (f *fakeTwilio) read() {
	defer close(f.done)
	for {
		var m struct {
			Event, StreamSid string
			Media            struct{ Payload string }
			Mark             struct{ Name string }
		}
		if err := f.ws.ReadJSON(&m); err != nil {
			return
		}
		if m.StreamSid != f.sid {
			continue
		}
		f.mu.Lock()
		switch m.Event {
		case "media":
			p, _ := base64.StdEncoding.DecodeString(m.Media.Payload)
			f.got = append(f.got, phoneFrame{at: time.Now(), payload: p})
			f.buffer = append(f.buffer, "")
		case "mark":
			f.buffer = append(f.buffer, m.Mark.Name)
		case "clear":
			var marks []string
			for _, x := range f.buffer {
				if x != "" {
					marks = append(marks, x)
				}
			}
			f.buffer = nil
			f.ncleard++
			f.mu.Unlock()
			f.echo(marks)
			continue
		}
		f.mu.Unlock()
	}
}

func (f *fakeTwilio) say(frames [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.caller = append(f.caller, frames...)
}

// received is every frame of the bot's so far.
func (f *fakeTwilio) received() []phoneFrame {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]phoneFrame(nil), f.got...)
}

func (f *fakeTwilio) playedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nplayed
}

// waitPlayedAtLeast waits until n frames of the bot's have played.
func (f *fakeTwilio) waitPlayedAtLeast(t *testing.T, n int) {
	t.Helper()
	f.waitUntil(t, fmt.Sprintf("%d frames played", n), func() bool { return f.nplayed >= n })
}

// waitPlayed waits until what came has played and nothing more has come
// for half a second.
func (f *fakeTwilio) waitPlayed(t *testing.T) {
	t.Helper()
	f.waitUntil(t, "the reply played out", func() bool {
		return len(f.got) > 0 && len(f.buffer) == 0 && time.Since(f.got[len(f.got)-1].at) > 500*time.Millisecond
	})
}

// waitUntil polls cond, under f.mu, with a generous deadline.
func (f *fakeTwilio) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		f.mu.Lock()
		ok := cond()
		f.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not %s within 30s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// --- the agents SDK's Twilio transport, in node ---

// nodeBridge is testdata/twilio.cjs running: the agents SDK's
// TwilioRealtimeTransportLayer as a Twilio bridge in front of the server.
type nodeBridge struct {
	url   string // ws://127.0.0.1:port/, where Twilio connects
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []line
	evs   []ev // its events, and a client.truncate for each truncate it sent
	more  chan struct{}
}

func startNodeBridge(t *testing.T, parley string) *nodeBridge {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH (%v); `make deps` installs Node.js", err)
	}
	dir, err := npm.Install("testdata/npm-twilio")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join("testdata", "twilio.cjs"), parley)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"), "NODE_NO_WARNINGS=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n := &nodeBridge{more: make(chan struct{}, 1)}
	if n.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() { // ends when node's stdout closes (it exits)
		defer close(read)
		n.read(stdout)
	}()
	t.Cleanup(func() {
		_ = n.stdin.Close() // it closes its session and exits
		select {
		case <-read:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-read
		}
		_ = cmd.Wait()
		if os.Getenv("PARLEY_TEST_NODE") != "" || t.Failed() {
			t.Logf("node twilio.cjs stderr:\n%s", stderr.String())
		}
		for _, l := range n.all0() {
			if l.str("t") == "fatal" || l.str("t") == "timeout" {
				t.Errorf("node twilio.cjs: %v", l)
			}
		}
	})
	_, l := n.waitLine(t, "listening")
	n.url = fmt.Sprintf("ws://127.0.0.1:%d/", int(l["port"].(float64)))
	return n
}

func (n *nodeBridge) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var l line
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		n.mu.Lock()
		n.lines = append(n.lines, l)
		switch l.str("t") {
		case "event":
			e, _ := l["event"].(map[string]any)
			n.evs = append(n.evs, ev(e))
		case "truncate":
			n.evs = append(n.evs, ev{"type": "client.truncate", "item_id": l["item_id"], "audio_end_ms": l["audio_end_ms"]})
		case "error":
			n.evs = append(n.evs, ev{"type": "error", "error": l["error"]})
		}
		n.mu.Unlock()
		select {
		case n.more <- struct{}{}:
		default:
		}
	}
}

func (n *nodeBridge) all0() []line {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]line(nil), n.lines...)
}

func (n *nodeBridge) all() []ev {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]ev(nil), n.evs...)
}

func (n *nodeBridge) waitLine(t *testing.T, kind string) (int, line) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		for i, l := range n.all0() {
			if l.str("t") == kind {
				return i, l
			}
		}
		select {
		case <-n.more:
		case <-deadline:
			t.Fatalf("node twilio.cjs printed no %s within 30s: %v", kind, n.all0())
		}
	}
}

func (n *nodeBridge) wait(t *testing.T, from int, what string, match func(ev) bool) (int, ev) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		evs := n.all()
		for i := from; i < len(evs); i++ {
			if match(evs[i]) {
				return i, evs[i]
			}
		}
		select {
		case <-n.more:
		case <-deadline:
			t.Fatalf("no %s within 30s; the bridge got %s", what, types(n.all()))
		}
	}
}

func (n *nodeBridge) command(t *testing.T, cmd string) {
	t.Helper()
	if _, err := io.WriteString(n.stdin, cmd+"\n"); err != nil {
		t.Fatal(err)
	}
}

// prompt is the SDK's session.sendMessage.
func (n *nodeBridge) prompt(t *testing.T, text string) { n.command(t, "prompt "+text) }

// send is the transport's sendEvent.
func (n *nodeBridge) send(t *testing.T, v map[string]any) {
	t.Helper()
	b, _ := json.Marshal(v)
	n.command(t, "send "+string(b))
}
