package openai

import (
	"bytes"

	"github.com/parleyhq/parley/internal/jsonbytes"
)

// A streamed reply is mostly chunks of one shape: choices with a piece
// of text (a chat delta's content, or a completion's text), the last with
// a finish reason. scanChunk reads that shape by hand, without reflection
// and allocating only the text; anything else (a tool call, an error, a
// field of another type, a duplicate key, bad JSON) it leaves to
// encoding/json, which reads every shape and says what is wrong. Its
// result is encoding/json's whenever it gives one (FuzzScanChunk).

// fastChoice is what a choice of the common shape says.
type fastChoice struct {
	index    int // a completion's; chat chunks' are not read
	content  string
	finished bool // a finish_reason, neither null nor empty
}

// chatChunkShape and textChunkShape are the shapes scanChunk reads: a
// chat completion's chunk, and a completion's (choices with an index and
// a text).
const (
	chatChunkShape = iota
	textChunkShape
)

// scanChunk appends p's choices to out. ok false: p is not of the common
// shape, and out's contents are undefined.
func scanChunk(p []byte, out []fastChoice, shape int) ([]fastChoice, bool) {
	s := jsonbytes.NewScanner(p)
	var seenChoices, seenError bool
	ok := s.Object(func(key []byte) bool {
		switch {
		case string(key) == "choices" && !seenChoices:
			seenChoices = true
			if s.Null() {
				return true
			}
			return s.Array(func() bool {
				c, ok := choice(&s, shape)
				out = append(out, c)
				return ok
			})
		case string(key) == "error" && !seenError:
			seenError = true
			return s.Null() // an error is the slow path's to tell
		case bytes.EqualFold(key, []byte("choices")), bytes.EqualFold(key, []byte("error")):
			return false // a duplicate, or encoding/json's folded match
		}
		return s.Skip()
	})
	return out, ok && s.Done()
}

// choice reads one element of "choices".
func choice(s *jsonbytes.Scanner, shape int) (fastChoice, bool) {
	var c fastChoice
	if s.Null() {
		return c, true
	}
	var seenText, seenFinish, seenIndex bool
	ok := s.Object(func(key []byte) bool {
		switch {
		case shape == chatChunkShape && string(key) == "delta" && !seenText:
			seenText = true
			return delta(s, &c)
		case shape == textChunkShape && string(key) == "text" && !seenText:
			seenText = true
			return textOrNull(s, &c.content)
		case shape == textChunkShape && string(key) == "index" && !seenIndex:
			seenIndex = true
			return s.Null() || s.Int(&c.index)
		case string(key) == "finish_reason" && !seenFinish:
			seenFinish = true
			if s.Null() {
				return true
			}
			v, ok := s.Str()
			c.finished = v != ""
			return ok
		case bytes.EqualFold(key, []byte("finish_reason")),
			shape == chatChunkShape && bytes.EqualFold(key, []byte("delta")),
			shape == textChunkShape && (bytes.EqualFold(key, []byte("text")) || bytes.EqualFold(key, []byte("index"))):
			return false
		}
		return s.Skip()
	})
	return c, ok
}

// textOrNull reads a string or null (which leaves *v as it is).
func textOrNull(s *jsonbytes.Scanner, v *string) bool {
	if s.Null() {
		return true
	}
	t, ok := s.Str()
	*v = t
	return ok
}

// delta reads a choice's delta: its text, and no tool call.
func delta(s *jsonbytes.Scanner, c *fastChoice) bool {
	if s.Null() {
		return true
	}
	var seenContent, seenCalls bool
	return s.Object(func(key []byte) bool {
		switch {
		case string(key) == "content" && !seenContent:
			seenContent = true
			return textOrNull(s, &c.content)
		case string(key) == "tool_calls" && !seenCalls:
			seenCalls = true
			if s.Null() {
				return true
			}
			return s.Array(func() bool { return false }) // only [] here
		case bytes.EqualFold(key, []byte("content")), bytes.EqualFold(key, []byte("tool_calls")):
			return false
		}
		return s.Skip()
	})
}
