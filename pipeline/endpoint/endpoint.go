package endpoint

import (
	"strings"
	"time"
	"unicode"
)

// Config sets the waits. A zero field means the default in its comment.
type Config struct {
	Short  time.Duration // after a complete utterance; default 300ms
	Normal time.Duration // when the words say neither; default 600ms
	Long   time.Duration // after words that end mid-thought; default 1200ms
	Max    time.Duration // the longest wait whatever was said; default 2s
}

func (c *Config) setDefaults() {
	if c.Short <= 0 {
		c.Short = 300 * time.Millisecond
	}
	if c.Normal <= 0 {
		c.Normal = 600 * time.Millisecond
	}
	if c.Long <= 0 {
		c.Long = 1200 * time.Millisecond
	}
	if c.Max <= 0 {
		c.Max = 2 * time.Second
	}
}

// Eagerness maps OpenAI's semantic_vad eagerness ("low", "medium",
// "high", "auto") onto the waits: low waits longer for the caller to go
// on, high answers sooner. auto and medium (and anything else) are the
// defaults.
func Eagerness(e string) Config {
	switch e {
	case "low":
		return Config{Short: 500 * time.Millisecond, Normal: time.Second, Long: 2 * time.Second, Max: 4 * time.Second}
	case "high":
		return Config{Short: 200 * time.Millisecond, Normal: 400 * time.Millisecond, Long: 800 * time.Millisecond, Max: time.Second}
	}
	return Config{}
}

// Why names the rule that chose a wait: a metric label and a field of the
// latency event, so a small fixed set.
type Why string

// The rules.
const (
	NoWords    Why = "no_words"
	Unfinished Why = "unfinished" // the last word cannot end a sentence
	Dictation  Why = "dictation"
	Request    Why = "request"
	Question   Why = "question"
	Reply      Why = "reply" // a short complete reply
	Statement  Why = "statement"
)

// Whys lists every Why, for metrics.
var Whys = []Why{NoWords, Unfinished, Dictation, Request, Question, Reply, Statement}

// Decision is a wait and the rule that chose it.
type Decision struct {
	Wait time.Duration
	Why  Why
}

// Endpointer chooses the silence to wait for after the words so far.
type Endpointer struct{ cfg Config }

// New returns an Endpointer.
func New(cfg Config) *Endpointer {
	cfg.setDefaults()
	return &Endpointer{cfg: cfg}
}

// Config is the configuration in force, defaults filled in.
func (e *Endpointer) Config() Config { return e.cfg }

// Decide returns the wait after the recogniser's words so far.
func (e *Endpointer) Decide(text string) Decision {
	why := classify(text)
	var d time.Duration
	switch why {
	case Unfinished, Dictation, Request:
		d = e.cfg.Long
	case Question, Reply:
		d = e.cfg.Short
	default:
		d = e.cfg.Normal
	}
	return Decision{Wait: min(d, e.cfg.Max), Why: why}
}

// classify applies the rules of the package doc.
func classify(text string) Why {
	words := Words(text)
	if len(words) == 0 {
		return NoWords
	}
	last := words[len(words)-1]
	switch {
	case replies[strings.Join(words, " ")]:
		return Reply
	case unfinished[last]:
		return Unfinished
	case dictating(words):
		return Dictation
	case isRequest(words):
		return Request
	case isQuestion(words) || strings.HasSuffix(strings.TrimSpace(text), "?"):
		return Question
	}
	return Statement
}

// Words are text's words, lower case, without punctuation; an apostrophe
// inside a word stays ("i'd").
func Words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	})
}

func dictating(words []string) bool {
	n := len(words)
	if !isNumber(words[n-1]) {
		return false
	}
	if n >= 2 && isNumber(words[n-2]) {
		return true
	}
	for _, w := range words[:n-1] {
		if numberCues[w] {
			return true
		}
	}
	return false
}

func isNumber(w string) bool {
	if numberWords[w] {
		return true
	}
	for _, r := range w {
		if !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// requestWords: a request this short has named what is wanted but not yet
// the details; a longer one has probably said them.
const requestWords = 6

func isRequest(words []string) bool {
	if len(words) > requestWords {
		return false
	}
	for _, p := range requestOpenings {
		if hasPrefix(words, p) {
			return true
		}
	}
	return false
}

func isQuestion(words []string) bool {
	return len(words) >= 2 && questionStarts[words[0]]
}

func hasPrefix(words, p []string) bool {
	if len(words) < len(p) {
		return false
	}
	for i := range p {
		if words[i] != p[i] {
			return false
		}
	}
	return true
}

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// unfinished: words after which an English sentence goes on.
var unfinished = set(
	// articles and determiners
	"a", "an", "the", "this", "that", "these", "those", "some", "any", "every", "each", "another",
	// prepositions
	"to", "for", "of", "in", "on", "at", "with", "from", "about", "by", "into", "onto", "like", "than",
	"between", "after", "before", "during", "without", "under", "over", "through", "until", "via", "per",
	// conjunctions
	"and", "but", "or", "so", "because", "if", "when", "while", "although", "though", "unless", "whether", "nor",
	// auxiliaries and modals
	"is", "are", "was", "were", "am", "be", "been", "being", "do", "does", "did", "have", "has", "had",
	"can", "could", "will", "would", "shall", "should", "may", "might", "must", "gonna", "wanna",
	"i'm", "i'd", "i'll", "i've", "it's", "that's", "there's", "what's", "let's",
	// possessives and subject pronouns
	"my", "your", "his", "her", "its", "our", "their", "i", "we", "you", "they", "he", "she",
	// fillers
	"um", "uh", "er", "erm", "hmm", "uhm",
)

// numberWords are spoken digits and numbers.
var numberWords = set("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
	"ten", "eleven", "twelve", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
	"hundred", "thousand", "double", "triple")

// numberCues: a number after one of these is likely the first of several.
var numberCues = set("number", "code", "phone", "zip", "postcode", "card", "account", "pin", "digits", "extension")

// requestOpenings name what is wanted; the details usually follow.
var requestOpenings = [][]string{
	{"i", "want"}, {"i", "wanna"}, {"i'd", "like"}, {"i", "would", "like"}, {"i", "need"},
	{"i'm", "looking", "for"}, {"can", "i"}, {"could", "i"}, {"may", "i"},
	{"book"}, {"order"}, {"reserve"}, {"schedule"},
}

// questionStarts open a question.
var questionStarts = set("what", "when", "where", "who", "whom", "whose", "why", "how", "which",
	"is", "are", "was", "were", "do", "does", "did", "can", "could", "will", "would", "should", "shall",
	"have", "has", "am", "what's", "where's", "who's", "how's")

// replies are short utterances complete in themselves.
var replies = set("yes", "no", "yeah", "yep", "nope", "okay", "ok", "sure", "right", "thanks", "thank you",
	"thank you very much", "bye", "goodbye", "bye bye", "hello", "hi", "hey", "stop", "cancel", "never mind",
	"that's all", "that's it", "please", "correct", "exactly", "good", "great", "fine", "perfect")
