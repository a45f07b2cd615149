package openai

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/parleyhq/parley/pipeline/llm"
)

// Bounds of the tool calls of one streamed response: a server that never
// stops a call's arguments, or invents calls, fails the stream instead of
// growing memory.
const (
	maxCallArguments = 256 << 10 // bytes of arguments of one call
	maxCalls         = 64        // calls in one response
)

type chatTool struct {
	Type     string         `json:"type"` // "function"
	Function chatToolSchema `json:"function"`
}

type chatToolSchema struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters"`
}

type namedToolChoice struct {
	Type     string `json:"type"` // "function"
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

// pastArguments are the arguments of a call in the history as sent back
// upstream: as the model wrote them when they are a JSON object, else
// "{}". vLLM and llama.cpp parse the arguments of past calls to render
// their chat templates and refuse the whole request when they are not an
// object, which would break the conversation for good; the model was
// already told, in the call's result, that its arguments were refused.
func pastArguments(args string) string {
	t := bytes.TrimSpace([]byte(args))
	if len(t) > 0 && t[0] == '{' && json.Valid(t) {
		return args
	}
	return "{}"
}

// chatTools converts the tools offered to the wire shape.
func chatTools(tools []llm.Tool) ([]chatTool, error) {
	out := make([]chatTool, len(tools))
	for i, t := range tools {
		params, err := sanitizeSchema(t.Parameters)
		if err != nil {
			return nil, fmt.Errorf("openai: tool %q: %w", t.Name, err)
		}
		out[i] = chatTool{Type: "function", Function: chatToolSchema{Name: t.Name, Description: t.Description, Parameters: params}}
	}
	return out, nil
}

// emptyObjectSchema stands for a tool without parameters. Omitting
// "parameters" is valid for OpenAI, but some servers (LM Studio, some
// Gemini-compatible proxies) refuse a function without them, or with {}.
var emptyObjectSchema = json.RawMessage(`{"type":"object","properties":{}}`)

// sanitizeSchema returns a tool's parameters as sent upstream: the same
// schema without a top-level "$schema". Clients send draft-07 schemas
// with "$schema" (the OpenAI Realtime agents SDK does, as do JSON Schema
// generators such as zod-to-json-schema), and some servers behind
// OpenAI-compatible APIs refuse it (Gemini's: `Unknown name "$schema"`);
// it declares a dialect and constrains nothing, so dropping it changes no
// meaning. Everything else, nested parts included, is kept as written.
func sanitizeSchema(raw json.RawMessage) (json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return emptyObjectSchema, nil
	}
	var obj map[string]json.RawMessage
	if t[0] != '{' || json.Unmarshal(t, &obj) != nil {
		return nil, fmt.Errorf("parameters are not a JSON object")
	}
	_, dialect := obj["$schema"]
	delete(obj, "$schema")
	switch {
	case len(obj) == 0:
		return emptyObjectSchema, nil
	case !dialect:
		return t, nil // as written, key order included
	}
	return json.Marshal(obj)
}

// toolChoice is the request's tool_choice: a mode as a string, or the
// named tool as an object.
func toolChoice(choice string) any {
	switch choice {
	case "", "auto":
		return "auto"
	case "none", "required":
		return choice
	}
	var n namedToolChoice
	n.Type = "function"
	n.Function.Name = choice
	return n
}

// toolCallDelta is one fragment of a streamed tool call.
type toolCallDelta struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Function struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

// fragment is a delta's arguments text: OpenAI sends a string; a few
// servers send the whole arguments as a JSON object, which is taken as
// its text.
func (d *toolCallDelta) fragment() string {
	a := bytes.TrimSpace(d.Function.Arguments)
	if len(a) == 0 || string(a) == "null" {
		return ""
	}
	var s string
	if a[0] == '"' && json.Unmarshal(a, &s) == nil {
		return s
	}
	return string(a)
}

// pendingCall is a tool call being streamed.
type pendingCall struct {
	index    int
	id, name string
	args     strings.Builder
}

// callAssembler joins the fragments of a response's tool calls. Each
// fragment names its call by index; the first one of a call carries its
// id and name, later ones add to its arguments. Not safe for concurrent
// use (one per stream).
type callAssembler struct {
	calls   []*pendingCall // in the order they started
	byIndex map[int]*pendingCall
	last    *pendingCall
}

// add takes one fragment.
func (a *callAssembler) add(d toolCallDelta) error {
	c, err := a.callFor(d)
	if err != nil {
		return err
	}
	if c.id == "" {
		c.id = d.ID
	}
	if c.name == "" {
		c.name = d.Function.Name
	}
	frag := d.fragment()
	if c.args.Len()+len(frag) > maxCallArguments {
		return fmt.Errorf("llm upstream: tool call %q: arguments longer than %d bytes", c.name, maxCallArguments)
	}
	c.args.WriteString(frag)
	return nil
}

// callFor finds the call a fragment belongs to, or starts it. A fragment
// without an index (some servers leave it out) continues the latest call
// unless it brings a new id. A new id at an index already in use starts a
// new call too: servers that number every call 0 exist.
func (a *callAssembler) callFor(d toolCallDelta) (*pendingCall, error) {
	var c *pendingCall
	index := len(a.calls)
	if d.Index != nil {
		index = *d.Index
		c = a.byIndex[index]
	} else if a.last != nil {
		index, c = a.last.index, a.last
	}
	if c != nil && (d.ID == "" || c.id == "" || d.ID == c.id) {
		return c, nil
	}
	if len(a.calls) >= maxCalls {
		return nil, fmt.Errorf("llm upstream: more than %d tool calls in one response", maxCalls)
	}
	c = &pendingCall{index: index}
	if a.byIndex == nil {
		a.byIndex = make(map[int]*pendingCall)
	}
	a.byIndex[index] = c
	a.calls = append(a.calls, c)
	a.last = c
	return c, nil
}

// pending reports whether a call has started and not been taken.
func (a *callAssembler) pending() bool { return len(a.calls) > 0 }

// take returns the calls, whole, in index order, and starts afresh. A
// call whose id never came gets one, call_<index>_<random>, so that its
// result can be matched to it. Arguments are passed on as written, valid
// JSON or not: the engine tells the model when they are not.
func (a *callAssembler) take() []llm.ToolCall {
	calls := a.calls
	slices.SortStableFunc(calls, func(x, y *pendingCall) int { return cmp.Compare(x.index, y.index) })
	out := make([]llm.ToolCall, len(calls))
	for i, c := range calls {
		id := c.id
		if id == "" {
			id = fmt.Sprintf("call_%d_%012x", c.index, rand.Uint64()>>16)
		}
		out[i] = llm.ToolCall{ID: id, Name: c.name, Arguments: c.args.String()}
	}
	*a = callAssembler{}
	return out
}
