package signaling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/parleyhq/parley/pipeline"
	"github.com/parleyhq/parley/pipeline/session"
)

// Config of a Server. A zero field means the default in its comment.
type Config struct {
	// AllowedOrigins lists the browser origins (scheme://host[:port]) that
	// may open /ws. Empty: only the server's own host. "*" allows any.
	// Requests without an Origin header (non-browser clients) are allowed.
	AllowedOrigins []string
	MaxMessage     int64         // largest frame read, in bytes; larger closes the socket; default 64 KiB
	MaxText        int           // longest text turn, in characters; default 4000
	SendQueue      int           // frames queued per socket before it counts as slow; default 256
	WriteTimeout   time.Duration // deadline of every write; default 10s
	PingInterval   time.Duration // WebSocket ping period; default 30s
	ReadTimeout    time.Duration // silence (no frame, no pong) that closes the socket; default 75s
	HelloTimeout   time.Duration // time to say hello after connecting; default 10s
	WebRTC         WebRTCConfig

	Auth AuthConfig // who may connect; default: anyone
	// Per client IP, opt-in: open connections, and new connections per
	// second with a burst (default twice the rate). Zero (the default)
	// means no cap, as in nginx, Centrifugo and LiveKit: behind a proxy or
	// a NAT many good clients share one address, and a cap on it refuses
	// them (docs/operations.md has values for a server exposed directly).
	// Behind a proxy every client has the proxy's IP unless TrustProxy
	// takes X-Forwarded-For.
	MaxConnsPerIP    int
	ConnectRatePerIP float64
	ConnectBurst     int
	TrustProxy       bool
	Now              func() time.Time // the clock of token expiry and the caps; default time.Now
}

func (c *Config) setDefaults() {
	if c.MaxMessage <= 0 {
		c.MaxMessage = 64 << 10
	}
	if c.MaxText <= 0 {
		c.MaxText = 4000
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 256
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 75 * time.Second
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	// The caps are off unless set (the limiter treats <= 0 as off).
	if c.ConnectBurst <= 0 && c.ConnectRatePerIP > 0 {
		c.ConnectBurst = int(math.Max(1, math.Ceil(2*c.ConnectRatePerIP)))
	}
}

// Turns is what a socket asks of the pipeline.
type Turns interface {
	Submit(ctx context.Context, sessionID, text, source string) (int64, error)
	Interrupt(ctx context.Context, sessionID string) error
}

var (
	connections = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "ws", Name: "connections",
		Help: "Open WebSocket connections.",
	})
	disconnects = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "ws", Name: "disconnects_total",
		Help: "Closed WebSocket connections by reason.",
	}, []string{"reason"})
	messagesIn = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "ws", Name: "messages_total",
		Help: "Client messages by type; invalid ones as \"invalid\".",
	}, []string{"type"})
	droppedAudio = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "ws", Name: "dropped_audio_total",
		Help: "Audio frames dropped: bad_packet (caller's, not Opus), slow_client (ours, oldest first).",
	}, []string{"why"})
	refused = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "ws", Name: "refused_total",
		Help: "Requests to /ws refused before the upgrade, by reason.",
	}, []string{"reason"})
	replayed = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "ws", Name: "replayed_events_total",
		Help: "Events sent from the session log to resuming clients.",
	})
)

// Server serves the /ws endpoint.
type Server struct {
	cfg      Config
	store    *session.Store
	hub      *session.Hub
	turns    Turns
	log      *slog.Logger
	upgrader websocket.Upgrader
	ipLimit  *ipLimiter

	voice *voice   // nil: text only
	rtc   *rtcAPIs // nil: no WebRTC

	mu       sync.Mutex
	conns    map[*conn]struct{}
	shutdown bool
	wg       sync.WaitGroup
}

