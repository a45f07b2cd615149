package mcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// protocolVersion is the MCP revision Parley asks for: the latest with a
// stateful session (initialize, ping, tools/list_changed on the session).
// The 2026-07-28 revision is stateless and has no ping, which is how a
// dead HTTP server is found; servers of that revision answer this one too.
const protocolVersion = "2025-11-25"

const (
	pingTimeout = 10 * time.Second // a server this slow to answer a ping is restarted
	maxTools    = 512              // tools read from one server; the rest are left out
)

// server supervises one configured MCP server: it starts or connects it,
// lists its tools, and starts it again when it dies.
type server struct {
	cfg      Server
	m        *Manager
	log      *slog.Logger
	changed  chan struct{} // the server said its tools changed (buffered 1)
	checkNow chan struct{} // a call saw the connection fail (buffered 1)

	mu    sync.RWMutex
	live  *link  // nil while down
	tools []tool // the live server's tools
}

// tool is one of a server's tools, as it described it.
type tool struct {
	name, description string
	schema            schema
}

// link is one connection to the server: the session, and what carries it.
type link struct {
	cs     *sdk.ClientSession
	ctx    context.Context // ends when the link is closed: in-flight calls end with it
	cancel context.CancelFunc
	ended  chan error      // the session's end, from its Wait
	proc   *process        // stdio
	http   *http.Transport // HTTP
}

func newServer(cfg Server, m *Manager) *server {
	return &server{cfg: cfg, m: m, log: m.log.With("mcp_server", cfg.Name),
		changed: make(chan struct{}, 1), checkNow: make(chan struct{}, 1)}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run keeps the server up until ctx ends. Every goroutine it starts
// has ended when it returns.
func (s *server) run(ctx context.Context) {
	failures := 0
	for {
		upFor, err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if upFor >= s.m.cfg.MaxBackoff {
			failures = 0 // it ran well for a while: start again soon
		}
		wait := backoff(failures, s.m.cfg.MinBackoff, s.m.cfg.MaxBackoff)
		failures++
		s.log.Warn("mcp server down; starting it again", "err", err, "in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		restartsTotal.Inc()
	}
}

// backoff is the wait before restart number n (from 0): first doubled n
// times, capped at most, then jittered down by up to half so that servers
// that died together do not come back together.
func backoff(n int, first, most time.Duration) time.Duration {
	d := first
	for i := 0; i < n && d < most; i++ {
		d *= 2
	}
	d = min(d, most)
	return d/2 + rand.N(d/2+1)
}

// session connects, offers the server's tools while it is up, and says
// how long it was up and why it ended.
func (s *server) session(ctx context.Context) (time.Duration, error) {
	l, tools, err := s.connect(ctx)
	if err != nil {
		return 0, err
	}
	began := time.Now()
	s.setLive(l, tools)
	serversUp.Inc()
	s.log.Info("mcp server up", "tools", len(tools), "transport", transportName(s.cfg))
	err = s.serve(ctx, l)
	serversUp.Dec()
	s.setLive(nil, nil)
	s.close(l)
	return time.Since(began), err
}

func transportName(c Server) string {
	if c.stdio() {
		return "stdio"
	}
	return "http"
}

// setLive publishes the link and its tools, or withdraws them (nil).
func (s *server) setLive(l *link, tools []tool) {
	s.mu.Lock()
	s.live, s.tools = l, tools
	s.mu.Unlock()
	s.m.rebuild()
}

// connect starts or reaches the server, initialises the session and
// lists the tools, within ConnectTimeout.
func (s *server) connect(ctx context.Context) (*link, []tool, error) {
	cctx, cancel := context.WithTimeout(ctx, s.m.cfg.ConnectTimeout)
	defer cancel()
	l := &link{ended: make(chan error, 1)}
	var t sdk.Transport
	if s.cfg.stdio() {
		p, err := startProcess(s.cfg, s.log)
		if err != nil {
			return nil, nil, fmt.Errorf("start %s: %w", s.cfg.Command, err)
		}
		l.proc, t = p, p.transport()
	} else {
		t, l.http = httpTransport(s.cfg)
	}
	client := sdk.NewClient(&sdk.Implementation{Name: "parley"}, &sdk.ClientOptions{
		// Parley offers the server nothing back: no roots, no sampling,
		// no elicitation.
		Capabilities: &sdk.ClientCapabilities{},
		// Called on the session's reading goroutine: no request may be
		// made here, so serve refreshes the list.
		ToolListChangedHandler: func(context.Context, *sdk.ToolListChangedRequest) { poke(s.changed) },
		Logger:                 s.log,
	})
	cs, err := client.Connect(cctx, t, &sdk.ClientSessionOptions{ProtocolVersion: protocolVersion})
	if err != nil {
		s.closeTransport(l)
		return nil, nil, fmt.Errorf("initialize: %w", err)
	}
	l.cs = cs
	l.ctx, l.cancel = context.WithCancel(ctx)
	go func() { l.ended <- cs.Wait() }() // ends when the session does (close makes sure)
	tools, err := s.list(cctx, cs)
	if err != nil {
		s.close(l)
		return nil, nil, fmt.Errorf("tools/list: %w", err)
	}
	return l, tools, nil
}

// serve watches a live link until ctx ends or the server is found dead:
// the process exits, the session ends, or a ping goes unanswered.
func (s *server) serve(ctx context.Context, l *link) error {
	var exited <-chan struct{} // nil (never ready) for HTTP
	if l.proc != nil {
		exited = l.proc.exited
	}
	tick := time.NewTicker(s.m.cfg.PingInterval)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return l.proc.exitError()
		case err := <-l.ended:
			l.ended <- err // for close
			return fmt.Errorf("the session ended: %v", err)
		case <-s.changed:
			err = s.refresh(ctx, l)
		case <-s.checkNow:
			err = ping(ctx, l.cs)
		case <-tick.C:
			err = ping(ctx, l.cs)
		}
		if err != nil {
			return err
		}
	}
}

