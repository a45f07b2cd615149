package jsonbytes

import (
	"bytes"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// NewScanner reads b.
func NewScanner(b []byte) Scanner { return Scanner{b: b} }

// Skip reads over any value.
func (s *Scanner) Skip() bool { return s.skip(0) }

// Done reports whether only white space is left.
func (s *Scanner) Done() bool {
	s.ws()
	return s.i == len(s.b)
}

// Int reads a number without fraction or exponent that fits an int,
// as encoding/json decodes into one.
func (s *Scanner) Int(v *int) bool {
	start := s.peekAt()
	if !s.number() {
		return false
	}
	n, err := strconv.Atoi(string(s.b[start:s.i]))
	*v = n
	return err == nil
}

// peekAt is the position of the next value.
func (s *Scanner) peekAt() int {
	s.ws()
	return s.i
}

// Scanner walks JSON text. Each method reports false on what it does not
// read, leaving the position undefined.
type Scanner struct {
	b []byte
	i int
}

// maxDepth bounds the nesting skip follows; deeper goes the slow way.
const maxDepth = 32

func (s *Scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *Scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *Scanner) eat(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

func (s *Scanner) literal(word string) bool {
	if s.peek() == word[0] && bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		s.i += len(word)
		return true
	}
	return false
}

// Null reads null.
func (s *Scanner) Null() bool { return s.literal("null") }

// object calls field for each key, positioned at its value, which field
// must read.
func (s *Scanner) Object(field func(key []byte) bool) bool {
	if !s.eat('{') {
		return false
	}
	if s.eat('}') {
		return true
	}
	for {
		key, esc, ok := s.span()
		if !ok || esc || !s.eat(':') || !field(key) {
			return false // a key with an escape goes the slow way
		}
		if !s.eat(',') {
			return s.eat('}')
		}
	}
}

// array calls elem for each element, positioned at it.
func (s *Scanner) Array(elem func() bool) bool {
	if !s.eat('[') {
		return false
	}
	if s.eat(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if !s.eat(',') {
			return s.eat(']')
		}
	}
}

// skip reads over any value.
func (s *Scanner) skip(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch c := s.peek(); {
	case c == '{':
		return s.Object(func([]byte) bool { return s.skip(depth + 1) })
	case c == '[':
		return s.Array(func() bool { return s.skip(depth + 1) })
	case c == '"':
		_, _, ok := s.span()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.Null()
	case c == '-' || isDigit(c):
		return s.number()
	}
	return false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number reads a number as JSON's grammar has it.
func (s *Scanner) number() bool {
	b, i := s.b, s.i
	digits := func() bool {
		start := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		return i > start
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	s.i = i
	return true
}

// span reads a string and returns its bytes between the quotes, and
// whether they hold an escape; an invalid escape or a control character
// is no string.
func (s *Scanner) span() (raw []byte, esc, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, esc, true
		case c < 0x20:
			return nil, false, false
		case c == '\\':
			n := escapeLen(s.b[s.i:])
			if n == 0 {
				return nil, false, false
			}
			esc = true
			s.i += n
		default:
			s.i++
		}
	}
	return nil, false, false
}

// escapeLen is the length of the escape at the start of b, 0 if invalid.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if hex4(b[2:]) >= 0 {
			return 6
		}
	}
	return 0
}

// hex4 is the value of four hex digits at the start of b, -1 if none.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// Raw reads a string value that holds no escape and is valid UTF-8,
// and returns its bytes in place (valid while the scanned text is): what
// encoding/json would decode it to, without a copy. Any other string is
// false.
func (s *Scanner) Raw() ([]byte, bool) {
	raw, esc, ok := s.span()
	return raw, ok && !esc && utf8.Valid(raw)
}

// Str reads a string value as encoding/json decodes it: escapes
// resolved, a lone surrogate and invalid UTF-8 made U+FFFD.
func (s *Scanner) Str() (string, bool) {
	raw, esc, ok := s.span()
	if !ok {
		return "", false
	}
	if !esc && utf8.Valid(raw) {
		return string(raw), true
	}
	return unquote(raw), true
}

// unquote resolves the escapes of raw, a string's valid contents.
func unquote(raw []byte) string {
	out := make([]byte, 0, len(raw)+8)
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			out, i = unescape(out, raw, i)
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, n := utf8.DecodeRune(raw[i:])
			out = utf8.AppendRune(out, r) // RuneError for a bad byte, as encoding/json
			i += n
		}
	}
	return string(out)
}

// unescape appends the escape at raw[i] (valid: span checked it).
func unescape(out, raw []byte, i int) ([]byte, int) {
	switch c := raw[i+1]; c {
	case 'b':
		return append(out, '\b'), i + 2
	case 'f':
		return append(out, '\f'), i + 2
	case 'n':
		return append(out, '\n'), i + 2
	case 'r':
		return append(out, '\r'), i + 2
	case 't':
		return append(out, '\t'), i + 2
	case 'u':
		r := hex4(raw[i+2:])
		i += 6
		if utf16.IsSurrogate(r) {
			if i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
				if d := utf16.DecodeRune(r, hex4(raw[i+2:])); d != unicode.ReplacementChar {
					return utf8.AppendRune(out, d), i + 6
				}
			}
			r = unicode.ReplacementChar
		}
		return utf8.AppendRune(out, r), i
	default: // '"', '\\', '/'
		return append(out, c), i + 2
	}
}
