package call

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/endpoint"
)

// What a call heeds of the caller's audio: whether it is the caller at
// all (the echo gate), whether a voice over the bot is an interruption or
// a cough (false starts), and when the caller has finished (endpointing).

var (
	echoSuppressed = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "call", Name: "echo_suppressed_total",
		Help: "Stretches of caller audio that would have started speech (a barge-in) but were the bot's own voice coming back.",
	})
	falseStarts = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "call", Name: "false_starts_total",
		Help: "Utterances over the bot that neither cut it off nor became a turn (a cough, an \"okay\").",
	})
	endpointWait = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "call", Name: "endpoint_wait_seconds",
		Help:    "The silence chosen to end a caller's turn, by the rule that chose it (pipeline/endpoint; fixed when the silence is set).",
		Buckets: []float64{.2, .3, .4, .5, .6, .8, 1, 1.2, 1.5, 2, 3},
	}, []string{"why"})
)

// fixedSilence labels a turn ended by a silence set, not read from words.
const fixedSilence endpoint.Why = "fixed"

// outFrame is one frame for the pacer: the packet, and the loudness of the
// PCM it was made of, for the echo gate when the frame leaves.
type outFrame struct {
	pkt []byte
	amp float64
}

// echoGate is a call's media.EchoGate: the pacer's goroutine says what
// left, the listening loop asks about what came in.
type echoGate struct {
	mu sync.Mutex
	g  *media.EchoGate
}

func (e *echoGate) played(amp float64) {
	if e == nil {
		return
	}
	e.mu.Lock()
	e.g.Played(amp)
	e.mu.Unlock()
}

// near reports whether a caller frame holds more than the bot's echo; true
// without a gate.
func (e *echoGate) near(pcm []int16) bool {
	if e == nil {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.g.Near(pcm)
}

// found reports whether the gate has found an echo (media.EchoGate.Found).
func (e *echoGate) found() bool {
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.g.Found()
}

func (e *echoGate) flush() {
	if e == nil {
		return
	}
	e.mu.Lock()
	e.g.Flush()
	e.mu.Unlock()
}

// botWords are the bot's latest two sentences, as text and as words: its
// echo may still be coming back. Split once a sentence, not once a frame.
type botWords struct {
	last  string   // the latest sentence
	words []string // of both
}

// said notes a sentence the bot is about to speak: the recogniser may hear
// its echo, and those words are not the caller's.
func (c *Call) said(text string) {
	prev := ""
	if p := c.reply.Load(); p != nil {
		prev = p.last
	}
	c.reply.Store(&botWords{last: text, words: endpoint.Words(prev + "\n" + text)})
}

// backchannels are what a listener says to show they listen: not an
// interruption.
var backchannels = map[string]bool{
	"mm": true, "mhm": true, "hmm": true, "hm": true, "uh": true, "huh": true, "um": true, "ah": true, "oh": true,
	"okay": true, "ok": true, "yeah": true, "yes": true, "yep": true, "right": true, "sure": true, "alright": true,
	"see": true, "uh-huh": true, "mm-hmm": true, "got": true, "cool": true, "nice": true, "thanks": true,
}

// stoppers stop a speaker in one word.
var stoppers = map[string]bool{"stop": true, "wait": true, "no": true, "hold": true, "sorry": true, "excuse": true,
	"actually": true, "hang": true, "pardon": true, "cancel": true, "enough": true, "quiet": true}

// interrupts reports whether the caller's words so far, spoken over the
// bot, are an interruption: a stopper, or BargeInWords words that are not
// backchannels, unless those words are a stretch of the bot's own
// sentences (its echo, recognised).
func (c *Call) interrupts(words string) bool {
	ws := endpoint.Words(words)
	if len(ws) >= 2 && c.own(ws) {
		return false // its echo: even a "no" or a "wait" of the bot's own
	}
	var mine []string
	for _, w := range ws {
		if stoppers[w] {
			return true
		}
		if !backchannels[w] {
			mine = append(mine, w)
		}
	}
	return len(mine) >= c.cfg.BargeInWords && !c.own(mine)
}

// echoed reports whether words, two or more, are a stretch of the bot's
// latest sentences: its own voice coming back, recognised. (One word is
// too little to tell.)
func (c *Call) echoed(words string) bool {
	ws := endpoint.Words(words)
	return len(ws) >= 2 && c.own(ws)
}

// own reports whether words appear, in order, in the bot's latest
// sentences.
func (c *Call) own(words []string) bool {
	p := c.reply.Load()
	return p != nil && within(p.words, words)
}

// within reports whether part appears in whole, word after word.
func within(whole, part []string) bool {
	for i := 0; i+len(part) <= len(whole); i++ {
		if slices.Equal(whole[i:i+len(part)], part) {
			return true
		}
	}
	return false
}

// endpointer is the endpointing in force for t: nil for a fixed silence.
func (c *Call) endpointer(t *TurnTaking) *endpoint.Endpointer {
	switch {
	case t.Eagerness != "":
		return endpoint.New(endpoint.Eagerness(t.Eagerness))
	case c.cfg.FixedSilence || t.VAD.Stop > 0:
		return nil
	}
	return endpoint.New(c.cfg.Endpoint)
}

// voiceOver is the listening loop's view of an utterance that began while
// the bot spoke: not yet an interruption.
type voiceOver struct {
	on      bool
	since   time.Duration // where it began, in the caller's audio
	voiced  time.Duration // how much of it was speech (the pauses not counted)
	stopped time.Duration // where it ended, once it has
}
