package fakes

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/pipeline/llm"
)

// Echo is a model that replies "echo: <the last user message>" in pieces
// (a word and its space each), for up to Max conversations per call (0:
// 1), with Delay between pieces. It records what it was given. Safe for
// concurrent use. With Hold, every call waits until Hold is closed before
// it replies (a slot kept busy for as long as a test needs).
type Echo struct {
	Max   int
	Delay time.Duration
	Hold  <-chan struct{}

	mu    sync.Mutex
	convs [][]llm.Message
}

// MaxBatch implements llm.LLM.
func (l *Echo) MaxBatch() int { return max(l.Max, 1) }

// CallsTools implements llm.LLM: this fake calls none.
func (l *Echo) CallsTools() bool { return false }

// Stream implements llm.LLM.
func (l *Echo) Stream(ctx context.Context, reqs []llm.Request, emit func(int, llm.Piece)) error {
	convs := llm.Messages(reqs)
	l.mu.Lock()
	l.convs = append(l.convs, convs...)
	l.mu.Unlock()
	if l.Hold != nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.Hold:
		}
	}
	replies := make([][]string, len(convs))
	for i, c := range convs {
		replies[i] = strings.SplitAfter(EchoOf(c), " ")
	}
	for k := 0; ; k++ {
		more := false
		for i, r := range replies {
			if k < len(r) {
				emit(i, llm.Piece{Text: r[k]})
				more = true
			}
		}
		if !more {
			return nil
		}
		if l.Delay > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(l.Delay):
			}
		}
	}
}

// Convs are the conversations the model was given, in order.
func (l *Echo) Convs() [][]llm.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]llm.Message(nil), l.convs...)
}

// EchoOf is Echo's whole reply to conv.
func EchoOf(conv []llm.Message) string { return "echo: " + LastUser(conv) }

// LastUser is the content of conv's last user message.
func LastUser(conv []llm.Message) string {
	for i := len(conv) - 1; i >= 0; i-- {
		if conv[i].Role == llm.RoleUser {
			return conv[i].Content
		}
	}
	return ""
}

// Gate is a model under the test's hand: each call announces itself on
// Started, then sends one piece per Send and returns at Finish (or when
// its context ends). One conversation per call. Safe for concurrent use.
type Gate struct {
	Started chan []llm.Message // each call's conversation, as it starts
	gate    chan string
	once    sync.Once
	err     error // what the calls return once the gate is closed
}

// NewGate returns a Gate.
func NewGate() *Gate {
	return &Gate{Started: make(chan []llm.Message, 100), gate: make(chan string)}
}

// MaxBatch implements llm.LLM.
func (*Gate) MaxBatch() int { return 1 }

// CallsTools implements llm.LLM: this fake calls none.
func (*Gate) CallsTools() bool { return false }

// Stream implements llm.LLM.
func (g *Gate) Stream(ctx context.Context, reqs []llm.Request, emit func(int, llm.Piece)) error {
	convs := llm.Messages(reqs)
	g.Started <- convs[0]
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case s, ok := <-g.gate:
			if !ok {
				return g.err
			}
			emit(0, llm.Piece{Text: s})
		}
	}
}

// Send makes a running call emit piece; it waits for one to take it.
func (g *Gate) Send(piece string) { g.gate <- piece }

// Finish ends every call, now and later, with what it has sent.
func (g *Gate) Finish() { g.FinishWith(nil) }

// FinishWith is Finish with the calls failing with err: an upstream that
// broke off.
func (g *Gate) FinishWith(err error) {
	g.once.Do(func() {
		g.err = err
		close(g.gate)
	})
}

// Tooler is a model that calls tools: to a user's message it says Before
// (if any) and calls Calls (each a whole call; an empty ID gets one), but
// only the tools it was offered, unless Always; to the results of its
// calls it answers "done: " and the results joined with "; ". With Always
// it calls again at every step it is offered tools (a model in a loop).
// It records the requests it was given. Safe for concurrent use.
type Tooler struct {
	Before string
	Calls  []llm.ToolCall
	Always bool // call at every step, even after results (while offered tools)
	Any    bool // call whatever it was offered or not (a model that makes tools up)

	mu   sync.Mutex
	reqs []llm.Request
	n    int
}

// MaxBatch implements llm.LLM.
func (*Tooler) MaxBatch() int { return 1 }

// CallsTools implements llm.LLM.
func (*Tooler) CallsTools() bool { return true }

// Stream implements llm.LLM.
func (l *Tooler) Stream(ctx context.Context, reqs []llm.Request, emit func(int, llm.Piece)) error {
	l.mu.Lock()
	l.reqs = append(l.reqs, reqs...)
	l.mu.Unlock()
	for i, r := range reqs {
		msgs := r.Messages
		last := msgs[len(msgs)-1]
		if last.Role == llm.RoleTool && !(l.Always && len(r.Tools) > 0) {
			var outs []string
			for k := len(msgs) - 1; k >= 0 && msgs[k].Role == llm.RoleTool; k-- {
				outs = append([]string{msgs[k].Content}, outs...)
			}
			emit(i, llm.Piece{Text: "done: " + strings.Join(outs, "; ")})
			continue
		}
		if l.Before != "" {
			emit(i, llm.Piece{Text: l.Before})
		}
		offered := map[string]bool{}
		for _, t := range r.Tools {
			offered[t.Name] = true
		}
		called := false
		for _, c := range l.Calls {
			if !offered[c.Name] && !l.Any {
				continue
			}
			c := c
			if c.ID == "" {
				l.mu.Lock()
				l.n++
				c.ID = "call_" + strconv.Itoa(l.n)
				l.mu.Unlock()
			}
			emit(i, llm.Piece{Call: &c})
			called = true
		}
		if !called {
			emit(i, llm.Piece{Text: "no tool: " + LastUser(msgs)})
		}
	}
	return ctx.Err()
}

// Requests are the requests the model was given, in order.
func (l *Tooler) Requests() []llm.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]llm.Request(nil), l.reqs...)
}

// Toolbox is a set of server tools (it satisfies pipeline/tools.Toolbox):
// each offered tool answers with Run's output, or, without Run, with its
// name and arguments. It counts the calls. Safe for concurrent use.
type Toolbox struct {
	Offered []llm.Tool
	// Server is the name of the one server the tools come from; "" is
	// "box".
	Server string
	Run    func(ctx context.Context, name string, args json.RawMessage) (string, error)

	mu    sync.Mutex
	calls int
}

// Tools implements tools.Toolbox.
func (b *Toolbox) Tools() []llm.Tool { return b.Offered }

// Servers implements tools.Toolbox.
func (b *Toolbox) Servers() []string { return []string{b.server()} }

// Origin implements tools.Toolbox: the server, for an offered tool.
func (b *Toolbox) Origin(name string) string {
	for _, t := range b.Offered {
		if t.Name == name {
			return b.server()
		}
	}
	return ""
}

func (b *Toolbox) server() string {
	if b.Server == "" {
		return "box"
	}
	return b.Server
}

// Call implements tools.Toolbox.
func (b *Toolbox) Call(ctx context.Context, name string, args json.RawMessage) (string, error) {
	b.mu.Lock()
	b.calls++
	b.mu.Unlock()
	if b.Run != nil {
		return b.Run(ctx, name, args)
	}
	return name + " " + string(args), nil
}

// Calls is how many calls the toolbox ran.
func (b *Toolbox) Calls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}
