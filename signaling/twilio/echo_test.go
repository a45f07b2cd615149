//go:build !nospeech

package twilio

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/g711"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/local"
)

// The bot's own voice through a speaker phone: phones cancel no echo, so
// what the bot says comes back in the caller's line, 6 dB down and 60 ms
// late. Over a whole reply the echo must neither cut the bot off nor
// become a turn; without the echo gate it does (the test bites); and a
// real voice over the echo still stops the bot and is the next turn.
func TestPhoneEcho(t *testing.T) {
	cases := []struct {
		name string
		cfg  call.Config
		over string // the caller's words over the reply; "": none
		cut  bool   // the reply is cut off
	}{
		{name: "echo alone"},
		// A default changed: without the gate, the echo alone must cut the
		// bot off, or the case above proves nothing.
		{name: "echo alone, no gate", cfg: call.Config{NoEchoGate: true}, cut: true},
		// Words pocketsphinx gets right through the phone's band (as in
		// TestPhoneBargeIn; "stop, what time is it" it does not).
		{name: "a voice over the echo", over: "hello there", cut: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			testkit.CheckGoroutines(t)
			asr, v := offline(t)
			r := startReplica(t, local.New(local.Config{}), replicaOpts{asr: asr, tts: v, call: tc.cfg})
			f := dialTwilio(t, r.mediaURL(), nil, 100*time.Millisecond)
			f.start(wantFormat, nil)
			id := r.sessionOf(t, f.callSid)
			f.speakerLine(100*time.Millisecond, 3, 0.5) // -6 dB, 60 ms late
			f.say(mulawSpeech(t, v, greeting, 500*time.Millisecond, 0))
			if tc.over != "" {
				// About 2 s into the reply, at the level of the caller's own voice.
				f.waitFor("two seconds of the reply", 30*time.Second, func(in []got, _ []clearSeen) bool { return len(in) >= 100 })
				f.say(mulawSpeech(t, v, tc.over, 0, 1500*time.Millisecond))
			}
			done := r.waitEvent(t, id, "the reply's end", replyDone(1)).(event.ReplyDone)
			_, _, _, clears := f.snapshot()
			t.Logf("reply stored: interrupted %v, %q; %d clears", done.Interrupted, done.Text, len(clears))
			if tc.cut {
				checkCut(t, r, f, id, done, tc.over)
			} else {
				checkWhole(t, r, f, id, done)
			}
			f.stop()
			f.closeCode()
		})
	}
}

// checkWhole: the reply was neither cut off nor cleared, and stored whole;
// the echo made no turn, nor any transcript.
func checkWhole(t *testing.T, r *replica, f *fakeTwilio, id string, done event.ReplyDone) {
	t.Helper()
	full := local.New(local.Config{}).Reply(greeting)
	if _, _, _, clears := f.snapshot(); done.Interrupted || done.Text != full || len(clears) != 0 {
		t.Fatalf("the echo cut the bot off: %d clears, stored %+v; want the whole %q", len(clears), done, full)
	}
	// The echo's tail outlasts the reply: let the line go on past the
	// longest end-of-turn silence, and any utterance made of it be
	// recognised, before looking for what it made.
	f.waitSent(200)
	time.Sleep(3 * time.Second)
	heard := 0
	for _, ev := range r.events(t, id) {
		if _, ok := ev.(event.Transcript); ok {
			heard++
		}
		if turnOf(ev) > 1 || heard > 1 {
			t.Fatalf("the echo became a turn: %+v", ev)
		}
	}
	if _, _, _, clears := f.snapshot(); len(clears) != 0 {
		t.Fatalf("%d clears after the reply", len(clears))
	}
}

