package twilio

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/media/g711"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/ratelimit"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/speech"
	"github.com/parleyhq/parley/pipeline/turn"
	"github.com/parleyhq/parley/signaling"
)

func testLogger() *slog.Logger {
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// replica is one server with the Twilio front end on a real Redis: the
// same wiring as cmd/parley, on an httptest server on 127.0.0.1.
type replica struct {
	base   string // http://127.0.0.1:port
	rdb    *redis.Client
	store  *session.Store
	gw     *signaling.Gateway
	srv    *Server
	http   *httptest.Server
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

type replicaOpts struct {
	twilio Config
	ws     signaling.Config
	asr    speech.ASR // with tts; nil: no voice stack
	tts    speech.TTS
	call   call.Config

	recorder call.Recorder // Voice.Recorder; nil: calls are not recorded
}

func startReplica(t testing.TB, model llm.LLM, o replicaOpts) *replica {
	t.Helper()
	log := testLogger()
	rdb := redistest.Start(t).Client()
	cmds, err := rdb.AutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	store := session.NewStore(cmds, session.Config{})
	hub := session.NewHub(rdb, store, log)
	eng, err := turn.NewEngine(cmds, store, ratelimit.New(cmds, ratelimit.Config{}), model, turn.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	var voice *call.Voice
	if o.asr != nil {
		voice = &call.Voice{Turns: eng, Events: hub, ASR: o.asr, TTS: o.tts, Config: o.call, Recorder: o.recorder}
	}
	gw := signaling.NewGateway(o.ws, log)
	srv, err := NewServer(o.twilio, gw, store, voice, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{rdb: rdb, store: store, gw: gw, srv: srv, cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = hub.Run(ctx) }() // both end with ctx
	go func() { defer wg.Done(); _ = eng.Run(ctx) }()
	go func() { wg.Wait(); close(r.done) }()
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+VoicePath, srv.ServeVoice)
	mux.HandleFunc("GET "+MediaPath, srv.ServeMedia)
	r.http = httptest.NewServer(mux)
	r.base = r.http.URL
	t.Cleanup(r.stop)
	return r
}

func (r *replica) stop() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.gw.Shutdown(ctx) // hijacked sockets are not closed by httptest
		r.http.Close()
	})
}

func (r *replica) mediaURL() string { return "ws" + strings.TrimPrefix(r.base, "http") + MediaPath }

