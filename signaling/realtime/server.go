package realtime

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/parleyhq/parley/media/opus"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/tools"
	"github.com/parleyhq/parley/pipeline/turn"
	"github.com/parleyhq/parley/signaling"
	"github.com/parleyhq/parley/signaling/rtc"
)

// Config of a Server. A zero field means the default in its comment.
type Config struct {
	// MaxAppend bounds the audio of one input_audio_buffer.append, in
	// bytes once decoded from base64; default 512 KiB (about 11 s of PCM16
	// at 24 kHz). A larger one is refused with an error; the session goes
	// on.
	MaxAppend int
	// MaxMessage is the largest frame read, in bytes: an append's base64
	// is a third larger than its audio. Default 1 MiB.
	MaxMessage int64
	MaxText    int // longest input_text, in characters; default 4000
	// WebRTC is the network of POST /v1/realtime/calls's peers.
	WebRTC rtc.Config
	// Opus encodes the bot's audio to a WebRTC call; zero: opus.Codec's
	// defaults.
	Opus opus.Codec
	// Tools are the server's own tools (the MCP servers'), which the mcp
	// entries of a session's tools name; nil: none.
	Tools tools.Toolbox
}

func (c *Config) setDefaults() {
	if c.MaxAppend <= 0 {
		c.MaxAppend = 512 << 10
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = 1 << 20
	}
	if c.MaxText <= 0 {
		c.MaxText = 4000
	}
}

// Turns is what a connection asks of the turn engine (turn.Engine).
type Turns interface {
	AppendItem(ctx context.Context, sessionID, text string, source event.Source) (int64, error)
	CreateResponse(ctx context.Context, sessionID string, opts turn.ResponseOptions) (int64, error)
	CreateSpokenResponse(ctx context.Context, sessionID string, opts turn.ResponseOptions, written func(turn int64, reply string)) (int64, error)
	Interrupt(ctx context.Context, sessionID string) error
	ToolResult(ctx context.Context, sessionID, callID, output string) error
}

var (
	messagesIn = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "realtime", Name: "client_events_total",
		Help: "Realtime client events by type; refused ones as \"invalid\".",
	}, []string{"type"})
	sessionsOpened = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "realtime", Name: "sessions_total",
		Help: "Realtime sessions opened, by event names (ga or beta).",
	}, []string{"names"})
	droppedPackets = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "realtime", Name: "dropped_audio_packets_total",
		Help: "Packets of a WebRTC caller's audio that were not Opus, dropped.",
	})
)

// Server serves the OpenAI Realtime protocol on /v1/realtime, through
// the gateway.
type Server struct {
	cfg      Config
	gw       *signaling.Gateway
	ep       *signaling.Endpoint
	sessions *signaling.Sessions
	turns    Turns
	voice    *call.Voice // nil: text only
	rtc      *rtc.APIs   // nil: no WebRTC calls
	log      *slog.Logger
}

// Subprotocols the server answers: "realtime", which the browser SDKs
// offer and expect back, else the beta switch when it is all that is
// offered besides the key (a browser fails a handshake that answers none
// of what it offered).
const (
	protoRealtime = "realtime"
	protoBeta     = "openai-beta.realtime-v1"
	protoKey      = "openai-insecure-api-key."
)

// NewServer returns a Server. voice is the replica's voice stack; nil
// serves text only.
func NewServer(cfg Config, gw *signaling.Gateway, sessions *signaling.Sessions, turns Turns, voice *call.Voice, log *slog.Logger) *Server {
	cfg.setDefaults()
	s := &Server{cfg: cfg, gw: gw, sessions: sessions, turns: turns, voice: voice, log: log}
	s.ep = gw.Endpoint(signaling.Protocol{
		CloseCode: CloseCode, GoingAway: goingAway, Subprotocols: []string{protoRealtime, protoBeta},
		Token: subprotocolKey, MaxMessage: cfg.MaxMessage, Refusal: refusal,
	})
	if apis, err := rtc.NewAPIs(cfg.WebRTC); err != nil {
		log.Error("WebRTC calls are off", "err", err)
	} else {
		s.rtc = apis
	}
	return s
}

// subprotocolKey is the key a browser client offers as the subprotocol
// "openai-insecure-api-key.<key>" (its WebSocket can set no header).
func subprotocolKey(r *http.Request) string {
	for _, p := range websocket.Subprotocols(r) {
		if k, ok := strings.CutPrefix(p, protoKey); ok {
			return k
		}
	}
	return ""
}

// beta reports whether the client asked for the beta protocol: the
// OpenAI-Beta header, or its subprotocol.
func beta(r *http.Request) bool {
	for _, v := range r.Header.Values("OpenAI-Beta") {
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), "realtime=v1") {
				return true
			}
		}
	}
	for _, p := range websocket.Subprotocols(r) {
		if p == protoBeta {
			return true
		}
	}
	return false
}

// ServeHTTP admits the request through the gateway (origins, caps, the
// token in the header, ?access_token or the key subprotocol) and serves
// the socket on a goroutine of its own until it closes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sock := s.ep.Accept(w, r)
	if sock == nil {
		return // refused, and told why
	}
	c := newConn(s, sock, beta(r), r.URL.Query().Get("model"))
	// The session is made here, on the handler's goroutine, which then
	// ends: on the socket's own, its deep calls would double the stack an
	// idle socket keeps.
	opened := c.open()
	s.ep.Serve(sock, func() { c.run(opened) })
}

// goingAway is the last event of a socket whose replica drains: an error
// that says so. The client connects again (to any replica), which makes
// a new session: the Realtime protocol has no resume.
func goingAway(retryAfter time.Duration) []byte {
	b, _ := json.Marshal(map[string]any{"type": "error", "event_id": "event_shutdown", "error": map[string]any{
		"type": "server_error", "code": "server_shutdown", "param": nil, "event_id": nil,
		"message": fmt.Sprintf("this server is shutting down; connect again in %d ms (a new session)", retryAfter.Milliseconds())}})
	return b
}

// CloseCode is the Realtime protocol's close code for a reason: OpenAI's
// service closes with standard codes, so the reasons map onto them (the
// reason's name is the close frame's text): 1000 for a client's own
// close, 1009 for a frame too large, 1012 for a drain (reconnect: a new
// session), 1008 (policy) for a flood of bad events or a slow client, 1001
// for a read timeout or a failed write.
func CloseCode(r signaling.Reason) int {
	switch r {
	case signaling.ReasonBye, signaling.ReasonClientClosed:
		return websocket.CloseNormalClosure
	case signaling.ReasonTooBig:
		return websocket.CloseMessageTooBig
	case signaling.ReasonShutdown:
		return websocket.CloseServiceRestart
	case signaling.ReasonTooManyErrors, signaling.ReasonSlowClient, signaling.ReasonUnauthorized:
		return websocket.ClosePolicyViolation
	}
	return websocket.CloseGoingAway
}
