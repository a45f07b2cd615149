package fakes

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/pipeline/llm"
)

// Echo is a model that replies "echo: <the last user message>" in pieces
// (a word and its space each), for up to Max conversations per call (0:
// 1), with Delay between pieces. It records what it was given. Safe for
// concurrent use.
type Echo struct {
	Max   int
	Delay time.Duration

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
				return nil
			}
			emit(0, llm.Piece{Text: s})
		}
	}
}

// Send makes a running call emit piece; it waits for one to take it.
func (g *Gate) Send(piece string) { g.gate <- piece }

// Finish ends every call, now and later, with what it has sent.
func (g *Gate) Finish() { g.once.Do(func() { close(g.gate) }) }
