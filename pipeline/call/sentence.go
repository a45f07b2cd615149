package call

import (
	"strings"
	"unicode"
)

// Sentences cuts streamed reply text into sentences for speech, as it
// arrives: the first sentence can be spoken while the model still writes
// the rest. Not safe for concurrent use.
type Sentences struct {
	buf strings.Builder
	// MinLen: a sentence shorter than this waits to be spoken with the next
	// one ("Yes." alone is a wasteful synthesis call); default 12.
	MinLen int
}

// abbreviations that end with a period without ending a sentence.
var abbreviations = map[string]bool{
	"mr": true, "mrs": true, "ms": true, "dr": true, "prof": true, "sr": true, "jr": true, "st": true,
	"vs": true, "etc": true, "e.g": true, "i.e": true, "approx": true, "no": true, "fig": true,
}

// Add appends text and returns the sentences it completed.
func (s *Sentences) Add(text string) []string {
	s.buf.WriteString(text)
	minLen := s.MinLen
	if minLen <= 0 {
		minLen = 12
	}
	var out []string
	str := s.buf.String()
	start := 0
	for i := 0; i < len(str); i++ {
		if !isBoundary(str, i) {
			continue
		}
		cand := strings.TrimSpace(str[start : i+1])
		if len(cand) < minLen {
			continue // keep it for the next sentence
		}
		out = append(out, cand)
		start = i + 1
	}
	if start > 0 {
		rest := str[start:]
		s.buf.Reset()
		s.buf.WriteString(rest)
	}
	return out
}

// Flush returns what is left (the end of the reply), if anything.
func (s *Sentences) Flush() string {
	rest := strings.TrimSpace(s.buf.String())
	s.buf.Reset()
	return rest
}

// isBoundary reports whether str[i] ends a sentence: terminal punctuation
// followed by white space (so "3.14", "3:04" and "e.g.x" do not), and not
// after a known abbreviation or a single initial.
func isBoundary(str string, i int) bool {
	c := str[i]
	switch c {
	case '\n':
		return true
	case '.', '!', '?', ';':
	default:
		return false
	}
	if i+1 >= len(str) || !unicode.IsSpace(rune(str[i+1])) {
		return false // wait: more may come ("3." then "14")
	}
	if c == '.' {
		j := i
		for j > 0 && (unicode.IsLetter(rune(str[j-1])) || str[j-1] == '.') {
			j--
		}
		word := strings.ToLower(str[j:i])
		if abbreviations[word] || (len(word) == 1 && unicode.IsUpper(rune(str[j]))) {
			return false
		}
	}
	return true
}
