package openai

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/parleyhq/parley/pipeline/llm"
)

// Config of a client. A zero field means the default in its comment.
type Config struct {
	BaseURL     string        // e.g. http://127.0.0.1:11434/v1; required
	Model       string        // required
	APIKey      string        // sent as a bearer token when set
	Timeout     time.Duration // whole call, when ctx has no earlier deadline; default 60s
	MaxTokens   int           // 0 leaves max_tokens out
	Temperature *float64      // nil leaves temperature out
	HTTPClient  *http.Client  // default: a client with dial and header timeouts and no overall timeout (replies stream)

	// A call that fails before its answer starts (unreachable, 429, 5xx)
	// is sent again up to Retries times (default 2; negative: never),
	// after RetryBackoff doubled each time with jitter (default 200ms), or
	// the upstream's Retry-After, while the turn's deadline allows.
	Retries      int
	RetryBackoff time.Duration
	// After BreakerFailures failed calls in a row (default 5; negative:
	// no breaker), calls fail at once for BreakerCooldown (default 10s),
	// then one trial call decides.
	BreakerFailures int
	BreakerCooldown time.Duration
	Now             func() time.Time // the breaker's clock; default time.Now

	shown   string // BaseURL with any password redacted, for errors
	breaker *breaker
}

func (c *Config) check() error {
	if c.BaseURL == "" || c.Model == "" {
		return errors.New("openai: BaseURL and Model are required")
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("openai: base URL %q: want http(s)://host[:port]/path", c.BaseURL)
	}
	c.shown = u.Redacted()
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.Retries == 0 {
		c.Retries = 2
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 200 * time.Millisecond
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = 5
	}
	if c.BreakerCooldown <= 0 {
		c.BreakerCooldown = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.breaker = &breaker{failures: c.BreakerFailures, cooldown: c.BreakerCooldown, now: c.Now}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ResponseHeaderTimeout: 30 * time.Second,
			MaxIdleConnsPerHost:   1024, // one per slot: a new TCP connection per turn cost hundreds of ms under load
			IdleConnTimeout:       90 * time.Second,
		}}
	}
	return nil
}

// post sends body as JSON to path and returns the streaming response, or
// an error that says what the upstream answered.
func post(ctx context.Context, cfg *Config, path string, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return do(ctx, cfg, path, "application/json", b)
}

// do POSTs body to path, with the bearer token if any, with retries and
// the circuit breaker (see send).
func do(ctx context.Context, cfg *Config, path, contentType string, body []byte) (*http.Response, error) {
	return send(ctx, cfg, path, func() (*http.Response, error) { return doOnce(ctx, cfg, path, contentType, body) })
}

func doOnce(ctx context.Context, cfg *Config, path, contentType string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	if cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.APIKey)
	}
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("upstream: %s: %w", cfg.shown+path, stripURLError(err))
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return nil, &httpError{status: resp.StatusCode, text: resp.Status + ": " + upstreamMessage(snippet),
			retryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	}
	return resp, nil
}

// stripURLError keeps the cause of a transport error; the URL is said once
// by the caller.
func stripURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// upstreamMessage extracts {"error":{"message":…}} or shows the start of
// the body.
func upstreamMessage(body []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && len(e.Error) > 0 {
		var obj struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(e.Error, &obj) == nil && obj.Message != "" {
			return obj.Message
		}
		var s string
		if json.Unmarshal(e.Error, &s) == nil && s != "" {
			return s
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// maxLine bounds one line of a stream: a chunk is a few hundred bytes, a
// tool call's arguments in one chunk may be long, a line without end is
// a broken upstream.
const maxLine = 1 << 20

// sseReaders hold a stream's line reader between calls: the body below is
// buffered already, and a reader made per call was the largest thing a
// streamed turn allocated (it was 64 KB). A line longer than the buffer
// is gathered apart (lineReader.long).
var sseReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// readSSE calls data for each "data:" payload until "[DONE]" and reports
// whether "[DONE]" was seen. data must not keep the slice it is given.
func readSSE(ctx context.Context, r io.Reader, data func([]byte) error) (bool, error) {
	br := sseReaders.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil) // the pool keeps no body alive
		sseReaders.Put(br)
	}()
	lr := lineReader{br: br}
	for {
		line, err := lr.next()
		if len(line) > 0 {
			if p, ok := bytes.CutPrefix(line, []byte("data:")); ok {
				p = bytes.TrimSpace(p)
				if string(p) == "[DONE]" {
					return true, nil
				}
				if len(p) > 0 {
					if err := data(p); err != nil {
						return false, err
					}
				}
			}
			// Comments (":…"), event:, id: and retry: lines carry nothing for us.
		}
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, fmt.Errorf("llm upstream: reading the stream: %w", err)
		}
	}
}

