package mcp

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/tools"
)

// Manager offers the tools of the configured MCP servers and runs them: a
// tools.Toolbox. Tools and Call are safe for concurrent use, from before
// Run starts to after it ends (no server is up then, so no tool is
// offered).
type Manager struct {
	cfg     Config
	log     *slog.Logger
	servers []*server // sorted by name
	running atomic.Bool

	// Lock order: mu, then a server's mu.
	mu      sync.Mutex // serialises rebuild
	offered int        // tools in the catalog, under mu (for the gauge)
	catalog atomic.Pointer[catalog]
}

var _ tools.Toolbox = (*Manager)(nil)

// catalog is the snapshot that Tools and Call read: the tools offered
// now, by the names the model sees.
type catalog struct {
	tools  []llm.Tool
	byName map[string]entry
	// known: every name offered since the start, and its server's name
	// (a selection may name a tool whose server is restarting).
	known map[string]string
}

type entry struct {
	srv    *server
	name   string // the server's own name of the tool
	schema schema
}

// New checks cfg and returns a Manager; nothing starts before Run.
func New(cfg Config, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{cfg: cfg.withDefaults(), log: log}
	seen := map[string]bool{}
	for _, s := range cfg.Servers {
		if s.Name == "" || seen[s.Name] {
			return nil, fmt.Errorf("mcp server %q: names must be present and unique", s.Name)
		}
		seen[s.Name] = true
		if err := s.check(""); err != nil {
			return nil, fmt.Errorf("mcp server %q: %w", s.Name, err)
		}
		m.servers = append(m.servers, newServer(s, m))
	}
	slices.SortFunc(m.servers, func(a, b *server) int { return cmp.Compare(a.cfg.Name, b.cfg.Name) })
	m.catalog.Store(&catalog{byName: map[string]entry{}, known: map[string]string{}})
	return m, nil
}

// Run starts every server, keeps each up (restarting the ones that die,
// with backoff) and returns nil once ctx has ended and every server has
// been stopped: each stdio server's process group is gone, and every
// goroutine of the Manager's has ended. Run may be called once.
func (m *Manager) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("mcp: Run called twice")
	}
	serversConfigured.Add(float64(len(m.servers)))
	defer serversConfigured.Sub(float64(len(m.servers)))
	var wg sync.WaitGroup
	for _, s := range m.servers {
		wg.Add(1)
		go func() { // ends when ctx ends, its server stopped
			defer wg.Done()
			s.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// Tools returns the tools offered now: a copy of the current snapshot,
// cheap to take (the Parameters bytes are shared: read them only).
func (m *Manager) Tools() []llm.Tool {
	return slices.Clone(m.catalog.Load().tools)
}

// Servers returns the configured servers' names, sorted.
func (m *Manager) Servers() []string {
	names := make([]string, len(m.servers))
	for i, s := range m.servers {
		names[i] = s.cfg.Name
	}
	return names
}

// Origin returns the name of the server that offers the tool the model
// knows as name, or offered it since the start; "" for none.
func (m *Manager) Origin(name string) string {
	return m.catalog.Load().known[name]
}

// Call runs the tool that the model knows as name. The error is for the
// model: tools.ErrUnknown when no such tool is offered (its server may be
// restarting), ErrInvalidArguments when the arguments were refused before
// the call, context.DeadlineExceeded past the call's deadline, or the
// tool's own error text when the server says it failed.
func (m *Manager) Call(ctx context.Context, name string, arguments json.RawMessage) (string, error) {
	out, result, err := m.call(ctx, name, arguments)
	callsTotal.WithLabelValues(result).Inc()
	return out, err
}

func (m *Manager) call(ctx context.Context, name string, arguments json.RawMessage) (string, string, error) {
	e, ok := m.catalog.Load().byName[name]
	if !ok {
		return "", resultUnknown, fmt.Errorf("%w: %q", tools.ErrUnknown, name)
	}
	args, err := e.schema.check(arguments)
	if err != nil {
		return "", resultInvalid, fmt.Errorf("tool %s: %w", name, err)
	}
	l := e.srv.current()
	if l == nil {
		return "", resultUnknown, fmt.Errorf("%w: %q (its server is restarting)", tools.ErrUnknown, name)
	}
	cctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	defer context.AfterFunc(l.ctx, cancel)() // the link closing ends the call
	began := time.Now()
	res, err := l.cs.CallTool(cctx, &sdk.CallToolParams{Name: e.name, Arguments: args})
	callSeconds.Observe(time.Since(began).Seconds())
	switch {
	case err == nil && res.IsError:
		return "", resultError, fmt.Errorf("tool %s failed: %s", name, render(res, m.cfg.MaxOutput))
	case err == nil:
		return render(res, m.cfg.MaxOutput), resultOK, nil
	case ctx.Err() != nil:
		return "", resultCancelled, ctx.Err()
	case l.ctx.Err() != nil:
		return "", resultError, fmt.Errorf("tool %s: its server went away during the call", name)
	case errors.Is(err, context.DeadlineExceeded):
		return "", resultTimeout, fmt.Errorf("tool %s: no result within %s: %w", name, m.cfg.CallTimeout, context.DeadlineExceeded)
	case !answered(err):
		poke(e.srv.checkNow) // is the server still there?
	}
	return "", resultError, fmt.Errorf("tool %s: %w", name, err)
}

// badName matches what a function name may not hold in the model APIs
// (OpenAI's: ^[a-zA-Z0-9_-]{1,64}$).
var badName = regexp.MustCompile(`[^a-zA-Z0-9_-]`)

const maxName = 64

func modelName(s string) string {
	s = badName.ReplaceAllString(s, "_")
	if len(s) > maxName {
		s = s[:maxName]
	}
	return s
}

// rebuild publishes a new catalog from the servers' current tools. A
// tool's name is as its server gives it (characters a model API refuses
// replaced by "_"); a name that two servers give is, for both, prefixed
// with the server's name and "__".
func (m *Manager) rebuild() {
	m.mu.Lock()
	defer m.mu.Unlock()
	type offer struct {
		srv  *server
		t    tool
		name string
	}
	var offers []offer
	count := map[string]int{}
	for _, s := range m.servers {
		s.mu.RLock()
		for _, t := range s.tools {
			n := modelName(t.name)
			offers = append(offers, offer{s, t, n})
			count[n]++
		}
		s.mu.RUnlock()
	}
	c := &catalog{byName: make(map[string]entry, len(offers)), known: maps.Clone(m.catalog.Load().known)}
	for _, o := range offers {
		if count[o.name] > 1 {
			o.name = modelName(o.srv.cfg.Name + "__" + o.t.name)
		}
		if _, dup := c.byName[o.name]; dup || o.name == "" {
			m.log.Warn("mcp tool left out: its name clashes with another's even with its server's name", "mcp_server", o.srv.cfg.Name, "tool", o.t.name)
			continue
		}
		c.byName[o.name] = entry{srv: o.srv, name: o.t.name, schema: o.t.schema}
		c.known[o.name] = o.srv.cfg.Name
		c.tools = append(c.tools, llm.Tool{Name: o.name, Description: o.t.description, Parameters: o.t.schema.params})
	}
	toolsOffered.Add(float64(len(c.tools) - m.offered))
	m.offered = len(c.tools)
	m.catalog.Store(c)
}
