package local

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parleyhq/parley/pipeline/llm"
)

// beforeCall is said before a tool call, so that a listener hears
// something while the tool runs.
const beforeCall = "Let me check."

// The kinds of tool the responder knows how to use, told by name.
const (
	kindNone = iota
	kindTime
	kindWeather
	kindEcho
)

var (
	timeWords    = []string{"time", "clock", "date", "day", "today"}
	weatherWords = []string{"weather", "temperature", "forecast", "rain", "raining"}
	// placeStops end a place named after "in": "in Paris today" is Paris.
	placeStops = []string{"the", "a", "today", "tomorrow", "tonight", "now", "right", "please", "this", "next", "at", "on", "for", "like", "and"}
)

func kindOf(name string) int {
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "echo"):
		return kindEcho
	case strings.Contains(n, "weather"):
		return kindWeather
	case strings.Contains(n, "time") || strings.Contains(n, "clock"):
		return kindTime
	}
	return kindNone
}

// ask is what the user said, split for matching.
type ask struct {
	text  string   // as said
	words []string // its words as said
	lower []string // the same, lower-cased
}

func newAsk(text string) ask {
	a := ask{text: text, words: tokens(text)}
	for _, w := range a.words {
		a.lower = append(a.lower, strings.ToLower(w))
	}
	return a
}

func (a ask) has(ws ...string) bool {
	return slices.ContainsFunc(a.lower, func(x string) bool { return slices.Contains(ws, x) })
}

// place is what follows "in", up to three words ("in New York today":
// "New York"), or "".
func (a ask) place() string {
	i := slices.Index(a.lower, "in")
	if i < 0 {
		return ""
	}
	var p []string
	for k := i + 1; k < len(a.words) && len(p) < 3 && !slices.Contains(placeStops, a.lower[k]); k++ {
		p = append(p, a.words[k])
	}
	return strings.Join(p, " ")
}

// echoed is the text after a leading "echo", or "" when the user did not
// start with it.
func (a ask) echoed() string {
	if len(a.lower) < 2 || a.lower[0] != "echo" {
		return ""
	}
	i := strings.Index(a.text, a.words[0])
	if i < 0 {
		return ""
	}
	rest := a.text[i+len(a.words[0]):]
	return strings.TrimLeftFunc(rest, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) })
}

// wanted is the kind of tool the words ask for, in order of precedence:
// "echo what time is it" echoes; "the weather today" is the weather.
func (a ask) wanted() []int {
	var ks []int
	if a.echoed() != "" {
		ks = append(ks, kindEcho)
	}
	if a.has(weatherWords...) {
		ks = append(ks, kindWeather)
	}
	if a.has(timeWords...) {
		ks = append(ks, kindTime)
	}
	return ks
}

// pickCall is the call the responder makes for a request, or nil: the
// first tool offered of the kind the words ask for; with tool_choice
// "required" or a tool's name, that tool or the first one offered.
// "none" calls nothing. n numbers the call in the turn. The words are
// read only when a tool is offered: most turns offer none.
func pickCall(req llm.Request, said string, n int) *llm.ToolCall {
	if len(req.Tools) == 0 || req.ToolChoice == "none" {
		return nil
	}
	a, id := newAsk(said), fmt.Sprintf("call_%d", n)
	tools, must := req.Tools, req.ToolChoice == "required"
	if i := slices.IndexFunc(tools, func(t llm.Tool) bool { return t.Name == req.ToolChoice }); i >= 0 {
		tools, must = tools[i:i+1], true
	}
	for _, k := range a.wanted() {
		for _, t := range tools {
			if kindOf(t.Name) == k {
				if args, ok := arguments(t, k, a); ok {
					return &llm.ToolCall{ID: id, Name: t.Name, Arguments: args}
				}
			}
		}
	}
	if !must { // "auto", or a tool not offered
		return nil
	}
	args, ok := arguments(tools[0], kindOf(tools[0].Name), a)
	if !ok {
		args = "{}"
	}
	return &llm.ToolCall{ID: id, Name: tools[0].Name, Arguments: args}
}

