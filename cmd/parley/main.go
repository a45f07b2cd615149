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
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

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
	applyMemory(cfg, os.Getenv, log)
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
	c, err := buildCore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer c.close()
	return serve(ctx, cfg, c, buildFrontEnds(cfg, c, log), log)
}

func pageHandler() http.Handler { return web.Handler() }

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