// checkCut: the reply was cleared and stored cut off, a strict prefix;
// over, if the caller said it, was said before the clear, and the next
// turn is the caller's.
func checkCut(t *testing.T, r *replica, f *fakeTwilio, id string, done event.ReplyDone, over string) {
	t.Helper()
	full := local.New(local.Config{}).Reply(greeting)
	if !done.Interrupted || !strings.HasPrefix(full, done.Text) || done.Text == full {
		t.Fatalf("stored %+v: want an interrupted strict prefix of %q", done, full)
	}
	f.waitFor("a clear", 15*time.Second, func(_ []got, c []clearSeen) bool { return len(c) > 0 })
	if over == "" {
		return
	}
	_, _, _, clears := f.snapshot()
	if began, ok := f.sayStarted(1); !ok || clears[0].at.Before(began) {
		t.Fatalf("cleared before the caller spoke: the echo cut the bot off")
	}
	tr := r.waitEvent(t, id, "the caller's turn", func(ev event.Event) bool {
		tr, ok := ev.(event.Transcript)
		return ok && tr.Turn == 2 && tr.Final
	}).(event.Transcript)
	// Not the words said, exactly: the gate is no echo canceller, and until
	// the clear the recogniser hears the caller and the echo together
	// (pocketsphinx gets "hello there" about two times in three, else "the
	// other"). But the caller's, not the bot's words recognised.
	t.Logf("turn 2 heard %q; the caller said %q", tr.Text, over)
	if tr.Text == "" || tr.Source != event.SourceVoice || stretchOf(full, tr.Text) {
		t.Fatalf("turn 2 %+v: want the caller's words, not the bot's", tr)
	}
}

// stretchOf reports whether the words of part come in whole, one after
// another (case and punctuation aside).
func stretchOf(whole, part string) bool {
	words := func(s string) string {
		return " " + strings.Join(strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
			return !unicode.IsLetter(r) && r != '\''
		}), " ") + " "
	}
	return strings.Contains(words(whole), words(part))
}

// turnOf is the turn a stored event belongs to, where it says.
func turnOf(ev event.Event) int64 {
	switch e := ev.(type) {
	case event.Transcript:
		return e.Turn
	case event.ReplyDone:
		return e.Turn
	}
	b, _ := json.Marshal(ev)
	var m struct{ Turn int64 }
	_ = json.Unmarshal(b, &m)
	return m.Turn
}

// speakerLine keeps the caller's line open as a speaker phone does: every
// 20 ms it plays the next frame of the bot's audio that is due (playDelay
// after it came; those a clear dropped are never played) and sends a
// microphone frame holding what it played delay frames ago at gain, and
// what say queued (the caller's own voice) on top; silence when neither.
// It ends when the socket closes.
func (f *fakeTwilio) speakerLine(playDelay time.Duration, delay int, gain float64) {
	go func() { // ends when the socket closes
		tick := time.NewTicker(media.FrameDuration)
		defer tick.Stop()
		played := make([][]int16, delay+1) // a ring: what played at each of the last ticks
		next := 0                          // the next of f.in to play
		for i := 0; ; i++ {
			var now time.Time
			select {
			case <-f.done:
				return
			case now = <-tick.C:
			}
			mic := make([]int16, g711.Frame)
			f.mu.Lock()
			if n := len(f.clears); n > 0 {
				next = max(next, f.clears[n-1].frames)
			}
			played[i%len(played)] = nil
			if next < len(f.in) && !f.in[next].at.Add(playDelay).After(now) {
				played[i%len(played)] = g711.MuLaw.AppendPCM(nil, f.in[next].payload)
				next++
			}
			if len(f.said) > 0 {
				g711.MuLaw.AppendPCM(mic[:0], f.said[0])
				f.said = f.said[1:]
				if f.first[0] {
					f.saids = append(f.saids, now)
				}
				f.first = f.first[1:]
			}
			f.seq++
			seq := f.seq
			f.sent++
			f.mu.Unlock()
			if echo := played[(i+1)%len(played)]; echo != nil { // delay frames ago
				for k, s := range echo {
					mic[k] = clip16(float64(mic[k]) + gain*float64(s))
				}
			}
			b, _ := json.Marshal(map[string]any{"event": "media", "sequenceNumber": strconv.Itoa(seq), "streamSid": f.sid,
				"media": map[string]any{"track": "inbound", "chunk": strconv.Itoa(i + 1), "timestamp": strconv.Itoa(i * 20),
					"payload": g711.MuLaw.Append(nil, mic)}})
			if f.write(b) != nil {
				return
			}
		}
	}()
}

func clip16(x float64) int16 {
	return int16(min(max(x, -32768), 32767))
}

// waitSent waits until the line has sent n more frames.
func (f *fakeTwilio) waitSent(n int) {
	f.t.Helper()
	f.mu.Lock()
	want := f.sent + n
	f.mu.Unlock()
	deadline := time.Now().Add(time.Duration(n) * media.FrameDuration * 10)
	for {
		f.mu.Lock()
		sent := f.sent
		f.mu.Unlock()
		if sent >= want {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the line sent %d of %d frames", sent-want+n, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
