package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// The text clients' reader, the load generator's busiest loop: it shares
// the cores with the server, so what it spends per message is taken from
// the turns measured. Each message is read into one reused buffer and
// scanned for the few fields a client needs; encoding/json is left for
// a string with escapes in it.

// textEvent is what a text client reads of an event.
type textEvent struct {
	Type, Text, Code string
	Turn             int64
	Final            bool
}

// readFrame reads the next message into buf's storage, grown as needed.
// The bytes are valid until the next call. (The server reads its clients
// alike, in signaling/message.go; the load generator imports nothing of
// the server: it speaks only the wire protocol.)
func readFrame(ws *websocket.Conn, buf []byte) ([]byte, error) {
	_, r, err := ws.NextReader()
	if err != nil {
		return buf[:0], err
	}
	b := buf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b[:0], err
		}
	}
}

// decode reads the fields of b a client uses, as encoding/json would
// (FuzzTextEventDecode), but for the text of anything but a transcript,
// which is not kept; false: not an event.
func (ev *textEvent) decode(b []byte) bool {
	*ev = textEvent{}
	unsure := false
	var text []byte // read at the end, and only for a transcript's
	ok := topFields(b, func(key, val []byte) bool {
		if bytes.IndexByte(key, '\\') >= 0 {
			unsure = true // an escaped key: encoding/json's to read
			return false
		}
		if string(val) == "null" {
			return true // as encoding/json: nothing set
		}
		switch {
		case bytes.EqualFold(key, []byte("type")):
			return ev.setType(val)
		case bytes.EqualFold(key, []byte("text")):
			text = val
			return len(val) >= 2 && val[0] == '"'
		case bytes.EqualFold(key, []byte("code")):
			return readString(val, &ev.Code)
		case bytes.EqualFold(key, []byte("turn")):
			n, err := strconv.ParseInt(string(val), 10, 64)
			ev.Turn = n
			return err == nil
		case bytes.EqualFold(key, []byte("final")):
			ev.Final = string(val) == "true"
			return ev.Final || string(val) == "false"
		}
		return true
	})
	if unsure {
		var e textEvent // its own, so that ev stays off the heap
		err := json.Unmarshal(b, &e)
		*ev = e
		return err == nil
	}
	if ok && text != nil && ev.Type == "transcript" {
		return readString(text, &ev.Text)
	}
	return ok
}

// setType keeps the type; the common ones as constants, not copies.
func (ev *textEvent) setType(val []byte) bool {
	switch string(val) {
	case `"reply.delta"`:
		ev.Type = "reply.delta"
	case `"reply.done"`:
		ev.Type = "reply.done"
	case `"transcript"`:
		ev.Type = "transcript"
	case `"error"`:
		ev.Type = "error"
	default:
		return readString(val, &ev.Type)
	}
	return true
}

// readString sets *s from the JSON string val; false if val is not one.
func readString(val []byte, s *string) bool {
	if len(val) < 2 || val[0] != '"' {
		return false
	}
	inner := val[1 : len(val)-1]
	if bytes.IndexByte(inner, '\\') >= 0 || !utf8.Valid(inner) {
		var u string // escapes, or bytes to replace: encoding/json's
		err := json.Unmarshal(val, &u)
		*s = u
		return err == nil
	}
	*s = string(inner)
	return true
}

// topFields calls f with each key (unquoted) and raw value of the object
// b at its top level; nested values are passed whole. false: b is not an
// object of that shape, or f said so.
func topFields(b []byte, f func(key, val []byte) bool) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for i < len(b) {
		k := stringEnd(b, i)
		if k < 0 {
			return false
		}
		key := b[i+1 : k-1]
		i = skipSpace(b, k)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		v := valueEnd(b, i)
		if v <= i {
			return false
		}
		if val := trimSpace(b[i:v]); !plausible(val) || !f(key, val) {
			return false
		}
		i = skipSpace(b, v)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '}':
			return skipSpace(b, i+1) == len(b)
		case ',':
			i = skipSpace(b, i+1)
		default:
			return false
		}
	}
	return false
}

// stringEnd is the index just past the string starting at b[i]; -1 if
// there is none.
func stringEnd(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd is the index just past the value starting at b[i]: a string,
// an object or array with its nesting, or a scalar up to the next ',' or
// '}' at this level. -1 if it does not end.
func valueEnd(b []byte, i int) int {
	if i < len(b) && b[i] == '"' {
		return stringEnd(b, i)
	}
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			k := stringEnd(b, j)
			if k < 0 {
				return -1
			}
			j = k - 1
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j
			}
			if depth--; depth == 0 {
				return j + 1
			}
		case ',':
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

// plausible: val could be a JSON value (a scalar's characters checked,
// not its grammar: the server's frames are well formed, and encoding/json
// is the judge of the rest).
func plausible(val []byte) bool {
	switch string(val) {
	case "true", "false", "null":
		return true
	}
	if val[0] == '"' || val[0] == '{' || val[0] == '[' {
		return true
	}
	for _, c := range val {
		if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return false
		}
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