// events is the session's stored log, decoded, oldest first.
func (r *replica) events(t testing.TB, id string) []event.Event {
	t.Helper()
	evs, err := r.store.Range(context.Background(), id, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []event.Event
	for _, e := range evs {
		if _, ev, err := event.Decode(e.Wire); err == nil {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent waits for a stored event that match accepts, and returns it.
func (r *replica) waitEvent(t testing.TB, id, what string, match func(event.Event) bool) event.Event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, ev := range r.events(t, id) {
			if match(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s stored in 30 s: %+v", what, r.events(t, id))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// replyDone matches the reply.done of turn.
func replyDone(turn int64) func(event.Event) bool {
	return func(ev event.Event) bool { d, ok := ev.(event.ReplyDone); return ok && d.Turn == turn }
}

// sessionOf is the id of the session whose metadata names the call
// (callSid), once there is one.
func (r *replica) sessionOf(t testing.TB, callSid string) string {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		keys, _ := r.rdb.Keys(ctx, "parley:{*}:meta").Result()
		for _, k := range keys {
			id := strings.TrimSuffix(strings.TrimPrefix(k, "parley:{"), "}:meta")
			if md, _ := r.store.Metadata(ctx, id); md["twilio.call_sid"] == callSid {
				return id
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session for call %s", callSid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// --- the fake Twilio: a Media Stream client speaking Twilio's documented messages ---

// got is one media frame the fake received: its mu-law bytes and when.
type got struct {
	at      time.Time
	payload []byte
}

// clearSeen is a clear the fake received: how many frames had come, and
// the last mark it had echoed as played.
type clearSeen struct {
	at     time.Time
	frames int
	played int64
}

// fakeTwilio is Twilio's side of one Media Stream. It "plays" the bot's
// audio: each mark is echoed playDelay after it came (a buffer in front
// of the caller's ear); a clear drops what is queued and returns its
// marks at once, as Twilio does. With playDelay < 0 it echoes nothing
// until a clear (a stalled buffer).
type fakeTwilio struct {
	t         testing.TB
	ws        *websocket.Conn
	sid       string
	callSid   string
	playDelay time.Duration

	wmu  sync.Mutex // writes
	seq  int
	mu   sync.Mutex
	in   []got
	msgs []string // every event's name, in order
	// marks the fake was sent, in order, and those due to be echoed
	marks   []int64
	pending []pendingMark
	echoed  int64
	clears  []clearSeen
	other   []string // messages that are neither media, mark nor clear
	closed  error    // the read error that ended the stream
	done    chan struct{}
	// the line's queue (openLine): frames still to say, and when each
	// utterance's first frame went
	said  [][]byte
	saids []time.Time
	first []bool
	sent  int // frames a speaker phone's line sent (echo_test.go)
}

type pendingMark struct {
	n   int64
	due time.Time
}

// dialTwilio opens a Media Stream as Twilio does (with h's headers: the
// signature) and sends connected; start is the test's.
func dialTwilio(t testing.TB, url string, h http.Header, playDelay time.Duration) *fakeTwilio {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", url, err, resp)
	}
	f := &fakeTwilio{t: t, ws: ws, playDelay: playDelay, done: make(chan struct{}),
		sid: "MZ" + strconv.FormatInt(time.Now().UnixNano(), 16), callSid: "CA" + strconv.FormatInt(time.Now().UnixNano(), 16)}
	t.Cleanup(func() { ws.Close(); <-f.done })
	go f.read()   // ends when the socket closes
	go f.player() // ends with read
	f.send(map[string]any{"event": "connected", "protocol": "Call", "version": "1.0.0"})
	return f
}

func (f *fakeTwilio) send(v any) {
	f.t.Helper()
	b, _ := json.Marshal(v)
	if err := f.write(b); err != nil {
		f.t.Fatalf("send: %v", err)
	}
}

func (f *fakeTwilio) write(b []byte) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	_ = f.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return f.ws.WriteMessage(websocket.TextMessage, b)
}

// start sends the start message with the stream's format and parameters.
func (f *fakeTwilio) start(format mediaFormat, params map[string]string) {
	f.t.Helper()
	f.seq++
	f.send(map[string]any{"event": "start", "sequenceNumber": strconv.Itoa(f.seq), "streamSid": f.sid,
		"start": map[string]any{"accountSid": "AC0123", "streamSid": f.sid, "callSid": f.callSid,
			"tracks": []string{"inbound"}, "mediaFormat": format, "customParameters": params}})
}

// speak sends 20 ms mu-law frames as media messages, one every 20 ms, as
// Twilio relays a caller's line; it stops at the first failed write.
func (f *fakeTwilio) speak(frames [][]byte) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i, fr := range frames {
		<-tick.C
		f.seq++
		b, _ := json.Marshal(map[string]any{"event": "media", "sequenceNumber": strconv.Itoa(f.seq), "streamSid": f.sid,
			"media": map[string]any{"track": "inbound", "chunk": strconv.Itoa(i + 1), "timestamp": strconv.Itoa(i * 20), "payload": fr}})
		if err := f.write(b); err != nil {
			return err
		}
	}
	return nil
}

// openLine keeps the caller's line open, as Twilio relays it: a media
// frame every 20 ms, of what say queued or else silence, until the
// socket closes.
func (f *fakeTwilio) openLine() {
	quiet := g711.MuLaw.Append(nil, make([]int16, g711.Frame))
	go func() { // ends when the socket closes
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-f.done:
				return
			case <-tick.C:
			}
			fr := quiet
			f.mu.Lock()
			if len(f.said) > 0 {
				fr, f.said = f.said[0], f.said[1:]
				if f.first[0] {
					f.saids = append(f.saids, time.Now())
				}
				f.first = f.first[1:]
			}
			f.seq++
			seq := f.seq
			f.mu.Unlock()
			b, _ := json.Marshal(map[string]any{"event": "media", "sequenceNumber": strconv.Itoa(seq), "streamSid": f.sid,
				"media": map[string]any{"track": "inbound", "chunk": strconv.Itoa(i + 1), "timestamp": strconv.Itoa(i * 20), "payload": fr}})
			if f.write(b) != nil {
				return
			}
		}
	}()
}

// say queues an utterance on the open line, and returns how many frames
// the fake had received when it did.
func (f *fakeTwilio) say(frames [][]byte) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range frames {
		f.first = append(f.first, i == 0)
	}
	f.said = append(f.said, frames...)
	return len(f.in)
}

// sayStarted is when the n-th utterance said (from 0) began going out.
func (f *fakeTwilio) sayStarted(n int) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n < len(f.saids) {
		return f.saids[n], true
	}
	return time.Time{}, false
}

func (f *fakeTwilio) dtmf(digit string) {
	f.t.Helper()
	f.send(map[string]any{"event": "dtmf", "streamSid": f.sid, "sequenceNumber": "0", "dtmf": map[string]string{"track": "inbound_track", "digit": digit}})
}

func (f *fakeTwilio) stop() {
	f.t.Helper()
	f.send(map[string]any{"event": "stop", "streamSid": f.sid, "sequenceNumber": "0", "stop": map[string]string{"accountSid": "AC0123", "callSid": f.callSid}})
}

func (f *fakeTwilio) read() {
	defer close(f.done)
	for {
		kind, b, err := f.ws.ReadMessage()
		if err != nil {
			f.mu.Lock()
			f.closed = err
			f.mu.Unlock()
			return
		}
		var m struct {
			Event, StreamSid string
			Media            struct{ Payload []byte }
			Mark             struct{ Name string }
		}
		if kind != websocket.TextMessage || json.Unmarshal(b, &m) != nil || m.StreamSid != f.sid {
			f.mu.Lock()
			f.other = append(f.other, string(b))
			f.mu.Unlock()
			continue
		}
		now := time.Now()
		f.mu.Lock()
		f.msgs = append(f.msgs, m.Event)
		switch m.Event {
		case "media":
			f.in = append(f.in, got{at: now, payload: m.Media.Payload})
		case "mark":
			n, _ := strconv.ParseInt(m.Mark.Name, 10, 64)
			f.marks = append(f.marks, n)
			f.pending = append(f.pending, pendingMark{n: n, due: now.Add(f.playDelay)})
		case "clear":
			f.clears = append(f.clears, clearSeen{at: now, frames: len(f.in), played: f.echoed})
			dropped := f.pending
			f.pending = nil
			f.mu.Unlock()
			for _, p := range dropped { // returned at once, unplayed
				_ = f.write(markEcho(f.sid, p.n))
			}
			continue
		default:
			f.other = append(f.other, string(b))
		}
		f.mu.Unlock()
	}
}

// player echoes the marks that are due, as the audio before them plays.
func (f *fakeTwilio) player() {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-f.done:
			return
		case now := <-t.C:
			f.mu.Lock()
			var due []int64
			for f.playDelay >= 0 && len(f.pending) > 0 && !f.pending[0].due.After(now) {
				due = append(due, f.pending[0].n)
				f.echoed = f.pending[0].n
				f.pending = f.pending[1:]
			}
			f.mu.Unlock()
			for _, n := range due {
				_ = f.write(markEcho(f.sid, n))
			}
		}
	}
}

