// Command parley is the Parley server: real-time voice and text AI calls
// over WebSocket (and WebRTC), with sessions in Redis Streams so that any
// replica can serve any session.
//
// main only wires: it reads the configuration, builds each component in
// order and runs the background workers under one errgroup until the first
// SIGINT or SIGTERM, then drains. With -tls-cert, SIGHUP reloads the
// certificate.
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
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/flite"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/pipeline/openai"
	"github.com/parleyhq/parley/pipeline/ratelimit"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/speech"
	"github.com/parleyhq/parley/pipeline/sphinx"
	"github.com/parleyhq/parley/pipeline/turn"
	"github.com/parleyhq/parley/signaling"
	"github.com/parleyhq/parley/signaling/certs"
	"github.com/parleyhq/parley/web"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "token" {
		os.Exit(mintToken(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	cfg, err := parseConfig(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(2)
	}
	log := newLogger(cfg)
	raiseFileLimit(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("parley stopped", "err", err)
		os.Exit(1)
	}
}

func newLogger(cfg *config) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// run builds the components and serves until ctx ends, then drains.
func run(ctx context.Context, cfg *config, log *slog.Logger) error {
	rdb, closeRedis, err := openRedis(cfg, log)
	if err != nil {
		return err
	}
	defer closeRedis()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}

	// Commands go through go-redis' autopipeliner: the many small commands
	// of concurrent turns share round trips (docs/benchmarks.md). Pub/Sub
	// keeps its own connection.
	cmds, err := autoPipeline(rdb, cfg.RedisAutoPipeline)
	if err != nil {
		return err
	}
	store := session.NewStore(cmds, session.Config{Prefix: cfg.RedisPrefix, TTL: cfg.SessionTTL, MaxEvents: cfg.MaxEvents, MaxTurns: cfg.MaxTurns})
	hub := session.NewHub(rdb, store, log.With("component", "hub"))
	limiter := ratelimit.New(cmds, ratelimit.Config{Prefix: cfg.RedisPrefix + ":rl:"})
	if err := limiter.Load(ctx); err != nil {
		return err
	}
	model, err := newLLM(cfg, log)
	if err != nil {
		return err
	}
	engine, err := turn.NewEngine(cmds, store, limiter, model, turn.Config{
		ReplicaID: cfg.ReplicaID, Prefix: cfg.RedisPrefix,
		Slots: cfg.Slots, Queue: cfg.Queue, QueueWait: cfg.QueueWait, Batch: cfg.Batch,
		TurnTimeout: cfg.LLMTimeout, SystemPrompt: cfg.SystemPrompt, HistoryTurns: cfg.HistoryTurns,
		Coalesce: cfg.Coalesce, ClaimAfter: cfg.ClaimAfter,
		SessionRate: ratelimit.Rule{Rate: cfg.RateSession, Burst: cfg.BurstSession},
		GlobalRate:  ratelimit.Rule{Rate: cfg.RateGlobal, Burst: cfg.BurstGlobal},
	}, log.With("component", "engine"))
	if err != nil {
		return err
	}
	voice, err := newVoice(cfg, engine, hub, log)
	if err != nil {
		return err
	}
	rtc, _ := cfg.webrtc() // checked by parseConfig
	ws := signaling.NewServer(signaling.Config{
		WebRTC: rtc, OpusComplexity: cfg.Complexity,
		AllowedOrigins: cfg.origins(), MaxMessage: cfg.MaxMessage, MaxText: cfg.MaxText,
		SendQueue: cfg.SendQueue, WriteTimeout: cfg.WriteTimeout,
		PingInterval: cfg.PingInterval, ReadTimeout: cfg.ReadTimeout, ReconnectSpread: cfg.DrainSpread,
		Auth:          signaling.AuthConfig{Tokens: list(cfg.AuthTokens), Secret: []byte(cfg.AuthSecret)},
		MaxConnsPerIP: cfg.MaxConnsPerIP, ConnectRatePerIP: cfg.ConnectRate, ConnectBurst: cfg.ConnectBurst,
		AuthFailBurst: cfg.AuthFailBurst, AuthFailRate: cfg.AuthFailRate, TrustedProxies: cfg.proxies,
	}, store, hub, engine, voice, log.With("component", "ws"))
	if cfg.AuthTokens == "" && cfg.AuthSecret == "" {
		log.Warn("no -auth-tokens or -auth-secret: anyone who reaches /ws may use it")
	}

	mux := http.NewServeMux()
	mux.Handle("GET /ws", ws)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			http.Error(w, "redis unreachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.Handle("GET /", pageHandler())

	cert, err := loadCert(cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, // also bounds a TLS handshake
		ErrorLog: httpErrorLog(log.With("component", "http"))}
	serve, scheme := func() error { return httpSrv.Serve(ln) }, "http://"
	if cert != nil {
		useTLS(httpSrv, cert)
		serve, scheme = func() error { return httpSrv.ServeTLS(ln, "", "") }, "https://"
	}
	log.Info("parley listening", "addr", scheme+ln.Addr().String(), "replica", engine.ReplicaID(),
		"llm", llmName(cfg), "batch", engine.BatchSize())

	// Workers run until work ends; drain happens first on a signal.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	g, gctx := errgroup.WithContext(work)
	if cfg.DebugAddr != "" {
		dln, err := net.Listen("tcp", cfg.DebugAddr)
		if err != nil {
			return fmt.Errorf("-debug-addr: %w", err)
		}
		dbg := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second}
		log.Info("profiling on", "addr", "http://"+dln.Addr().String()+"/debug/pprof/")
		g.Go(func() error { // ends when work ends
			go func() { <-gctx.Done(); _ = dbg.Close() }()
			if err := dbg.Serve(dln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	if cert != nil { // both end when work ends
		g.Go(func() error { return cert.Run(gctx) })
		g.Go(reloadOnHangup(gctx, cert, log))
	}
	g.Go(func() error { return hub.Run(gctx) })
	g.Go(func() error { return engine.Run(gctx) })
	g.Go(func() error {
		if err := serve(); !errors.Is(err, http.ErrServerClosed) {
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
		log.Info("draining", "timeout", cfg.Drain)
		dctx, cancel := context.WithTimeout(context.Background(), cfg.Drain)
		defer cancel()
		// Sockets first: clients reconnect elsewhere and resume, and see the
		// replies that this replica still finishes. The listener closes
		// before they are told: a proxy then finds this replica refusing
		// connections and tries the next one (nginx does not retry a 503),
		// so no reconnect lands here (TestDrainBehindNginx).
		_ = httpSrv.Shutdown(dctx)
		_ = ws.Shutdown(dctx)
		if err := engine.Drain(dctx); err != nil {
			log.Warn("drain", "err", err)
		}
		cancelWork()
		return nil
	})
	err = g.Wait()
	log.Info("parley stopped")
	return err
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

// openRedis connects to REDIS_URL, or starts an in-process miniredis.
func openRedis(cfg *config, log *slog.Logger) (redis.UniversalClient, func(), error) {
	if cfg.RedisURL != "" && cfg.RedisCluster {
		// A session's keys share a hash tag (its id) and each replica's
		// job stream is its own key: every script runs on one slot.
		opt, err := redis.ParseClusterURL(cfg.RedisURL)
		if err != nil {
			return nil, nil, fmt.Errorf("REDIS_URL (cluster): %w", err)
		}
		rdb := redis.NewClusterClient(opt)
		log.Info("redis cluster", "seeds", opt.Addrs)
		return rdb, func() { rdb.Close() }, nil
	}
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb := redis.NewClient(opt)
		return rdb, func() { rdb.Close() }, nil
	}
	return embeddedRedis(log)
}

// autoPipeline returns the client that sends commands: rdb itself, or its
// autopipeliner, which batches the commands that concurrent callers issue
// while a round trip is under way into one pipeline.
func autoPipeline(rdb redis.UniversalClient, on bool) (redis.UniversalClient, error) {
	if !on {
		return rdb, nil
	}
	type autoPipeliner interface {
		AutoPipeline() (*redis.AutoPipeliner, error)
	}
	c, ok := rdb.(autoPipeliner)
	if !ok {
		return rdb, nil
	}
	ap, err := c.AutoPipeline()
	if err != nil {
		return nil, fmt.Errorf("redis autopipeline: %w", err)
	}
	return ap, nil
}

func llmName(cfg *config) string {
	if cfg.LLMBaseURL == "" {
		return "offline local responder (no language model)"
	}
	shown := cfg.LLMBaseURL
	if u, err := url.Parse(shown); err == nil {
		shown = u.Redacted() // a password in the URL is not logged
	}
	return cfg.LLMAPI + " " + cfg.LLMModel + " at " + shown
}

func newLLM(cfg *config, log *slog.Logger) (llm.LLM, error) {
	if cfg.LLMBaseURL == "" {
		log.Warn("LLM_BASE_URL is not set: replies come from the offline local responder, which is not a language model")
		return local.New(local.Config{TokenDelay: cfg.LocalDelay}), nil
	}
	oc := openai.Config{BaseURL: cfg.LLMBaseURL, Model: cfg.LLMModel, APIKey: cfg.LLMAPIKey, Timeout: cfg.LLMTimeout, MaxTokens: cfg.LLMMaxTok}
	if cfg.LLMAPI == "completions" {
		return openai.NewCompletions(oc, cfg.LLMTemplate, cfg.Batch)
	}
	return openai.NewChat(oc)
}

func pageHandler() http.Handler { return web.Handler() }

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

// newVoice builds the speech providers and the voice stack that calls
// share; nil (text only) when either is off.
func newVoice(cfg *config, turns call.Turns, events call.Follower, log *slog.Logger) (*call.Voice, error) {
	if cfg.ASR == "off" || cfg.TTS == "off" {
		log.Info("voice calls are off; text chat only")
		return nil, nil
	}
	var asr speech.ASR
	var err error
	switch cfg.ASR {
	case "openai":
		asr, err = openai.NewTranscription(openai.Config{BaseURL: cfg.ASRBaseURL, Model: cfg.ASRModel, APIKey: cfg.ASRAPIKey}, 16000, cfg.ASRLanguage)
	default:
		asr, err = sphinx.New(sphinx.Config{Decoders: cfg.ASRDecoders})
	}
	if err != nil {
		return nil, fmt.Errorf("speech recogniser: %w", err)
	}
	var tts speech.TTS
	switch cfg.TTS {
	case "openai":
		tts, err = openai.NewSpeech(openai.Config{BaseURL: cfg.TTSBaseURL, Model: cfg.TTSModel, APIKey: cfg.TTSAPIKey}, cfg.TTSVoice, cfg.TTSRate)
	default:
		tts, err = flite.New(flite.Config{Voice: cfg.TTSVoice})
	}
	if err != nil {
		return nil, fmt.Errorf("speech synthesiser: %w", err)
	}
	log.Info("voice calls on (WebRTC and WebSocket audio)", "asr", cfg.ASR, "tts", cfg.TTS)
	return &call.Voice{Turns: turns, Events: events, ASR: asr, TTS: tts, Config: call.Config{
		VAD: media.VADConfig{Start: cfg.VADStart, Stop: cfg.VADStop},
	}}, nil
}

// raiseFileLimit lifts the soft limit on open files to the hard one: every
// socket is a file, and the default soft limit (1024) caps connections.
func raiseFileLimit(log *slog.Logger) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			log.Warn("could not raise the open-files limit", "err", err)
		}
	}
}
