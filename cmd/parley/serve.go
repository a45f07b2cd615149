package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/parleyhq/parley/internal/memory"
	"github.com/parleyhq/parley/media/opus"
	"github.com/parleyhq/parley/signaling"
	"github.com/parleyhq/parley/signaling/certs"
	"github.com/parleyhq/parley/signaling/parley"
	"github.com/parleyhq/parley/signaling/realtime"
	"github.com/parleyhq/parley/signaling/twilio"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
)

// frontEnds are the protocols' servers, on one gateway.
type frontEnds struct {
	gw       *signaling.Gateway
	parley   *parley.Server
	realtime *realtime.Server
	twilio   *twilio.Server
}

// buildFrontEnds builds the gateway and the protocols' servers on the
// core.
func buildFrontEnds(cfg *config, c *core, log *slog.Logger) *frontEnds {
	gw := signaling.NewGateway(signaling.Config{
		AllowedOrigins: cfg.origins(), MaxMessage: cfg.MaxMessage,
		SendQueue: cfg.SendQueue, WriteTimeout: cfg.WriteTimeout,
		PingInterval: cfg.PingInterval, ReadTimeout: cfg.ReadTimeout, ReconnectSpread: cfg.DrainSpread,
		Auth:          signaling.AuthConfig{Tokens: list(cfg.AuthTokens), Secret: []byte(cfg.AuthSecret)},
		MaxConnsPerIP: cfg.MaxConnsPerIP, ConnectRatePerIP: cfg.ConnectRate, ConnectBurst: cfg.ConnectBurst,
		AuthFailBurst: cfg.AuthFailBurst, AuthFailRate: cfg.AuthFailRate, TrustedProxies: cfg.proxies,
	}, log.With("component", "gateway"))
	if cfg.AuthTokens == "" && cfg.AuthSecret == "" {
		log.Warn("no -auth-tokens or -auth-secret: anyone who reaches the WebSocket endpoints may use them")
	}
	sessions := &signaling.Sessions{Store: c.store, Hub: c.hub}
	rtc, _ := cfg.webrtc() // checked by parseConfig
	p := parley.NewServer(parley.Config{MaxText: cfg.MaxText, WebRTC: rtc, Opus: opus.Codec{Complexity: cfg.Complexity, Speech: cfg.OpusSpeech}, Tools: c.tools},
		gw, sessions, c.engine, c.voice, log.With("component", "ws"))
	if cfg.TwilioToken == "" {
		log.Warn("no -twilio-auth-token: anyone who reaches /twilio/voice and /twilio/media can open phone calls")
	}
	tw, _ := twilio.NewServer(cfg.twilio(), gw, c.store, c.voice, log.With("component", "twilio")) // checked by parseConfig
	rt := realtime.NewServer(realtime.Config{MaxText: cfg.MaxText, MaxMessage: cfg.RTMessage, MaxAppend: cfg.RTAppend, WebRTC: rtc, Opus: opus.Codec{Complexity: cfg.Complexity, Speech: cfg.OpusSpeech}, Tools: c.tools}, gw, sessions, c.engine, c.voice, log.With("component", "realtime"))
	return &frontEnds{gw: gw, parley: p, realtime: rt, twilio: tw}
}

// newMux routes the HTTP endpoints.
func newMux(c *core, fe *frontEnds) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /ws", fe.parley)
	mux.Handle("GET /v1/realtime", fe.realtime)
	mux.HandleFunc("POST /v1/realtime/client_secrets", fe.realtime.ServeSecrets)
	mux.HandleFunc("POST /v1/realtime/calls", fe.realtime.ServeCalls)
	// A GET would be the page's 404: it is told, in the API's error shape,
	// that the endpoint takes a POST.
	mux.HandleFunc("GET /v1/realtime/calls", fe.realtime.ServeCalls)
	mux.HandleFunc("OPTIONS /v1/realtime/calls", fe.realtime.ServeCalls) // CORS preflights
	mux.HandleFunc("POST "+twilio.VoicePath, fe.twilio.ServeVoice)
	// A GET would be the page's 404: the webhook says it takes a POST.
	mux.HandleFunc("GET "+twilio.VoicePath, fe.twilio.ServeVoice)
	mux.HandleFunc("GET "+twilio.MediaPath, fe.twilio.ServeMedia)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := c.rdb.Ping(ctx).Err(); err != nil {
			http.Error(w, "redis unreachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.Handle("GET /", pageHandler())
	return mux
}

// serve listens, runs the workers under one errgroup until ctx ends, and
// then drains: sockets, then turns.
func serve(ctx context.Context, cfg *config, c *core, fe *frontEnds, log *slog.Logger) error {
	cert, err := loadCert(cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: newMux(c, fe), ReadHeaderTimeout: 10 * time.Second, // also bounds a TLS handshake
		ErrorLog: httpErrorLog(log.With("component", "http"))}
	serveHTTP, scheme := func() error { return httpSrv.Serve(ln) }, "http://"
	if cert != nil {
		useTLS(httpSrv, cert)
		serveHTTP, scheme = func() error { return httpSrv.ServeTLS(ln, "", "") }, "https://"
	}
	log.Info("parley listening", "addr", scheme+ln.Addr().String(), "replica", c.engine.ReplicaID(),
		"llm", llmName(cfg), "batch", c.engine.BatchSize())

	// Workers run until work ends; drain happens first on a signal.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	g, gctx := errgroup.WithContext(work)
	if cfg.DebugAddr != "" {
		if err := serveDebug(gctx, g, cfg.DebugAddr, log); err != nil {
			return err
		}
	}
	if cert != nil { // both end when work ends
		g.Go(func() error { return cert.Run(gctx) })
		g.Go(reloadOnHangup(gctx, cert, log))
	}
	g.Go(func() error { return c.hub.Run(gctx) })
	g.Go(func() error { return c.engine.Run(gctx) })
	// Ends when work ends.
	rel := memory.New(memory.Config{Interval: cfg.MemoryRelease}, log.With("component", "memory"))
	g.Go(func() error { return rel.Run(gctx) })
	if c.mcp != nil { // ends when work ends, after the drain: draining turns may still call tools
		g.Go(func() error { return c.mcp.Run(gctx) })
	}
	if c.record != nil { // ends when work ends
		g.Go(func() error { return c.record.Run(gctx) })
	}
	g.Go(func() error {
		if err := serveHTTP(); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-gctx.Done():
			return nil
		}
		drain(cfg, c, httpSrv, fe, log)
		cancelWork()
		return nil
	})
	err = g.Wait()
	log.Info("parley stopped")
	return err
}

