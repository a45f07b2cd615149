package signaling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/parleyhq/parley/media/opus"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
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
	// ReconnectSpread is the window of the delays that Shutdown suggests to
	// its clients (retry_after_ms, uniform in [0, ReconnectSpread) per
	// socket), so that a drained replica's clients do not all reconnect to
	// the others in the same instant. Default 2s.
	ReconnectSpread time.Duration
	WebRTC          WebRTCConfig
	OpusComplexity  int // of the bot's audio, 1 to 10; default 5

	Auth AuthConfig // who may connect; default: anyone
	// Failed authentications per client address, counted whenever Auth is
	// on: AuthFailBurst at once, then AuthFailRate a second (default 10
	// and 1). Past that a wrong token gets 429 auth_rate, so guessing is
	// slow; a good token from the same address still passes, so a proxy's
	// good clients are never refused for another's mistakes.
	AuthFailBurst int
	AuthFailRate  float64
	// Per client IP, opt-in: open connections, and new connections per
	// second with a burst (default twice the rate). Zero (the default)
	// means no cap, as in nginx, Centrifugo and LiveKit: behind a proxy or
	// a NAT many good clients share one address, and a cap on it refuses
	// them (docs/operations.md has values for a server exposed directly).
	MaxConnsPerIP    int
	ConnectRatePerIP float64
	ConnectBurst     int
	// TrustedProxies are the addresses and networks of the proxies in
	// front of the server (see ParseTrustedProxies). From a peer among
	// them, the client's address is read from X-Forwarded-For or Forwarded,
	// right to left, past the trusted ones. Empty (the default): no header
	// is believed, the TCP peer is the client.
	TrustedProxies []netip.Prefix
	Now            func() time.Time // the clock of token expiry and the limiters; default time.Now
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
	if c.ReconnectSpread <= 0 {
		c.ReconnectSpread = 2 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.AuthFailBurst <= 0 {
		c.AuthFailBurst = 10
	}
	if c.AuthFailRate <= 0 {
		c.AuthFailRate = 1
	}
	// The caps are off unless set (the limiter treats <= 0 as off).
	if c.ConnectBurst <= 0 && c.ConnectRatePerIP > 0 {
		c.ConnectBurst = int(math.Max(1, math.Ceil(2*c.ConnectRatePerIP)))
	}
}

// Turns is what a socket asks of the turn engine.
type Turns interface {
	Submit(ctx context.Context, sessionID, text string, source event.Source) (int64, error)
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
	auth     *verifier
	authFail *authLimiter

	voice *call.Voice // nil: text only
	rtc   *rtcAPIs    // nil: no WebRTC

	mu       sync.Mutex
	conns    map[*conn]struct{}
	shutdown bool
	wg       sync.WaitGroup
}

// NewServer returns a Server. voice is the replica's voice stack; nil
// serves text only.
func NewServer(cfg Config, store *session.Store, hub *session.Hub, turns Turns, voice *call.Voice, log *slog.Logger) *Server {
	cfg.setDefaults()
	s := &Server{cfg: cfg, store: store, hub: hub, turns: turns, voice: voice, log: log, conns: make(map[*conn]struct{}),
		ipLimit:  newIPLimiter(cfg.MaxConnsPerIP, cfg.ConnectRatePerIP, cfg.ConnectBurst, cfg.Now),
		auth:     newVerifier(cfg.Auth),
		authFail: newAuthLimiter(cfg.AuthFailRate, cfg.AuthFailBurst, cfg.Now)}
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

// opus is the codec of the Parley protocol's call audio, both ways.
func (s *Server) opus() opus.Codec { return opus.Codec{Complexity: s.cfg.OpusComplexity} }

// callRate is the rate Opus decodes a caller's audio to: the recogniser's
// where Opus can (no resampler), else its own 48 kHz.
func (s *Server) callRate() int {
	if r := s.voice.ListenRate(); opus.NativeRate(r) {
		return r
	}
	return opus.Rate
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
// only the reason and the client's address. Throttled guesses are logged
// at debug level, so that a guessing client cannot flood the log.
func (s *Server) refuse(w http.ResponseWriter, remote string, status int, reason Reason, msg string) {
	refused.WithLabelValues(reason.String()).Inc()
	what, level := "refused", slog.LevelInfo
	switch {
	case reason == ReasonAuthRate:
		what, level = "auth failed", slog.LevelDebug
	case status == http.StatusUnauthorized:
		what = "auth failed"
	}
	s.log.Log(context.Background(), level, what, "remote", remote, "reason", reason.String())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(reason.String() + ": " + msg + "\n"))
}

// retryAfter sets the Retry-After header: wait in whole seconds, at least 1.
func retryAfter(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(int(math.Ceil(wait.Seconds())), 1)))
}