func markEcho(sid string, n int64) []byte {
	b, _ := json.Marshal(map[string]any{"event": "mark", "streamSid": sid, "sequenceNumber": "0", "mark": map[string]string{"name": strconv.FormatInt(n, 10)}})
	return b
}

// snapshot is what the fake has received so far.
func (f *fakeTwilio) snapshot() (in []got, marks []int64, msgs []string, clears []clearSeen) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]got(nil), f.in...), append([]int64(nil), f.marks...), append([]string(nil), f.msgs...), append([]clearSeen(nil), f.clears...)
}

// waitFor waits until cond holds for what the fake received.
func (f *fakeTwilio) waitFor(what string, d time.Duration, cond func(in []got, clears []clearSeen) bool) {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for {
		in, _, _, clears := f.snapshot()
		if cond(in, clears) {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("no %s within %v (%d frames, %d clears)", what, d, len(in), len(clears))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quiet waits until no frame has come for d (a reply played out).
func (f *fakeTwilio) quiet(d time.Duration) {
	f.t.Helper()
	f.waitFor("a pause in the bot's audio", 60*time.Second, func(in []got, _ []clearSeen) bool {
		return len(in) > 0 && time.Since(in[len(in)-1].at) > d
	})
}

// closeCode waits for the server to close the stream and returns its
// close code.
func (f *fakeTwilio) closeCode() int {
	f.t.Helper()
	select {
	case <-f.done:
	case <-time.After(15 * time.Second):
		f.t.Fatal("the server did not close the stream")
	}
	var ce *websocket.CloseError
	if errors.As(f.closed, &ce) {
		return ce.Code
	}
	f.t.Fatalf("the stream ended without a close frame: %v", f.closed)
	return 0
}

func decodeXML(r io.Reader, v any) error { return xml.NewDecoder(r).Decode(v) }
