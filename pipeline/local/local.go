package local

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/parleyhq/parley/pipeline/llm"
)

// Config of a Responder. A zero field means the default in its comment.
type Config struct {
	Now        func() time.Time // clock; default time.Now
	Location   *time.Location   // for the time and date; default time.Local
	TokenDelay time.Duration    // pause between streamed words; default none
	Batch      int              // conversations per Stream call; default 16
}

// Responder answers from the last user message of each conversation.
type Responder struct {
	cfg Config
}

var _ llm.LLM = (*Responder)(nil)

// New returns a Responder.
func New(cfg Config) *Responder {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 16
	}
	return &Responder{cfg: cfg}
}

// MaxBatch: the responder batches natively.
func (r *Responder) MaxBatch() int { return r.cfg.Batch }

// CallsTools implements llm.LLM: the responder calls the tools it is
// offered when the words ask for what they do (see the package doc).
func (r *Responder) CallsTools() bool { return true }

// Stream answers every conversation, one word of each reply in turn, so a
// batch streams like a batched model would.
func (r *Responder) Stream(ctx context.Context, reqs []llm.Request, emit func(int, llm.Piece)) error {
	replies := make([]answer, len(reqs))
	for i, req := range reqs {
		replies[i] = r.respond(req)
	}
	for {
		more := false
		for i := range replies {
			p, ok := replies[i].next()
			if !ok {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			emit(i, p)
			more = true
		}
		if !more {
			return nil
		}
		if r.cfg.TokenDelay > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(r.cfg.TokenDelay):
			}
		}
	}
}

// answer is one reply, handed out a piece at a time: its words, each with
// the space after it, so that the pieces concatenate to the text exactly;
// then its call, if any. Cut from the text as it goes, not split into a
// slice first: that slice was a tenth of a turn's allocations.
type answer struct {
	text string // what is left to say
	call *llm.ToolCall
}

func (a *answer) next() (llm.Piece, bool) {
	if a.text != "" {
		n := strings.IndexByte(a.text, ' ') + 1
		if n == 0 {
			n = len(a.text)
		}
		w := a.text[:n]
		a.text = a.text[n:]
		return llm.Piece{Text: w}, true
	}
	if a.call != nil {
		c := a.call
		a.call = nil
		return llm.Piece{Call: c}, true
	}
	return llm.Piece{}, false
}

// respond is the reply to one request: the answer from the results of
// its call when this turn called a tool; else a call, after "Let me
// check.", when a tool offered fits the words; else Reply.
func (r *Responder) respond(req llm.Request) answer {
	if calls, after := turnCalls(req.Messages); calls != nil {
		if s := fromResults(calls.ToolCalls, after); s != "" {
			return answer{text: s}
		}
		return answer{text: r.Reply(lastUser(req.Messages))}
	}
	said := lastUser(req.Messages)
	if c := pickCall(req, said, callsSoFar(req.Messages)+1); c != nil {
		return answer{text: beforeCall, call: c}
	}
	return answer{text: r.Reply(said)}
}

// Reply is the whole answer to one user message.
func (r *Responder) Reply(text string) string {
	words := normalize(text)
	has := func(ws ...string) bool {
		for _, w := range ws {
			for _, x := range words {
				if x == w {
					return true
				}
			}
		}
		return false
	}
	now := r.cfg.Now().In(r.cfg.Location)
	switch {
	case len(words) == 0:
		return "I didn't catch anything. Say hello, ask me the time or the date, or say help."
	case has("help") || phrase(words, "what can you do"):
		return "I'm Parley's offline responder, not a language model. I can greet you, tell you the time, tell you the date, and repeat what you say. Connect a model with LLM_BASE_URL for real answers."
	case has("time", "clock"):
		return fmt.Sprintf("It is %s.", now.Format("3:04 PM"))
	case has("date", "day", "today"):
		return fmt.Sprintf("Today is %s.", now.Format("Monday, January 2, 2006"))
	case has("hello", "hi", "hey", "greetings") || phrase(words, "good morning") || phrase(words, "good afternoon") || phrase(words, "good evening"):
		return "Hello! I'm Parley's offline responder; no language model is connected. Ask me the time or the date, or say help."
	}
	return fmt.Sprintf("You said: %q. I'm the offline responder, so I can only tell the time and date, greet you, or repeat what you say.", strings.TrimSpace(text))
}

// normalize lower-cases the text and splits it into words (tokens).
func normalize(text string) []string {
	return newAsk(text).lower
}

// tokens splits text into words, dropping punctuation ("what's" keeps
// its letters as "whats").
func tokens(text string) []string {
	var b strings.Builder
	for _, r := range text {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		case r == '\'' || r == '’':
		default:
			b.WriteRune(' ')
		}
	}
	return strings.Fields(b.String())
}

func phrase(words []string, p string) bool {
	return strings.Contains(" "+strings.Join(words, " ")+" ", " "+p+" ")
}

func lastUser(conv []llm.Message) string {
	for i := len(conv) - 1; i >= 0; i-- {
		if conv[i].Role == llm.RoleUser {
			return conv[i].Content
		}
	}
	return ""
}