// lineReader reads lines without their end. A line that fits the buffer
// is returned in place (valid until the next call); a longer one is
// gathered in long, up to maxLine bytes.
type lineReader struct {
	br   *bufio.Reader
	long []byte
}

func (lr *lineReader) next() ([]byte, error) {
	chunk, err := lr.br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return bytes.TrimRight(chunk, "\r\n"), err
	}
	lr.long = append(lr.long[:0], chunk...)
	for err == bufio.ErrBufferFull {
		chunk, err = lr.br.ReadSlice('\n')
		lr.long = append(lr.long, chunk...)
		if len(lr.long) > maxLine {
			return nil, fmt.Errorf("llm upstream: a stream line longer than %d bytes", maxLine)
		}
	}
	return bytes.TrimRight(lr.long, "\r\n"), err
}

type streamError struct {
	Error json.RawMessage `json:"error"`
}

func checkStreamError(p []byte) error {
	var se streamError
	if json.Unmarshal(p, &se) == nil {
		return se.err(p)
	}
	return nil
}

// err is the error a chunk carries, if any.
func (se streamError) err(p []byte) error {
	if len(se.Error) > 0 && string(se.Error) != "null" {
		return fmt.Errorf("llm upstream: error in stream: %s", upstreamMessage(p))
	}
	return nil
}

// decodeChunk decodes a stream chunk into ch (a pointer to a struct that
// embeds streamError) once, and reports the error the chunk carries. A
// chunk that does not decode as ch may still be an upstream's error,
// which is what it then says.
func decodeChunk(p []byte, ch interface{ err([]byte) error }) error {
	if err := json.Unmarshal(p, ch); err != nil {
		if serr := checkStreamError(p); serr != nil {
			return serr
		}
		return fmt.Errorf("llm upstream: bad stream chunk: %w", err)
	}
	return ch.err(p)
}

// Chat streams chat completions: POST {base}/chat/completions.
type Chat struct {
	cfg Config
}

var _ llm.LLM = (*Chat)(nil)

// NewChat returns a chat completions client.
func NewChat(cfg Config) (*Chat, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return &Chat{cfg: cfg}, nil
}

// MaxBatch: chat completions take one conversation per call.
func (c *Chat) MaxBatch() int { return 1 }

