package realtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/ratelimit"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/speech"
	"github.com/parleyhq/parley/pipeline/turn"
	"github.com/parleyhq/parley/signaling"
	"github.com/parleyhq/parley/signaling/realtime"
)

func testLogger() *slog.Logger {
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// server is one replica serving /v1/realtime on a real Redis, wired as
// cmd/parley wires it, on an httptest server on 127.0.0.1.
type server struct {
	URL   string // ws://…/v1/realtime
	store *session.Store
	http  *httptest.Server
	gw    *signaling.Gateway
}

type opts struct {
	engine   turn.Config
	gateway  signaling.Config
	realtime realtime.Config
	asr      speech.ASR // with tts: voice on
	tts      speech.TTS
	call     call.Config
	tls      bool
}

func start(t testing.TB, model llm.LLM, o opts) *server {
	t.Helper()
	log := testLogger()
	rdb := redistest.Start(t).Client()
	cmds, err := rdb.AutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	store := session.NewStore(cmds, session.Config{})
	hub := session.NewHub(rdb, store, log)
	eng, err := turn.NewEngine(cmds, store, ratelimit.New(cmds, ratelimit.Config{}), model, o.engine, log)
	if err != nil {
		t.Fatal(err)
	}
	var voice *call.Voice
	if o.asr != nil {
		voice = &call.Voice{Turns: eng, Events: hub, ASR: o.asr, TTS: o.tts, Config: o.call}
	}
	gw := signaling.NewGateway(o.gateway, log)
	srv := realtime.NewServer(o.realtime, gw, &signaling.Sessions{Store: store, Hub: hub}, eng, voice, log)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = hub.Run(ctx) }() // both end with ctx
	go func() { defer wg.Done(); _ = eng.Run(ctx) }()
	mux := http.NewServeMux()
	mux.Handle("GET /v1/realtime", srv)
	mux.HandleFunc("POST /v1/realtime/client_secrets", srv.ServeSecrets)
	mux.HandleFunc("/v1/realtime/calls", srv.ServeCalls)
	s := &server{store: store, gw: gw}
	if o.tls {
		s.http = httptest.NewUnstartedServer(mux)
	} else {
		s.http = httptest.NewServer(mux)
	}
	s.URL = "ws" + strings.TrimPrefix(s.http.URL, "http") + "/v1/realtime"
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = gw.Shutdown(sctx)
		s.http.Close()
		cancel()
		wg.Wait()
	})
	return s
}

// rt is a Realtime client of a test: it reads every server event into a
// list, and waits for the ones it wants.
type rt struct {
	t     testing.TB
	ws    *websocket.Conn
	write func([]byte) error // a WebRTC client's data channel; nil: ws
	mu    sync.Mutex
	evs   []ev
	more  chan struct{}
	seq   int
	done  chan struct{}
	// session is the Parley session's id, from session.created.
	session string
	err     error // what ended the reading
}

// closeCode is the code of the close frame that ended the socket (-1 for
// none).
func closeCode(c *rt) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ce, ok := c.err.(*websocket.CloseError); ok {
		return ce.Code
	}
	return -1
}

// ev is one server event, decoded loosely.
type ev map[string]any

func (e ev) typ() string { s, _ := e["type"].(string); return s }

// str is the string at a path of keys ("response.id").
func (e ev) str(path string) string {
	v := e.get(path)
	s, _ := v.(string)
	return s
}

func (e ev) get(path string) any {
	var v any = map[string]any(e)
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func (e ev) num(path string) float64 { f, _ := e.get(path).(float64); return f }

func dial(t testing.TB, url string, h http.Header, subprotocols ...string) *rt {
	t.Helper()
	d := websocket.Dialer{Subprotocols: subprotocols, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial(url, h)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c := &rt{t: t, ws: ws, more: make(chan struct{}, 1), done: make(chan struct{})}
	go c.read() // ends when the socket closes
	t.Cleanup(func() { _ = ws.Close(); <-c.done })
	return c
}

func (c *rt) read() {
	defer close(c.done)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		if !c.push(data) {
			return
		}
	}
}

// push adds a server event the client read.
func (c *rt) push(data []byte) bool {
	var e ev
	if json.Unmarshal(data, &e) != nil {
		c.t.Errorf("a frame that is not JSON: %q", data)
		return false
	}
	c.mu.Lock()
	c.evs = append(c.evs, e)
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
	return true
}

func (c *rt) writeText(b []byte) error {
	if c.write != nil {
		return c.write(b)
	}
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// send sends a client event with an event_id of its own, and returns it.
func (c *rt) send(v map[string]any) string {
	c.t.Helper()
	c.seq++
	id := fmt.Sprintf("client_%d", c.seq)
	if _, ok := v["event_id"]; !ok {
		v["event_id"] = id
	}
	b, _ := json.Marshal(v)
	if err := c.writeText(b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
	return id
}

func (c *rt) raw(data string) {
	c.t.Helper()
	if err := c.writeText([]byte(data)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// all is every event read so far.
func (c *rt) all() []ev {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ev(nil), c.evs...)
}

// wait waits for the first event, after the from-th, that match accepts,
// and returns its index.
func (c *rt) wait(from int, what string, match func(ev) bool) (int, ev) {
	c.t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		evs := c.all()
		for i := from; i < len(evs); i++ {
			if match(evs[i]) {
				return i, evs[i]
			}
		}
		select {
		case <-c.more:
		case <-c.done:
			c.t.Fatalf("the socket closed before %s; got %s", what, types(c.all()))
		case <-deadline:
			c.t.Fatalf("no %s within 15s; got %s", what, types(c.all()))
		}
	}
}

// waitType waits for an event of type typ after the from-th.
func (c *rt) waitType(from int, typ string) (int, ev) {
	c.t.Helper()
	return c.wait(from, typ, func(e ev) bool { return e.typ() == typ })
}

// errorFor waits for the error that names eventID.
func (c *rt) errorFor(eventID string) ev {
	c.t.Helper()
	_, e := c.wait(0, "an error for "+eventID, func(e ev) bool { return e.typ() == "error" && e.str("error.event_id") == eventID })
	return e
}

func types(evs []ev) string {
	var b []string
	for _, e := range evs {
		b = append(b, e.typ())
	}
	return strings.Join(b, ", ")
}

// typesOf are the types of evs[from:to+1] without the ones in skip.
func typesOf(evs []ev, skip ...string) []string {
	var out []string
outer:
	for _, e := range evs {
		for _, s := range skip {
			if e.typ() == s {
				continue outer
			}
		}
		out = append(out, e.typ())
	}
	return out
}

// connect dials and waits for session.created.
func connect(t testing.TB, s *server) *rt {
	t.Helper()
	c := dial(t, s.URL, nil)
	_, e := c.waitType(0, "session.created")
	c.session = strings.TrimPrefix(e.str("session.id"), "sess_")
	return c
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
