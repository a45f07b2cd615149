//go:build !nospeech

package parley_test

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/opus"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/flite"
	"github.com/parleyhq/parley/pipeline/local"
)

// Turn taking over the WebSocket's audio, with flite's speech and
// pocketsphinx hearing it (issue: endpointing, echo, false starts).

// A caller who pauses mid-thought is waited for: "I want to book a table",
// 700 ms of silence, "for two people at eight" is one turn, with no reply
// in the pause.
func TestAPauseMidThoughtIsWaitedFor(t *testing.T) {
	asr, v := offline(t)
	r := startReplica(t, newRedis(t), local.New(local.Config{}), replicaOpts{asr: asr, tts: v})
	first := pcm48(t, v, "I want to book a table")
	second := pcm48(t, v, "for two people at eight")
	pcm := make([]int16, 400*opus.Rate/1000)
	pcm = append(pcm, first...)
	pcm = append(pcm, make([]int16, 700*opus.Rate/1000)...)
	pcm = append(pcm, second...)
	pcm = append(pcm, make([]int16, 2*opus.Rate)...)
	h := callClient(t, r.URL, encodeOpus(t, pcm))

	var finals []msg
	for _, ev := range h.events {
		if ev.Type == "transcript" && ev.Final {
			finals = append(finals, ev)
		}
		if ev.Type == "reply.done" && ev.Turn == 1 {
			break
		}
	}
	t.Logf("final transcripts: %+v", finals)
	if len(finals) != 1 || finals[0].Turn != 1 {
		t.Fatalf("want one user turn, got %d final transcripts: %+v", len(finals), finals)
	}
	words := finals[0].Text
	// The recogniser hears flite imperfectly; a word of each half is enough
	// to show both are in the one turn.
	if !hasAny(words, "book", "table", "want") || !hasAny(words, "two", "people", "eight") {
		t.Fatalf("the turn %q does not hold both halves", words)
	}
}

func hasAny(text string, words ...string) bool {
	for _, w := range words {
		for _, f := range strings.Fields(strings.ToLower(text)) {
			if f == w {
				return true
			}
		}
	}
	return false
}

// While the bot speaks a long reply, what comes back from the caller's
// side: its own voice through a speaker (-6 dB, 60 ms after it was
// played), a cough, an "okay", or a caller who means to interrupt.
func TestVoiceOverALongReply(t *testing.T) {
	asr, v := offline(t)
	full := local.New(local.Config{}).Reply("help") // about 8 s spoken
	cough := coughPCM()
	for _, tc := range []struct {
		name      string
		call      call.Config
		echo      float64 // the gain of the bot's voice heard back; 0 none
		over      []int16 // the caller's own sound, 2 s into the reply
		interrupt bool
		judged    string // the counter that shows the sound was heard and judged
	}{
		{name: "its own echo is not the caller", echo: 0.5, judged: "parley_call_echo_suppressed_total"},
		// The gate off (a default changed) shows the echo would interrupt.
		{name: "without the echo gate its echo interrupts it", call: call.Config{NoEchoGate: true}, echo: 0.5, interrupt: true},
		{name: "a caller over its echo interrupts it", echo: 0.5, over: pcm48(t, v, "stop, what time is it"), interrupt: true},
		{name: "a cough is a false start", over: cough, judged: "parley_call_false_starts_total"},
		{name: "an okay is a backchannel", over: pcm48(t, v, "okay"), judged: "parley_call_false_starts_total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startReplica(t, newRedis(t), local.New(local.Config{}), replicaOpts{asr: asr, tts: v, call: tc.call})
			c := dial(t, r.URL)
			c.Send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "ws"}})
			if ev := c.Next(); ev.Type != "session" {
				t.Fatalf("%s", ev.Raw)
			}
			before := counterValue(t, tc.judged)
			p := newSpeakerPhone(t, c, tc.echo)
			c.Send(map[string]any{"type": "text", "text": "help"})
			p.waitPlayed(100) // 2 s of the reply
			p.say(tc.over)
			done := p.until(func(m msg) bool { return m.Type == "reply.done" && m.Turn == 1 })
			if !tc.interrupt {
				p.waitQuiet(50) // a second of silence: what was said has ended
				p.stop()
				if done.Interrupted || done.Text != full {
					t.Fatalf("the bot was cut off: reply.done %s", done.Raw)
				}
				for _, m := range p.events() {
					if m.Type == "interrupted" || m.Type == "transcript" && m.Final && m.Turn != 1 || m.Turn > 1 {
						t.Fatalf("want no interruption and no turn from it; got %s", m.Raw)
					}
				}
				if tc.judged != "" && counterValue(t, tc.judged) <= before {
					t.Fatalf("%s did not count it: the sound was not heard as a voice over the bot", tc.judged)
				}
				return
			}
			p.stop()
			if !done.Interrupted || done.Text == full || !strings.HasPrefix(full, done.Text) {
				t.Fatalf("want the bot cut off, its stored reply a strict prefix; got %s", done.Raw)
			}
			for _, m := range p.events() {
				if m.Type == "interrupted" {
					return
				}
			}
			t.Fatal("no interrupted event")
		})
	}
}

