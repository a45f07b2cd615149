package openai

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/parleyhq/parley/pipeline/llm"
)

// A turn's request body is mostly its history's text. chatBody writes
// it by hand into one buffer sized for it, the bytes json.Marshal would
// write for chatRequest (TestChatBodyIsMarshal), without the copy of the
// conversation chatMessages makes nor the reflection; the tools, rare
// and nested, go through encoding/json.

// chatBody is the JSON body of a chat completions call for r.
func (c *Chat) chatBody(r llm.Request) ([]byte, error) {
	b := make([]byte, 0, bodySize(c.cfg.Model, r.Messages))
	b = append(b, `{"model":`...)
	b = appendString(b, c.cfg.Model)
	b = append(b, `,"messages":`...)
	b = appendMessages(b, r.Messages)
	if len(r.Tools) > 0 {
		tools, err := chatTools(r.Tools)
		if err != nil {
			return nil, err
		}
		if b, err = appendJSON(b, `,"tools":`, tools); err != nil {
			return nil, err
		}
		if tc := toolChoice(r.ToolChoice); tc != nil {
			if b, err = appendJSON(b, `,"tool_choice":`, tc); err != nil {
				return nil, err
			}
		}
	}
	b = append(b, `,"stream":true`...)
	if c.cfg.MaxTokens != 0 {
		b = append(b, `,"max_tokens":`...)
		b = strconv.AppendInt(b, int64(c.cfg.MaxTokens), 10)
	}
	if t := c.cfg.Temperature; t != nil {
		var err error
		if b, err = appendFloat(append(b, `,"temperature":`...), *t); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// bodySize is a little more than the body takes without tools: escapes
// are few.
func bodySize(model string, conv []llm.Message) int {
	n := 64 + len(model)
	for _, m := range conv {
		n += 48 + len(m.Role) + len(m.Content) + len(m.ToolCallID)
		for _, c := range m.ToolCalls {
			n += 80 + len(c.ID) + len(c.Name) + len(c.Arguments)
		}
	}
	return n + n/16
}

// appendMessages writes conv as chatMessages(conv) marshals.
func appendMessages(b []byte, conv []llm.Message) []byte {
	b = append(b, '[')
	for i, m := range conv {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"role":`...)
		b = appendString(b, m.Role)
		b = append(b, `,"content":`...)
		calls := m.Role != llm.RoleTool && len(m.ToolCalls) > 0
		if calls && m.Content == "" {
			b = append(b, "null"...) // a message that only calls tools
		} else {
			b = appendString(b, m.Content)
		}
		if calls {
			b = append(b, `,"tool_calls":[`...)
			for k, c := range m.ToolCalls {
				if k > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"id":`...)
				b = appendString(b, c.ID)
				b = append(b, `,"type":"function","function":{"name":`...)
				b = appendString(b, c.Name)
				b = append(b, `,"arguments":`...)
				b = appendString(b, pastArguments(c.Arguments))
				b = append(b, "}}"...)
			}
			b = append(b, ']')
		}
		if m.Role == llm.RoleTool && m.ToolCallID != "" {
			b = append(b, `,"tool_call_id":`...)
			b = appendString(b, m.ToolCallID)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendJSON(b []byte, key string, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(append(b, key...), j...), nil
}

// appendFloat writes f as encoding/json does.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("openai: temperature %v is no JSON number", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1] // e-07 as e-7
		b = b[:n-1]
	}
	return b, nil
}

const hexDigits = "0123456789abcdef"

// plain marks the ASCII bytes a JSON string carries as they are.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := byte(0x20); c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString writes s as a JSON string, escaped as encoding/json
// escapes it: <, > and & too, U+2028 and U+2029, invalid UTF-8 as
// U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	return append(append(b, s[start:]...), '"')
}
