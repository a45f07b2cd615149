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
)

// Config of a Gateway and its sockets. A zero field means the default in
// its comment.
type Config struct {
	// AllowedOrigins lists the browser origins (scheme://host[:port]) that
	// may open a socket. Empty: only the server's own host. "*" allows any.
	// Requests without an Origin header (non-browser clients) are allowed.
	AllowedOrigins []string
	MaxMessage     int64         // largest frame read, in bytes; larger closes the socket; default 64 KiB
	SendQueue      int           // frames queued per socket before it counts as slow; default 256
	WriteTimeout   time.Duration // deadline of every write; default 10s
	PingInterval   time.Duration // WebSocket ping period; default 30s
	ReadTimeout    time.Duration // silence (no frame, no pong) that closes the socket; default 75s
	HelloTimeout   time.Duration // time to say hello after connecting; default 10s
	// QuietAfter: a socket whose messages come within this of each other
	// is busy, and keeps the goroutine that reads them (handing every
	// message to a new goroutine cost 10 % more server CPU per turn); one
	// that has then read nothing for this long (one to two times it) gives
	// that goroutine and its 8 KB stack up, and waits on a shallow one, as
	// a socket that is not busy does after each message. Default 5s.
	QuietAfter time.Duration
	// ReconnectSpread is the window of the delays that Shutdown suggests to
	// its clients (retry_after_ms, uniform in [0, ReconnectSpread) per
	// socket), so that a drained replica's clients do not all reconnect to
	// the others in the same instant. Default 2s.
	ReconnectSpread time.Duration

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
	if c.QuietAfter <= 0 {
		c.QuietAfter = 5 * time.Second
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

var (
	connections = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "ws", Name: "connections",
		Help: "Open WebSocket connections, of every protocol.",
	})
	disconnects = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "ws", Name: "disconnects_total",
		Help: "Closed WebSocket connections by reason.",
	}, []string{"reason"})
	refused = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "ws", Name: "refused_total",
		Help: "WebSocket requests refused before the upgrade, by reason.",
	}, []string{"reason"})
)

// Gateway admits the WebSocket requests of every front end and keeps
// their sockets: the client's address (behind trusted proxies), the
// per-IP caps, authentication and its failure limiter, the browser
// origin, the drain. Safe for concurrent use.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	ipLimit  *ipLimiter
	auth     *verifier
	authFail *authLimiter

	mu       sync.Mutex
	sockets  map[*Socket]struct{}
	shutdown bool
	wg       sync.WaitGroup
}

// NewGateway returns a Gateway.
func NewGateway(cfg Config, log *slog.Logger) *Gateway {
	cfg.setDefaults()
	return &Gateway{cfg: cfg, log: log, sockets: make(map[*Socket]struct{}),
		ipLimit:  newIPLimiter(cfg.MaxConnsPerIP, cfg.ConnectRatePerIP, cfg.ConnectBurst, cfg.Now),
		auth:     newVerifier(cfg.Auth),
		authFail: newAuthLimiter(cfg.AuthFailRate, cfg.AuthFailBurst, cfg.Now)}
}

// Config is the gateway's configuration, defaults filled in.
func (g *Gateway) Config() Config { return g.cfg }

// Protocol is what a front end tells the gateway of its protocol.
type Protocol struct {
	// CloseCode is the WebSocket close code of a reason in this protocol.
	CloseCode func(Reason) int
	// GoingAway is the last frame a socket gets when the replica drains:
	// reconnect (to any replica) after retryAfter. Nil: none.
	GoingAway func(retryAfter time.Duration) []byte
	// Refusal, if set, writes a refused request's answer in this
	// protocol's shape (its status, the reason and a message in words);
	// nil: the reason and the message as plain text.
	Refusal func(w http.ResponseWriter, status int, reason Reason, msg string)
	// Subprotocols the server may answer, in order of preference.
	Subprotocols []string
	// Auth, when set, authenticates the protocol's requests in its own
	// way, instead of the gateway's tokens (Config.Auth): a client that
	// cannot send a bearer token proves itself otherwise (Twilio signs its
	// requests). A nil error admits the request; an error refuses it with
	// 403 unauthorized and its text, and spends one of the address's
	// failed authentications, as a wrong token does. The other checks
	// (the caps, the origin, the drain) stay the gateway's.
	Auth func(r *http.Request) error
	// Token, if set, is where this protocol carries a client's token when
	// the Authorization header and ?access_token have none (a browser's
	// WebSocket can set neither a header nor, with some SDKs, the URL: the
	// OpenAI Realtime protocol offers it as a subprotocol). It returns ""
	// for none. The token is checked as any other.
	Token func(r *http.Request) string
	// MaxMessage, if set, is this protocol's largest frame read, in place
	// of Config.MaxMessage (a protocol whose audio comes in JSON frames
	// needs larger ones).
	MaxMessage int64
}