// speakerPhone is a caller on a speaker: it plays the bot's frames at
// real time and its microphone, sending a frame every 20 ms, hears them
// back at a gain 3 frames (60 ms) after they were played, mixed with
// whatever the caller says.
type speakerPhone struct {
	t    *testing.T
	c    *client
	gain float64

	mu      sync.Mutex
	queue   [][]int16 // the bot's frames, received, not yet played
	played  int
	quiet   int // frames played in a row with no bot audio and nothing said
	over    []int16
	evs     []msg
	changed chan struct{} // closed and replaced at each change

	halt chan struct{}
	done sync.WaitGroup
}

const echoDelay = 3 // frames

func newSpeakerPhone(t *testing.T, c *client, gain float64) *speakerPhone {
	p := &speakerPhone{t: t, c: c, gain: gain, changed: make(chan struct{}), halt: make(chan struct{})}
	p.done.Add(2)
	go p.read() // ends when the socket closes
	go p.mic()  // ends at stop or a failed write
	t.Cleanup(p.stop)
	return p
}

func (p *speakerPhone) notify() { close(p.changed); p.changed = make(chan struct{}) }

func (p *speakerPhone) read() {
	defer p.done.Done()
	dec, err := opus.NewDecoder(opus.Rate)
	if err != nil {
		p.t.Error(err)
		return
	}
	for {
		_ = p.c.WS.SetReadDeadline(time.Now().Add(time.Minute)) // the hello's read set one
		kind, b, err := p.c.WS.ReadMessage()
		if err != nil {
			select {
			case <-p.halt:
			default:
				p.t.Errorf("read: %v", err)
			}
			return
		}
		p.mu.Lock()
		if kind == websocket.BinaryMessage {
			if pcm, err := dec.Decode(b); err == nil {
				p.queue = append(p.queue, append([]int16(nil), pcm...))
			}
		} else {
			var m msg
			_ = json.Unmarshal(b, &m)
			m.Raw = string(b)
			p.evs = append(p.evs, m)
			p.notify()
		}
		p.mu.Unlock()
	}
}