// NewServer returns a Server.
func NewServer(cfg Config, store *session.Store, hub *session.Hub, turns Turns, log *slog.Logger) *Server {
	cfg.setDefaults()
	s := &Server{cfg: cfg, store: store, hub: hub, turns: turns, log: log, conns: make(map[*conn]struct{}),
		ipLimit: newIPLimiter(cfg.MaxConnsPerIP, cfg.ConnectRatePerIP, cfg.ConnectBurst, cfg.Now)}
	if apis, err := newRTCAPIs(cfg.WebRTC); err != nil {
		log.Error("WebRTC is off", "err", err)
	} else {
		s.rtc = apis
	}
	s.upgrader = websocket.Upgrader{
		// Memory per idle socket decides how many fit in a replica: no
		// write buffer between writes (pooled), and a small read buffer of
		// our own so that the HTTP server's 4 KiB one can go.
		WriteBufferPool: &sync.Pool{},
		ReadBufferSize:  1024,
		CheckOrigin:     s.checkOrigin,
	}
	return s
}

type voice struct {
	turns pipeline.CallTurns
	asr   pipeline.ASR
	tts   pipeline.TTS
	cfg   pipeline.CallConfig
}

// SetVoice enables voice calls with these providers. Call it before
// serving.
func (s *Server) SetVoice(turns pipeline.CallTurns, asr pipeline.ASR, tts pipeline.TTS, cfg pipeline.CallConfig) {
	s.voice = &voice{turns: turns, asr: asr, tts: tts, cfg: cfg}
}

func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true
		}
	}
	if len(s.cfg.AllowedOrigins) == 0 {
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	return false
}

// refuse answers a request that may not be upgraded, with the reason's
// name and a message in words. Never the token: it is not logged either,
// only the reason and the peer's address.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, reason Reason, msg string) {
	refused.WithLabelValues(reason.String()).Inc()
	what := "refused"
	if status == http.StatusUnauthorized {
		what = "auth failed"
	}
	s.log.Info(what, "remote", r.RemoteAddr, "reason", reason.String())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(reason.String() + ": " + msg + "\n"))
}

// ServeHTTP upgrades the request to a WebSocket and serves it until it
// closes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The per-IP caps come first, so that a client guessing tokens spends
	// its address's budget (and our HMACs) like any other; a request
	// refused later gives its connection slot back.
	ip := clientIP(r, s.cfg.TrustProxy)
	if reason, wait, ok := s.ipLimit.admit(ip); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		msg := fmt.Sprintf("more than %d open connections from this address", s.cfg.MaxConnsPerIP)
		if reason == ReasonIPRate {
			msg = fmt.Sprintf("more than %g new connections per second from this address", s.cfg.ConnectRatePerIP)
		}
		s.refuse(w, r, http.StatusTooManyRequests, reason, msg)
		return
	}
	if err := s.cfg.Auth.authenticate(r, s.cfg.Now()); err != nil {
		s.ipLimit.release(ip)
		reason := ReasonUnauthorized
		if errors.Is(err, errTokenExpired) {
			reason = ReasonTokenExpired
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
		s.refuse(w, r, http.StatusUnauthorized, reason, err.Error())
		return
	}
	if !s.checkOrigin(r) {
		s.ipLimit.release(ip)
		s.refuse(w, r, http.StatusForbidden, ReasonOrigin, "origin "+strconv.Quote(r.Header.Get("Origin"))+" is not allowed (-allowed-origins)")
		return
	}
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		s.ipLimit.release(ip)
		s.refuse(w, r, http.StatusServiceUnavailable, ReasonShutdown, "this server is shutting down; connect to another")
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()

	cw := &corkWriter{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(cw, r, nil)
	if err != nil {
		s.wg.Done()
		s.ipLimit.release(ip)
		s.log.Debug("upgrade failed", "remote", r.RemoteAddr, "err", err)
		return // the upgrader has answered
	}
	c := newConn(s, ws, s.log.With("remote", r.RemoteAddr))
	c.cork = cw.conn
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	connections.Inc()
	// The socket is served on a goroutine of its own and this handler
	// returns: the HTTP server then lets go of its buffers and of the
	// handler's deep stack, about a third of an idle socket's memory.
	go func() { // ends when the connection has closed
		defer s.wg.Done()
		defer s.ipLimit.release(ip)
		c.serve()
		connections.Dec()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

// Shutdown refuses new sockets, closes the open ones with ReasonShutdown
// (clients reconnect, to any replica) and waits for their goroutines, or
// for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		// Said before the close frame, which follows the queued frames.
		c.enqueue(frame{data: reconnectWire})
		c.close(ReasonShutdown)
	}
	done := make(chan struct{})
	go func() { // ends when every connection has ended
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
