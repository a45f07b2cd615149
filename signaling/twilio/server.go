package twilio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/signaling"
)

// Config of a Server. A zero field means the default in its comment.
type Config struct {
	// PublicURL is this server's base URL as Twilio reaches it,
	// scheme://host[:port] (https://voice.example.com): the stream's URL
	// in the TwiML (wss://…/twilio/media) and the URLs whose signatures
	// are checked are built on it. Empty: from each request, its Host
	// with https (wss), or with the X-Forwarded-Proto a trusted proxy
	// (signaling.Config.TrustedProxies) sent.
	PublicURL string
	// AuthToken is the Twilio account's auth token: requests to both
	// endpoints must carry a valid X-Twilio-Signature. Empty: signatures
	// are not checked, and anyone who reaches the endpoints can open calls.
	AuthToken string
	// Greeting is said by Twilio (<Say>) when the call is answered, before
	// the stream starts. Empty: none.
	Greeting string
	// DTMF is what a key press does: "turn" (the default, ""): stored as a
	// dtmf event and answered as a user turn saying which key was pressed;
	// "event": stored only.
	DTMF string
}

// The values of Config.DTMF.
const (
	DTMFTurn  = "turn"
	DTMFEvent = "event"
)

// Check reports what is wrong with the configuration, or nil.
func (c Config) Check() error {
	if _, err := parsePublicURL(c.PublicURL); err != nil {
		return err
	}
	switch c.DTMF {
	case "", DTMFTurn, DTMFEvent:
	default:
		return fmt.Errorf("twilio: DTMF %q: use turn or event", c.DTMF)
	}
	return nil
}

// parsePublicURL checks a public base URL: http or https, a host, nothing
// else (no path: the endpoints' paths are fixed). Nil for "".
func parsePublicURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, nil
	}
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	switch {
	case err != nil:
		return nil, fmt.Errorf("twilio: public URL %q: %v", s, err)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("twilio: public URL %q: want https://host (Twilio streams only to wss://)", s)
	case u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("twilio: public URL %q: want scheme://host[:port] and nothing more", s)
	}
	return u, nil
}

// Sessions is what a stream needs of the session store (session.Store).
type Sessions interface {
	Create(ctx context.Context) (id, token string, err error)
	SetMetadata(ctx context.Context, id string, md map[string]string) error
	AppendEvent(ctx context.Context, id string, ev event.Event) (string, error)
	Touch(ctx context.Context, id string) error
}

var (
	webhooks = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "twilio", Name: "webhooks_total",
		Help: "Twilio voice webhooks by result: answered, no_voice (told the caller no calls are taken), bad_signature, bad_request.",
	}, []string{"result"})
	messagesIn = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "twilio", Name: "messages_total",
		Help: "Media Stream messages from Twilio by event; invalid ones as \"invalid\".",
	}, []string{"event"})
	invalidIn = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "twilio", Name: "invalid_messages_total",
		Help: "Media Stream messages dropped, by why: malformed, binary, unknown_event, before_start, bad_start, start_again, bad_format, bad_payload, bad_digit, bad_mark.",
	}, []string{"why"})
)

// Server answers Twilio's voice webhook and serves its Media Streams,
// through the gateway. Safe for concurrent use.
type Server struct {
	cfg      Config
	public   *url.URL // cfg.PublicURL; nil: from each request
	gw       *signaling.Gateway
	ep       *signaling.Endpoint
	sessions Sessions
	voice    *call.Voice // nil: no calls are taken
	log      *slog.Logger
}

// NewServer returns a Server; voice is the replica's voice stack (nil: the
// webhook tells callers that no calls are taken).
func NewServer(cfg Config, gw *signaling.Gateway, sessions Sessions, voice *call.Voice, log *slog.Logger) (*Server, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.DTMF == "" {
		cfg.DTMF = DTMFTurn
	}
	s := &Server{cfg: cfg, gw: gw, sessions: sessions, voice: voice, log: log}
	s.public, _ = parsePublicURL(cfg.PublicURL)
	// Twilio cannot send the gateway's tokens: its signature stands for
	// them (and with no auth token, nothing does).
	s.ep = gw.Endpoint(signaling.Protocol{CloseCode: CloseCode, Auth: s.checkStream})
	return s, nil
}

// base is the scheme and host Twilio used to reach the server, for r:
// the configured public URL, else r's Host, with https unless a trusted
// proxy says the request came as http.
func (s *Server) base(r *http.Request) (scheme, host string) {
	if s.public != nil {
		return s.public.Scheme, s.public.Host
	}
	scheme = "https"
	if s.gw.FromTrustedProxy(r) {
		proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
		if p := strings.ToLower(strings.TrimSpace(proto)); p == "http" || p == "https" {
			scheme = p
		}
	}
	return scheme, r.Host
}

// wsScheme is the WebSocket scheme of an HTTP one.
func wsScheme(scheme string) string {
	if scheme == "http" {
		return "ws"
	}
	return "wss"
}

// requestURI is the path and query as the client sent them.
func requestURI(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// checkStream is the stream's own authentication (signaling.Protocol.Auth):
// with an auth token, the upgrade's signature over its public wss:// URL.
func (s *Server) checkStream(r *http.Request) error {
	if s.cfg.AuthToken == "" {
		return nil
	}
	scheme, host := s.base(r)
	return s.checkSignature(r, wsScheme(scheme)+"://"+host+requestURI(r), nil)
}

// Errors of a request without a valid signature.
var (
	errNoSignature  = errors.New("the request has no " + SignatureHeader + " header: it does not come from Twilio")
	errBadSignature = errors.New(SignatureHeader + " does not match: the request was not signed by Twilio with this auth token for this URL (is -public-url the URL Twilio calls?)")
)

func (s *Server) checkSignature(r *http.Request, fullURL string, params url.Values) error {
	sig := r.Header.Get(SignatureHeader)
	switch {
	case sig == "":
		return errNoSignature
	case !validSignature(s.cfg.AuthToken, sig, fullURL, params):
		return errBadSignature
	}
	return nil
}

// ServeMedia admits a Media Stream's upgrade through the gateway and
// serves the stream on a goroutine of its own until it closes.
func (s *Server) ServeMedia(w http.ResponseWriter, r *http.Request) {
	sock := s.ep.Accept(w, r)
	if sock == nil {
		return // refused, and told why
	}
	st := newStream(s, sock)
	s.ep.Serve(sock, st.serve)
}
