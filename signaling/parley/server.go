package parley

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/parleyhq/parley/media/opus"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/tools"
	"github.com/parleyhq/parley/signaling"
	"github.com/parleyhq/parley/signaling/rtc"
)

// Config of a Server. A zero field means the default in its comment.
type Config struct {
	MaxText int // longest text turn, in characters; default 4000
	WebRTC  rtc.Config
	Opus    opus.Codec // the bot's audio; zero: opus.Codec's defaults
	// Tools are the server's own tools (the MCP servers'), which a hello's
	// server_tools names; nil: none.
	Tools tools.Toolbox
}

func (c *Config) setDefaults() {
	if c.MaxText <= 0 {
		c.MaxText = 4000
	}
}

// Turns is what a socket asks of the turn engine.
type Turns interface {
	// Submit bounds its own time once it has admitted the turn; ctx is the
	// socket's.
	Submit(ctx context.Context, sessionID, text string, source event.Source) (int64, error)
	Interrupt(ctx context.Context, sessionID string) error
	ToolResult(ctx context.Context, sessionID, callID, output string) error
}

var (
	messagesIn = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "ws", Name: "messages_total",
		Help: "Client messages by type; invalid ones as \"invalid\".",
	}, []string{"type"})
	// One counter per type, looked up once: a flood of messages pays no
	// label hashing per message.
	messagesByType = func() map[string]prometheus.Counter {
		m := map[string]prometheus.Counter{"binary": messagesIn.WithLabelValues("binary"), "invalid": messagesIn.WithLabelValues("invalid")}
		for t := range knownTypes {
			m[t] = messagesIn.WithLabelValues(t)
		}
		return m
	}()
	droppedAudio = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "ws", Name: "dropped_audio_total",
		Help: "Audio frames dropped: bad_packet (caller's, not Opus), slow_client (ours, oldest first).",
	}, []string{"why"})
)

// Server serves the Parley protocol on /ws, through the gateway.
type Server struct {
	cfg      Config
	gw       *signaling.Gateway
	ep       *signaling.Endpoint
	sessions *signaling.Sessions
	turns    Turns
	log      *slog.Logger

	voice *call.Voice // nil: text only
	rtc   *rtc.APIs   // nil: no WebRTC

	// refusal is the last turn error sent and its wire form: under
	// overload every refusal is the same busy error, whose JSON need not
	// be made again for each. Shared by the connections.
	refusal atomic.Pointer[refusalWire]
}

type refusalWire struct {
	ev   event.Error
	wire []byte // never modified once stored
}

// turnErrorWire is ev's wire form, reused when it is the last one's.
func (s *Server) turnErrorWire(ev event.Error) []byte {
	if last := s.refusal.Load(); last != nil && last.ev == ev {
		return last.wire
	}
	w := event.Marshal(ev)
	s.refusal.Store(&refusalWire{ev: ev, wire: w})
	return w
}

// NewServer returns a Server. voice is the replica's voice stack; nil
// serves text only.
func NewServer(cfg Config, gw *signaling.Gateway, sessions *signaling.Sessions, turns Turns, voice *call.Voice, log *slog.Logger) *Server {
	cfg.setDefaults()
	s := &Server{cfg: cfg, gw: gw, sessions: sessions, turns: turns, voice: voice, log: log}
	s.ep = gw.Endpoint(signaling.Protocol{CloseCode: CloseCode, GoingAway: reconnectWire})
	if apis, err := rtc.NewAPIs(cfg.WebRTC); err != nil {
		log.Error("WebRTC is off", "err", err)
	} else {
		s.rtc = apis
	}
	return s
}

// ServeHTTP admits the request through the gateway and serves the socket
// on a goroutine of its own until it closes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sock := s.ep.Accept(w, r)
	if sock == nil {
		return // refused, and told why
	}
	c := newConn(s, sock)
	s.ep.Serve(sock, c.serve)
}

// opus is the codec of the Parley protocol's call audio, both ways.
func (s *Server) opus() opus.Codec { return s.cfg.Opus }

// callRate is the rate Opus decodes a caller's audio to: the recogniser's
// where Opus can (no resampler), else its own 48 kHz.
func (s *Server) callRate() int {
	if r := s.voice.ListenRate(); opus.NativeRate(r) {
		return r
	}
	return opus.Rate
}