type chatChunk struct {
	streamError
	Choices []struct {
		Delta struct {
			Content   string          `json:"content"`
			ToolCalls []toolCallDelta `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

// CallsTools implements llm.LLM: tools are sent as OpenAI function tools
// and the streamed calls reported whole.
func (c *Chat) CallsTools() bool { return true }

// Stream implements llm.LLM. Text is emitted as it comes; tool calls are
// emitted whole, in index order, when the response finishes (any
// finish_reason: some servers say "stop" after calls), or at [DONE]. A
// stream cut before that is an error, and its unfinished calls are not
// emitted.
func (c *Chat) Stream(ctx context.Context, reqs []llm.Request, emit func(int, llm.Piece)) error {
	if len(reqs) != 1 {
		return fmt.Errorf("openai: chat completions take one conversation per call, got %d", len(reqs))
	}
	body, err := c.chatBody(reqs[0])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	resp, err := do(ctx, &c.cfg, "/chat/completions", "application/json", body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	reply := chatReply{emit: emit}
	done, err := readSSE(ctx, resp.Body, reply.chunk)
	if err != nil {
		return err
	}
	if !done && !reply.finished {
		if reply.calls.pending() {
			return errors.New("llm upstream: stream ended early, in a tool call")
		}
		return errors.New("llm upstream: stream ended early")
	}
	reply.emitCalls()
	return nil
}

// chatReply follows one streamed response.
type chatReply struct {
	emit     func(int, llm.Piece)
	calls    callAssembler
	finished bool // a finish_reason came, and no call fragment after it
	fast     []fastChoice
}

func (r *chatReply) chunk(p []byte) error {
	if cs, ok := scanChunk(p, r.fast[:0], chatChunkShape); ok {
		r.fast = cs
		for _, c := range cs {
			if c.content != "" {
				r.emit(0, llm.Piece{Text: c.content})
			}
			if c.finished {
				r.finished = true
				r.emitCalls()
			}
		}
		return nil
	}
	var ch chatChunk // decoded once, its error field with it
	if err := decodeChunk(p, &ch); err != nil {
		return err
	}
	for _, choice := range ch.Choices {
		if choice.Delta.Content != "" {
			r.emit(0, llm.Piece{Text: choice.Delta.Content})
		}
		for _, d := range choice.Delta.ToolCalls {
			if err := r.calls.add(d); err != nil {
				return err
			}
			r.finished = false
		}
		if choice.FinishReason != nil && *choice.FinishReason != "" {
			r.finished = true
			r.emitCalls()
		}
	}
	return nil
}

func (r *chatReply) emitCalls() {
	for _, call := range r.calls.take() {
		r.emit(0, llm.Piece{Call: &call})
	}
}

// DefaultTemplate renders a conversation as ChatML, which most
// instruction-tuned models served by vLLM understand.
const DefaultTemplate = "{{range .}}<|im_start|>{{.Role}}\n{{.Content}}<|im_end|>\n{{end}}<|im_start|>assistant\n"

// Completions sends a list of prompts in one call: POST {base}/completions
// with "prompt": [...], streamed; choices are told apart by index.
type Completions struct {
	cfg   Config
	tmpl  *template.Template
	batch int
}

var _ llm.LLM = (*Completions)(nil)

// NewCompletions returns a batching completions client. tmpl renders a
// []llm.Message into a prompt (empty: DefaultTemplate); batch is the
// most prompts per call (0: 4).
func NewCompletions(cfg Config, tmpl string, batch int) (*Completions, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if tmpl == "" {
		tmpl = DefaultTemplate
	}
	t, err := template.New("prompt").Parse(tmpl)
	if err != nil {
		return nil, fmt.Errorf("openai: prompt template: %w", err)
	}
	if batch <= 0 {
		batch = 4
	}
	return &Completions{cfg: cfg, tmpl: t, batch: batch}, nil
}

// MaxBatch implements llm.LLM.
func (c *Completions) MaxBatch() int { return c.batch }

type completionsRequest struct {
	Model       string   `json:"model"`
	Prompt      []string `json:"prompt"`
	Stream      bool     `json:"stream"`
	MaxTokens   int      `json:"max_tokens,omitempty"`
	Temperature *float64 `json:"temperature,omitempty"`
}

type completionsChunk struct {
	streamError
	Choices []struct {
		Index        int     `json:"index"`
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

// Render is the prompt for one conversation. Completions call no tools,
// so the engine gives it none; a tool message left in a history (from a
// provider configured before) renders like any message, as role "tool"
// with its content, and an assistant message's tool calls are not
// rendered, only its text (a template may still range over .ToolCalls).
func (c *Completions) Render(conv []llm.Message) (string, error) {
	var b strings.Builder
	if err := c.tmpl.Execute(&b, conv); err != nil {
		return "", fmt.Errorf("openai: prompt template: %w", err)
	}
	return b.String(), nil
}

// CallsTools implements llm.LLM: a prompt has no place for tools, and
// the tools of a request are never sent.
func (c *Completions) CallsTools() bool { return false }

// Stream implements llm.LLM.
func (c *Completions) Stream(ctx context.Context, reqs []llm.Request, emit func(int, llm.Piece)) error {
	convs := llm.Messages(reqs)
	prompts := make([]string, len(convs))
	for i, conv := range convs {
		p, err := c.Render(conv)
		if err != nil {
			return err
		}
		prompts[i] = p
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	resp, err := post(ctx, &c.cfg, "/completions", completionsRequest{
		Model: c.cfg.Model, Prompt: prompts, Stream: true, MaxTokens: c.cfg.MaxTokens, Temperature: c.cfg.Temperature,
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	finished := make([]bool, len(convs))
	var fast []fastChoice
	done, err := readSSE(ctx, resp.Body, func(p []byte) error {
		var ok bool
		if fast, ok = scanChunk(p, fast[:0], textChunkShape); !ok {
			var ch completionsChunk
			if err := decodeChunk(p, &ch); err != nil {
				return err
			}
			fast = fast[:0]
			for _, c := range ch.Choices {
				fast = append(fast, fastChoice{index: c.Index, content: c.Text, finished: c.FinishReason != nil && *c.FinishReason != ""})
			}
		}
		for _, c := range fast {
			if c.index < 0 || c.index >= len(convs) {
				return fmt.Errorf("llm upstream: choice index %d for %d prompts", c.index, len(convs))
			}
			if c.content != "" {
				emit(c.index, llm.Piece{Text: c.content})
			}
			if c.finished {
				finished[c.index] = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !done {
		for _, f := range finished {
			if !f {
				return errors.New("llm upstream: stream ended early")
			}
		}
	}
	return nil
}