func (p *speakerPhone) mic() {
	defer p.done.Done()
	enc, err := opus.NewEncoder(opus.Rate, 0)
	if err != nil {
		p.t.Error(err)
		return
	}
	line := make([][]int16, echoDelay+1) // what the speaker played, last frames
	for i := range line {
		line[i] = make([]int16, opus.FrameSamples)
	}
	frame := make([]int16, opus.FrameSamples)
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	for {
		select {
		case <-p.halt:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		playing := line[0]
		copy(line, line[1:])
		line[echoDelay] = playing
		clear(playing)
		bot := len(p.queue) > 0
		if bot {
			copy(playing, p.queue[0])
			p.queue = p.queue[1:]
			p.played++
		}
		heard := line[0] // played echoDelay frames ago
		for i := range frame {
			frame[i] = int16(float64(heard[i]) * p.gain)
		}
		said := len(p.over) > 0
		n := len(mix(frame, p.over))
		p.over = p.over[n:]
		if bot || said {
			p.quiet = 0
		} else {
			p.quiet++
		}
		p.notify()
		p.mu.Unlock()
		pkt, err := enc.Encode(frame)
		if err != nil {
			p.t.Error(err)
			return
		}
		if err := p.c.Write(websocket.BinaryMessage, pkt); err != nil {
			return
		}
	}
}

// mix adds the caller's next samples onto frame, in place; it returns
// frame with as many samples as were mixed (all of frame when over is
// longer).
func mix(frame, over []int16) []int16 {
	n := min(len(frame), len(over))
	for i := range n {
		frame[i] = int16(max(-32768, min(32767, int(frame[i])+int(over[i]))))
	}
	return frame[:n]
}

func (p *speakerPhone) say(pcm []int16) {
	p.mu.Lock()
	p.over = append(p.over, pcm...)
	p.mu.Unlock()
}

func (p *speakerPhone) stop() {
	select {
	case <-p.halt:
	default:
		close(p.halt)
	}
}

func (p *speakerPhone) events() []msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]msg(nil), p.evs...)
}

// wait blocks until cond holds (under the lock), or fails after a minute.
func (p *speakerPhone) wait(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.After(time.Minute)
	for {
		p.mu.Lock()
		ok, ch := cond(), p.changed
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			p.mu.Lock()
			played, queued := p.played, len(p.queue)
			p.mu.Unlock()
			p.t.Fatalf("waited a minute for %s (%d bot frames played, %d queued); events: %v", what, played, queued, p.events())
		}
	}
}

func (p *speakerPhone) waitPlayed(n int) {
	p.t.Helper()
	p.wait("the bot's audio", func() bool { return p.played >= n })
}

func (p *speakerPhone) waitQuiet(n int) {
	p.t.Helper()
	p.wait("quiet", func() bool { return p.quiet >= n })
}

func (p *speakerPhone) until(match func(msg) bool) msg {
	p.t.Helper()
	var m msg
	p.wait("an event", func() bool {
		for _, e := range p.evs {
			if match(e) {
				m = e
				return true
			}
		}
		return false
	})
	return m
}

// counterValue is an unlabelled counter of this process's metrics; 0 for
// none (or no name).
func counterValue(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// pcm48 is flite's rendering of text at the WebSocket codec's rate.
func pcm48(t *testing.T, v *flite.Voice, text string) []int16 {
	t.Helper()
	var pcm16 []int16
	if err := v.Synthesize(context.Background(), text, func(p []int16) error { pcm16 = append(pcm16, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	up, _ := media.NewResampler(16000, opus.Rate)
	return up.Process(pcm16, nil)
}

// encodeOpus cuts pcm into 20 ms Opus packets: CELT at 32 kbps, as the
// server's voice, and as a browser's WebCodecs encoder at that bitrate
// codes a quiet microphone (and a little of a voice).
func encodeOpus(t *testing.T, pcm []int16) [][]byte {
	t.Helper()
	return encodeOpusIn(t, false, pcm)
}

// encodeOpusIn is encodeOpus; speech: in Opus's VoIP mode, as a browser's
// WebRTC codes a voice.
func encodeOpusIn(t *testing.T, speech bool, pcm []int16) [][]byte {
	t.Helper()
	enc, _ := opus.NewEncoder(opus.Rate, 0)
	if speech {
		enc, _ = opus.NewSpeechEncoder(opus.Rate, 0)
	}
	var pkts [][]byte
	for i := 0; i+opus.FrameSamples <= len(pcm); i += opus.FrameSamples {
		p, err := enc.Encode(pcm[i : i+opus.FrameSamples])
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, p)
	}
	return pkts
}

// coughPCM is a cough as a microphone hears it: 250 ms of noise, loud at
// once and dying away, at 48 kHz.
func coughPCM() []int16 {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 250 * opus.Rate / 1000
	pcm := make([]int16, n)
	for i := range pcm {
		env := math.Exp(-4 * float64(i) / float64(n))
		pcm[i] = int16(env * 12000 * (rng.Float64()*2 - 1))
	}
	return pcm
}