// drain is the graceful stop, within -drain-timeout.
func drain(cfg *config, c *core, httpSrv *http.Server, fe *frontEnds, log *slog.Logger) {
	log.Info("draining", "timeout", cfg.Drain)
	dctx, cancel := context.WithTimeout(context.Background(), cfg.Drain)
	defer cancel()
	// Sockets first: clients reconnect elsewhere and resume, and see the
	// replies that this replica still finishes. The listener closes
	// before they are told: a proxy then finds this replica refusing
	// connections and tries the next one (nginx does not retry a 503),
	// so no reconnect lands here (TestDrainBehindNginx).
	_ = httpSrv.Shutdown(dctx)
	_ = fe.gw.Shutdown(dctx)
	if err := c.engine.Drain(dctx); err != nil {
		log.Warn("drain", "err", err)
	}
}

// serveDebug serves /debug/pprof/ on its own listener, under g, until
// ctx ends.
func serveDebug(ctx context.Context, g *errgroup.Group, addr string, log *slog.Logger) error {
	dln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("-debug-addr: %w", err)
	}
	dbg := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("profiling on", "addr", "http://"+dln.Addr().String()+"/debug/pprof/")
	g.Go(func() error { // ends when ctx ends
		go func() { <-ctx.Done(); _ = dbg.Close() }()
		if err := dbg.Serve(dln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return nil
}

// loadCert loads -tls-cert and -tls-key, or returns nil without them.
func loadCert(cfg *config, log *slog.Logger) (*certs.Reloader, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	return certs.New(certs.Config{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey}, log.With("component", "tls"))
}

// useTLS makes srv serve TLS with cert's current certificate, over
// HTTP/1.1 only. A WebSocket is an HTTP/1.1 upgrade here: gorilla does
// not speak WebSockets over HTTP/2 (RFC 8441), which a browser would try
// on an HTTP/2 connection whose server offers it (Go's does with
// GODEBUG=http2xconnect=1). The page is a few small files; HTTP/2 would
// not make it faster.
func useTLS(srv *http.Server, cert *certs.Reloader) {
	srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cert.GetCertificate}
	var p http.Protocols
	p.SetHTTP1(true)
	srv.Protocols = &p
}

// httpErrorLog carries net/http's own messages into log: a failed TLS
// handshake (a scanner, plain HTTP on the TLS port, a browser refusing a
// self-signed certificate) at debug level, as it is the client's affair;
// anything else as a warning.
func httpErrorLog(log *slog.Logger) *stdlog.Logger {
	return stdlog.New(httpLogWriter{log}, "", 0)
}

type httpLogWriter struct{ log *slog.Logger }

func (w httpLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

// reloadOnHangup returns the worker that reloads the certificate on each
// SIGHUP; it ends when ctx ends. It listens for the signal before it
// returns: from then on a SIGHUP reloads and never stops the process.
func reloadOnHangup(ctx context.Context, cert *certs.Reloader, log *slog.Logger) func() error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return func() error {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				log.Info("SIGHUP: reloading the TLS certificate")
				_ = cert.Reload() // a bad pair is logged and the old one stays
			}
		}
	}
}

// debugHandler serves net/http/pprof on its own listener, never on the
// public one.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