// Endpoint is one protocol's entry through the gateway.
type Endpoint struct {
	gw       *Gateway
	proto    Protocol
	upgrader websocket.Upgrader
}

// Endpoint returns the entry of protocol p.
func (g *Gateway) Endpoint(p Protocol) *Endpoint {
	e := &Endpoint{gw: g, proto: p}
	e.upgrader = websocket.Upgrader{
		// Memory per idle socket decides how many fit in a replica: no
		// write buffer between writes (pooled), and a small read buffer of
		// our own (corkWriter: ReadBufferSize 0 makes gorilla read through
		// the hijacked reader, which is ours) so that the HTTP server's
		// 4 KiB one can go.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     g.checkOrigin,
		Subprotocols:    p.Subprotocols,
	}
	return e
}

// OriginAllowed reports whether r's Origin may use this endpoint
// (Config.AllowedOrigins; no Origin, not a browser: yes): for a front
// end's plain HTTP endpoints that answer browsers' CORS preflights.
func (e *Endpoint) OriginAllowed(r *http.Request) bool { return e.gw.checkOrigin(r) }

func (g *Gateway) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range g.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true
		}
	}
	if len(g.cfg.AllowedOrigins) == 0 {
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	return false
}

// refuse answers a request that may not be upgraded, with the reason's
// name and a message in words. Never the token: it is not logged either,
// only the reason and the client's address. Throttled guesses are logged
// at debug level, so that a guessing client cannot flood the log.
func (g *Gateway) refuse(w http.ResponseWriter, remote string, status int, reason Reason, msg string, refusal func(http.ResponseWriter, int, Reason, string)) {
	refused.WithLabelValues(reason.String()).Inc()
	what, level := "refused", slog.LevelInfo
	switch {
	case reason == ReasonAuthRate:
		what, level = "auth failed", slog.LevelDebug
	case status == http.StatusUnauthorized || reason == ReasonUnauthorized:
		what = "auth failed"
	}
	g.log.Log(context.Background(), level, what, "remote", remote, "reason", reason.String())
	if refusal != nil {
		refusal(w, status, reason, msg)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(reason.String() + ": " + msg + "\n"))
}

// retryAfter sets the Retry-After header: wait in whole seconds, at least 1.
func retryAfter(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(int(math.Ceil(wait.Seconds())), 1)))
}

// Accept admits the request and upgrades it to a WebSocket, or answers
// the refusal and returns nil. The checks, in order:
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
//
// The caller serves an accepted socket with Serve.
func (e *Endpoint) Accept(w http.ResponseWriter, r *http.Request) *Socket {
	g := e.gw
	ip, ok := e.admit(w, r)
	if !ok {
		return nil
	}
	cw := &corkWriter{ResponseWriter: w}
	ws, err := e.upgrader.Upgrade(cw, r, nil)
	if err != nil {
		g.wg.Done()
		g.ipLimit.release(ip)
		g.log.Debug("upgrade failed", "remote", ip, "err", err)
		return nil // the upgrader has answered
	}
	s := newSocket(&g.cfg, &e.proto, ws, g.log.With("remote", ip))
	s.cork = cw.conn
	s.rd = cw.readiness()
	s.armReads()
	e.open(s, ip)
	return s
}