// ServeHTTP upgrades the request to a WebSocket and serves it until it
// closes. The checks, in order:
//
//  1. the client's address: the TCP peer, or, from a trusted proxy, what
//     the proxy recorded (clientIP);
//  2. the per-IP caps, when set: the cheapest check, and one that every
//     request spends, so that a client guessing tokens is slowed by them
//     too; a request refused later gives its connection slot back;
//  3. the token, when authentication is on, and the failed-auth limiter:
//     a good token passes whatever the address's failures; a wrong one
//     spends a failure, and past the budget it gets 429 auth_rate instead
//     of a 401. The token is checked before anything is said about it, so
//     a throttled guess costs what any refusal costs;
//  4. the browser origin;
//  5. the drain (503 shutdown), last, so that a draining replica answers
//     the checks above like the others.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	addr := clientIP(r, s.cfg.TrustedProxies)
	ip := addr.String()
	if !addr.IsValid() {
		ip = r.RemoteAddr // not an IP (a test's made-up peer): its own key
	}
	if reason, wait, ok := s.ipLimit.admit(ip); !ok {
		retryAfter(w, wait)
		msg := fmt.Sprintf("more than %d open connections from this address", s.cfg.MaxConnsPerIP)
		if reason == ReasonIPRate {
			msg = fmt.Sprintf("more than %g new connections per second from this address", s.cfg.ConnectRatePerIP)
		}
		s.refuse(w, ip, http.StatusTooManyRequests, reason, msg)
		return
	}
	if !s.authenticate(w, r, addr, ip) {
		s.ipLimit.release(ip)
		return
	}
	if !s.checkOrigin(r) {
		s.ipLimit.release(ip)
		s.refuse(w, ip, http.StatusForbidden, ReasonOrigin, "origin "+strconv.Quote(r.Header.Get("Origin"))+" is not allowed (-allowed-origins)")
		return
	}
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		s.ipLimit.release(ip)
		s.refuse(w, ip, http.StatusServiceUnavailable, ReasonShutdown, "this server is shutting down; connect to another")
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()

	cw := &corkWriter{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(cw, r, nil)
	if err != nil {
		s.wg.Done()
		s.ipLimit.release(ip)
		s.log.Debug("upgrade failed", "remote", ip, "err", err)
		return // the upgrader has answered
	}
	c := newConn(s, ws, s.log.With("remote", ip))
	c.cork = cw.conn
	s.mu.Lock()
	s.conns[c] = struct{}{}
	late := s.shutdown // Shutdown began during the upgrade and did not see c
	s.mu.Unlock()
	if late {
		s.sendReconnect(c)
	}
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

// authenticate checks the request's token, if authentication is on, and
// answers a refusal. A missing or wrong token spends one of the address's
// failures (an expired one does not: only a token we signed has a valid
// signature, and its client must be told to fetch a new one).
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, addr netip.Addr, ip string) bool {
	err := s.auth.check(r, s.cfg.Now())
	if err == nil {
		return true
	}
	reason := ReasonUnauthorized
	if errors.Is(err, errTokenExpired) {
		reason = ReasonTokenExpired
	} else if wait, over, first := s.authFail.failed(addr); over {
		if first {
			s.log.Warn("failed authentications throttled", "remote", ip,
				"burst", s.cfg.AuthFailBurst, "per_second", s.cfg.AuthFailRate)
		}
		retryAfter(w, wait)
		s.refuse(w, ip, http.StatusTooManyRequests, ReasonAuthRate,
			fmt.Sprintf("more than %d failed authentications from this address; wait, or present a valid token", s.cfg.AuthFailBurst))
		return false
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
	s.refuse(w, ip, http.StatusUnauthorized, reason, err.Error())
	return false
}

// Shutdown refuses new sockets, tells the open ones to reconnect (to any
// replica, each after its own delay within ReconnectSpread), closes them
// with ReasonShutdown, and waits for their goroutines, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		s.sendReconnect(c)
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

// sendReconnect queues the reconnect event and closes the socket: the
// close frame follows the queued frames, so the client reads the event
// first. The socket closes at once; the client waits on its side, and a
// turn this replica still finishes reaches it through the session log
// wherever it resumes.
func (s *Server) sendReconnect(c *conn) {
	c.enqueue(frame{data: reconnectWire(s.reconnectDelay())})
	c.close(ReasonShutdown)
}

// reconnectDelay is one socket's suggested delay, uniform over the spread:
// a replica's clients come back to the others spread out, not at once.
func (s *Server) reconnectDelay() time.Duration {
	return time.Duration(rand.Int64N(int64(s.cfg.ReconnectSpread)))
}