// refresh reads the tool list again. A server that answers with an error
// keeps its old list; one that does not answer is dead.
func (s *server) refresh(ctx context.Context, l *link) error {
	rctx, cancel := context.WithTimeout(ctx, s.m.cfg.ConnectTimeout)
	defer cancel()
	tools, err := s.list(rctx, l.cs)
	if answered(err) {
		s.log.Warn("mcp server: tools/list refused; the old list stays", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("tools/list: %w", err)
	}
	s.log.Info("mcp server: tools changed", "tools", len(tools))
	s.setLive(l, tools)
	return nil
}

// list reads every page of the server's tools and compiles their schemas.
func (s *server) list(ctx context.Context, cs *sdk.ClientSession) ([]tool, error) {
	var tools []tool
	for t, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, err
		}
		if len(tools) == maxTools {
			s.log.Warn("mcp server offers too many tools; the rest are left out", "kept", maxTools)
			break
		}
		sc, err := compile(t.InputSchema)
		if err != nil {
			s.log.Warn("mcp tool: input schema not understood; its arguments are only checked to be an object", "tool", t.Name, "err", err)
		}
		tools = append(tools, tool{name: t.Name, description: firstOf(t.Description, t.Title), schema: sc})
	}
	return tools, nil
}

// ping checks that the server answers. Any JSON-RPC answer, an error
// included, shows it alive.
func ping(ctx context.Context, cs *sdk.ClientSession) error {
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := cs.Ping(pctx, nil); err != nil && !answered(err) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// answered says whether err is the server's own JSON-RPC error answer,
// as opposed to no answer at all.
func answered(err error) bool {
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) {
		return false
	}
	switch werr.Code {
	case -32003, -32004, -32005:
		// The SDK's own codes for a request never sent or never answered:
		// the client or server closing, the transport refusing to carry it.
		return false
	}
	return true
}

// close ends a link: its calls are cancelled, the session closed, a stdio
// server stopped, idle HTTP connections closed. The session's goroutines
// and the process's have ended when it returns.
func (s *server) close(l *link) {
	l.cancel()
	_ = l.cs.Close()
	<-l.ended
	s.closeTransport(l)
}

func (s *server) closeTransport(l *link) {
	if l.proc != nil {
		l.proc.stop(s.m.cfg.StopTimeout)
	}
	if l.http != nil {
		l.http.CloseIdleConnections()
	}
}

// current is the live link; nil while the server is down.
func (s *server) current() *link {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.live
}