// arguments for a tool of kind k, from its schema and the words; false
// when the words give the tool nothing to work with.
func arguments(t llm.Tool, k int, a ask) (string, bool) {
	s := readSchema(t.Parameters)
	args := map[string]string{}
	switch k {
	case kindTime:
		if p, place := s.property("timezone", "tz", "zone", "location", "city", "place"), a.place(); p != "" && place != "" {
			args[p] = place
		}
	case kindWeather:
		place := a.place()
		if place == "" {
			place = "here"
		}
		args[s.propertyOr("location", "location", "city", "place", "where", "query")] = place
	case kindEcho:
		p, said := s.propertyOr("message", "message", "text", "input", "value"), a.echoed()
		if said == "" {
			said = strings.TrimSpace(a.text)
		}
		if said == "" || (s.declared && !s.has(p)) {
			return "", false
		}
		args[p] = said
	default:
		return "{}", true
	}
	b, _ := json.Marshal(args)
	return string(b), true
}

// schema is what the responder reads of a tool's parameters: its string
// properties.
type schema struct {
	declared bool     // the schema lists properties
	strings  []string // string properties, required ones first
}

func readSchema(raw json.RawMessage) schema {
	var s struct {
		Properties map[string]struct {
			Type any `json:"type"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	if json.Unmarshal(raw, &s) != nil {
		return schema{}
	}
	out := schema{declared: len(s.Properties) > 0}
	isString := func(t any) bool {
		switch t := t.(type) {
		case nil:
			return true
		case string:
			return t == "string"
		case []any:
			return slices.Contains(t, any("string"))
		}
		return false
	}
	for _, name := range s.Required {
		if p, ok := s.Properties[name]; ok && isString(p.Type) && !slices.Contains(out.strings, name) {
			out.strings = append(out.strings, name)
		}
	}
	var rest []string
	for name, p := range s.Properties {
		if isString(p.Type) && !slices.Contains(out.strings, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest) // map order is random; the responder is not
	out.strings = append(out.strings, rest...)
	return out
}

func (s schema) has(name string) bool { return slices.Contains(s.strings, name) }

// property is the first of names that the schema has as a string
// property, or "".
func (s schema) property(names ...string) string {
	for _, n := range names {
		if s.has(n) {
			return n
		}
	}
	return ""
}

// propertyOr is property, else the first required string property, else
// def when the schema declares no properties.
func (s schema) propertyOr(def string, names ...string) string {
	if p := s.property(names...); p != "" {
		return p
	}
	if len(s.strings) > 0 {
		return s.strings[0]
	}
	return def
}

// turnCalls is the responder's call message in the current turn (after
// the last user message) and the messages after it, or nil: a turn calls
// tools once, then answers.
func turnCalls(conv []llm.Message) (*llm.Message, []llm.Message) {
	start := 0
	for i := len(conv) - 1; i >= 0; i-- {
		if conv[i].Role == llm.RoleUser {
			start = i
			break
		}
	}
	for i := start; i < len(conv); i++ {
		if conv[i].Role == llm.RoleAssistant && len(conv[i].ToolCalls) > 0 {
			return &conv[i], conv[i+1:]
		}
	}
	return nil, nil
}

// fromResults answers with the results of the calls, one sentence each
// in the order of the calls, or "" when none has a result.
func fromResults(calls []llm.ToolCall, after []llm.Message) string {
	var out []string
	for _, c := range calls {
		i := slices.IndexFunc(after, func(m llm.Message) bool { return m.Role == llm.RoleTool && m.ToolCallID == c.ID })
		if i < 0 {
			continue
		}
		out = append(out, sentence(c.Name, after[i].Content))
	}
	return strings.Join(out, " ")
}

// maxSaid is how much of a tool's output the responder repeats.
const maxSaid = 300

func sentence(tool, output string) string {
	said := strings.Join(strings.Fields(output), " ")
	end := "."
	if utf8.RuneCountInString(said) > maxSaid {
		said, end = string([]rune(said)[:maxSaid]), "…"
	}
	said = strings.TrimRight(said, ".")
	switch {
	case said == "":
		return fmt.Sprintf("The %s tool returned nothing.", tool)
	case kindOf(tool) == kindTime && len(said) <= 40 && strings.ContainsAny(said, "0123456789"):
		// A time, not an error: "It is 3:04 PM."
		return fmt.Sprintf("It is %s%s", said, end)
	}
	return fmt.Sprintf("The %s tool says: %s%s", tool, said, end)
}

// callsSoFar counts the tool calls in a conversation, for the next id.
func callsSoFar(conv []llm.Message) int {
	n := 0
	for _, m := range conv {
		n += len(m.ToolCalls)
	}
	return n
}