// admit runs Accept's checks and answers a refusal. An admitted request
// holds a connection slot of its address and a place in the drain's
// wait: the socket that it becomes gives them back when it ends.
func (e *Endpoint) admit(w http.ResponseWriter, r *http.Request) (string, bool) {
	g := e.gw
	addr := clientIP(r, g.cfg.TrustedProxies)
	ip := addr.String()
	if !addr.IsValid() {
		ip = r.RemoteAddr // not an IP (a test's made-up peer): its own key
	}
	if reason, wait, ok := g.ipLimit.admit(ip); !ok {
		retryAfter(w, wait)
		msg := fmt.Sprintf("more than %d open connections from this address", g.cfg.MaxConnsPerIP)
		if reason == ReasonIPRate {
			msg = fmt.Sprintf("more than %g new connections per second from this address", g.cfg.ConnectRatePerIP)
		}
		g.refuse(w, ip, http.StatusTooManyRequests, reason, msg, e.proto.Refusal)
		return "", false
	}
	if !g.authenticate(w, r, addr, ip, e.proto) {
		g.ipLimit.release(ip)
		return "", false
	}
	if !g.checkOrigin(r) {
		g.ipLimit.release(ip)
		g.refuse(w, ip, http.StatusForbidden, ReasonOrigin, "origin "+strconv.Quote(r.Header.Get("Origin"))+" is not allowed (-allowed-origins)", e.proto.Refusal)
		return "", false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shutdown {
		g.ipLimit.release(ip)
		g.refuse(w, ip, http.StatusServiceUnavailable, ReasonShutdown, "this server is shutting down; connect to another", e.proto.Refusal)
		return "", false
	}
	g.wg.Add(1)
	return ip, true
}

// open registers an admitted socket, so that a drain finds it.
func (e *Endpoint) open(s *Socket, ip string) {
	g := e.gw
	s.ip = ip
	g.mu.Lock()
	g.sockets[s] = struct{}{}
	late := g.shutdown // Shutdown began since admit and did not see s
	g.mu.Unlock()
	if late {
		g.goAway(s)
	}
	connections.Inc()
}

// Admission is a plain HTTP request that the gateway let in (Admit) and
// that becomes a socket over another transport than a WebSocket once the
// front end has negotiated it (a WebRTC data channel, after an SDP offer
// and answer): Open it, or Release it. Its methods are for the request's
// goroutine.
type Admission struct {
	e    *Endpoint
	ip   string
	used bool
}

// Admit runs Accept's checks on a request that will not be upgraded (the
// caps, the token, the origin, the drain) and answers a refusal (nil).
func (e *Endpoint) Admit(w http.ResponseWriter, r *http.Request) *Admission {
	ip, ok := e.admit(w, r)
	if !ok {
		return nil
	}
	return &Admission{e: e, ip: ip}
}

// Open is the socket over mc, to be served with Endpoint.Serve. A drain
// that began since Admit closes it at once, with the protocol's going
// away message.
func (a *Admission) Open(mc MessageConn) *Socket {
	a.used = true
	g := a.e.gw
	s := newMessageSocket(&g.cfg, &a.e.proto, mc, g.log.With("remote", a.ip))
	a.e.open(s, a.ip)
	return s
}

// Release gives back what Admit took, when the request does not become a
// socket (its negotiation failed). A no-op after Open.
func (a *Admission) Release() {
	if a.used {
		return
	}
	a.used = true
	a.e.gw.ipLimit.release(a.ip)
	a.e.gw.wg.Done()
}

// Serve runs serve (the protocol's reader, which calls s.Serve) on a
// goroutine of its own, and lets go of the socket when it returns: the
// HTTP handler that accepted it can return, and the HTTP server then
// frees its buffers and the handler's deep stack, about a third of an
// idle socket's memory.
func (e *Endpoint) Serve(s *Socket, serve func()) {
	go e.serve(s, serve) // ends when the socket has closed and serve returned
}

// serve is the socket's goroutine, which an idle socket keeps: its frame
// is kept small (no defers; the end in a function of its own), since
// every byte of the frames under an idle socket's wait counts (readLoop).
func (e *Endpoint) serve(s *Socket, serve func()) {
	serve()
	e.served(s)
}

func (e *Endpoint) served(s *Socket) {
	g := e.gw
	connections.Dec()
	disconnects.WithLabelValues(s.Reason().String()).Inc()
	g.mu.Lock()
	delete(g.sockets, s)
	g.mu.Unlock()
	g.ipLimit.release(s.ip)
	g.wg.Done()
}

// authenticate checks the request's token, if authentication is on (in
// the header, the query, or the protocol's own place), or the protocol's
// own check when it has one, and answers a refusal. A missing or wrong
// token spends one of the address's failures (an expired one does not:
// only a token we signed has a valid signature, and its client must be
// told to fetch a new one).
func (g *Gateway) authenticate(w http.ResponseWriter, r *http.Request, addr netip.Addr, ip string, proto Protocol) bool {
	own := proto.Auth
	var err error
	if own != nil {
		err = own(r)
	} else {
		err = g.auth.checkWith(r, proto.Token, g.cfg.Now())
	}
	if err == nil {
		return true
	}
	reason := ReasonUnauthorized
	if errors.Is(err, errTokenExpired) {
		reason = ReasonTokenExpired
	} else if wait, over, first := g.authFail.failed(addr); over {
		if first {
			g.log.Warn("failed authentications throttled", "remote", ip,
				"burst", g.cfg.AuthFailBurst, "per_second", g.cfg.AuthFailRate)
		}
		retryAfter(w, wait)
		g.refuse(w, ip, http.StatusTooManyRequests, ReasonAuthRate,
			fmt.Sprintf("more than %d failed authentications from this address; wait, or present a valid token", g.cfg.AuthFailBurst), proto.Refusal)
		return false
	}
	if own != nil {
		g.refuse(w, ip, http.StatusForbidden, reason, err.Error(), proto.Refusal)
		return false
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
	g.refuse(w, ip, http.StatusUnauthorized, reason, err.Error(), proto.Refusal)
	return false
}

// FromTrustedProxy reports whether the request's TCP peer is one of the
// trusted proxies (Config.TrustedProxies): only then may a front end
// believe what the proxy says of the original request (X-Forwarded-Proto).
func (g *Gateway) FromTrustedProxy(r *http.Request) bool {
	return isTrusted(peerAddr(r.RemoteAddr), g.cfg.TrustedProxies)
}

// Authenticate checks the token of a plain HTTP request of a front end
// (one that mints keys, say) as Accept does a socket's, the failed-auth
// limiter included, and answers the refusal. It reports whether the
// request may go on.
func (g *Gateway) Authenticate(w http.ResponseWriter, r *http.Request) bool {
	addr := clientIP(r, g.cfg.TrustedProxies)
	ip := addr.String()
	if !addr.IsValid() {
		ip = r.RemoteAddr
	}
	return g.authenticate(w, r, addr, ip, Protocol{})
}

// AuthOn reports whether requests need a token.
func (g *Gateway) AuthOn() bool { return g.cfg.Auth.on() }

// Mint signs a token for subject that expires after ttl, with the
// gateway's secret and clock; false when there is no secret.
func (g *Gateway) Mint(subject string, ttl time.Duration) (token string, expires time.Time, ok bool) {
	if len(g.cfg.Auth.Secret) == 0 {
		return "", time.Time{}, false
	}
	now := g.cfg.Now()
	return SignToken(g.cfg.Auth.Secret, subject, ttl, now), now.Add(ttl), true
}

// Shutdown refuses new sockets, tells the open ones to reconnect (to any
// replica, each after its own delay within ReconnectSpread), closes them
// with ReasonShutdown, and waits for their goroutines, or for ctx.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.shutdown = true
	socks := make([]*Socket, 0, len(g.sockets))
	for s := range g.sockets {
		socks = append(socks, s)
	}
	g.mu.Unlock()
	for _, s := range socks {
		g.goAway(s)
	}
	done := make(chan struct{})
	go func() { // ends when every socket has ended
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// goAway queues the protocol's reconnect frame and closes the socket: the
// close frame follows the queued frames, so the client reads it first.
// The socket closes at once; the client waits on its side, and a turn
// this replica still finishes reaches it through the session log
// wherever it resumes.
func (g *Gateway) goAway(s *Socket) {
	if s.proto.GoingAway != nil {
		s.Send(s.proto.GoingAway(g.reconnectDelay()))
	}
	s.Close(ReasonShutdown)
}

// reconnectDelay is one socket's suggested delay, uniform over the spread:
// a replica's clients come back to the others spread out, not at once.
func (g *Gateway) reconnectDelay() time.Duration {
	return time.Duration(rand.Int64N(int64(g.cfg.ReconnectSpread)))
}
