//go:build !nospeech

package parley_test

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/testkit/recordtest"
	"github.com/parleyhq/parley/media/opus"
	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/pipeline/record"
)

// A recorded call with an interruption, over the WebSocket with Opus and
// flite speech: a typed "help" is answered at length, the caller speaks
// over it, the bot stops, and the caller's words are answered. The file
// decodes as stereo at the call's rate; the left channel holds the
// caller's speech, the right the bot's; the bot's reply is in the file
// exactly as far as the caller heard it, and is silent from the cut on;
// the transcript's times match the audio within 100 ms (the caller's
// speech by its energy on the left, the bot's replies where what the
// caller heard matches the right).
func TestRecordedCallWithAnInterruption(t *testing.T) {
	asr, v := offline(t)
	dir := t.TempDir()
	rec, err := record.New(record.Config{Dir: dir}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	r := startReplica(t, newRedis(t), local.New(local.Config{}), replicaOpts{asr: asr, tts: v, recorder: recordtest.Closing{Recorder: rec, Closed: closed}})
	c := dial(t, r.URL)
	c.Send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "ws", "codec": "opus"}})
	if ev := c.Next(); ev.Type != "session" {
		t.Fatalf("%s", ev.Raw)
	}
	type item struct {
		ev    msg
		audio []byte
	}
	msgs := make(chan item, 10000)
	go func() { // ends when the socket closes
		defer close(msgs)
		for {
			kind, b, err := c.WS.ReadMessage()
			if err != nil {
				return
			}
			m := item{}
			if kind == websocket.BinaryMessage {
				m.audio = b
			} else {
				_ = json.Unmarshal(b, &m.ev)
				m.ev.Raw = string(b)
			}
			msgs <- m
		}
	}()
	next := func() item {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatal("socket closed")
			}
			return m
		case <-time.After(30 * time.Second):
			t.Fatal("nothing received for 30 s")
		}
		return item{}
	}

	// The caller hears each reply's frames: heard[turn].
	heard := map[int64][][]byte{}
	turn := int64(1)
	c.Send(map[string]any{"type": "text", "text": "help"})
	for len(heard[1]) < 50 { // a second of the reply
		if m := next(); m.audio != nil {
			heard[1] = append(heard[1], m.audio)
		}
	}
	speech := opusSpeech(t, v, "what time is it", 0, 1500*time.Millisecond)
	sentDone := make(chan struct{})
	go func() { // ends when the speech is sent or the socket fails
		defer close(sentDone)
		_ = speak(c, speech)
	}()
	for done := false; !done; {
		m := next()
		switch {
		case m.audio != nil:
			heard[turn] = append(heard[turn], m.audio)
		case m.ev.Type == "reply.done" && m.ev.Turn == 1:
			turn = 2 // what follows is the reply to the caller's words
		case m.ev.Type == "reply.done" && m.ev.Turn == 2:
			done = true
		case m.ev.Type == "error":
			t.Fatalf("error: %s", m.ev.Raw)
		}
	}
	<-sentDone
	c.WS.Close() // the call ends: its recording is closed
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("the recording was not closed when the call ended")
	}

	wavs, _ := filepath.Glob(filepath.Join(dir, "*", "*.wav"))
	if len(wavs) != 1 {
		t.Fatalf("recordings %v; want one", wavs)
	}
	left, right := recordtest.Stereo(t, wavs[0], 16000)
	lines := recordtest.Transcript(t, strings.TrimSuffix(wavs[0], ".wav")+".jsonl")
	byTurn := func(speaker string, turn int64) recordtest.Line {
		for _, l := range lines {
			if l.Speaker == speaker && l.Turn == turn {
				return l
			}
		}
		t.Fatalf("no %s line for turn %d in %+v", speaker, turn, lines)
		return recordtest.Line{}
	}
	typed, said := byTurn("caller", 1), byTurn("caller", 2)
	cut, answer := byTurn("bot", 1), byTurn("bot", 2)
	if typed.Source != "text" || typed.Text != "help" || typed.From != nil ||
		said.Source != "voice" || said.Text != "what time is it" || said.From == nil ||
		cut.Interrupted == nil || !*cut.Interrupted || cut.From == nil ||
		answer.Interrupted == nil || *answer.Interrupted || !strings.HasPrefix(answer.Text, "It is ") || answer.From == nil {
		t.Fatalf("transcript: %+v", lines)
	}
	full := local.New(local.Config{}).Reply("help")
	if cut.Text == "" || cut.Text == full || !strings.HasPrefix(full, cut.Text) {
		t.Fatalf("the cut reply's text %q is not a strict prefix of %q", cut.Text, full)
	}

	const tolerance = 0.1 // s
	// near compares what the transcript (or the recording) says with what
	// the audio shows.
	near := func(what string, says, shows float64) {
		t.Helper()
		t.Logf("%s: %.3f s; the audio: %.3f s", what, says, shows)
		if math.Abs(says-shows) > tolerance {
			t.Errorf("%s: %.3f s, but the audio shows %.3f s", what, says, shows)
		}
	}
	// The left channel is the caller's one utterance.
	spans := recordtest.LoudSpans(left, 16000)
	if len(spans) == 0 {
		t.Fatal("the left channel is silent")
	}
	near("the caller's speech begins (transcript)", *said.From, spans[0][0])
	near("the caller's speech ends (transcript)", *said.To, spans[len(spans)-1][1])

	// The right channel is the bot's: each reply's audio, as the caller
	// heard it, is in the recording where the transcript puts it. (The
	// caller's decoder is one for the call: a reply's first frames carry
	// what the encoder had of the last one.)
	pcm := decodeOpus(t, append(heard[1], heard[2]...))
	first := len(heard[1]) * 320
	for _, reply := range []struct {
		line  recordtest.Line
		audio []int16
	}{{cut, pcm[:first]}, {answer, pcm[first:]}} {
		from, to := *reply.line.From, *reply.line.To
		name := "turn " + itoa(reply.line.Turn) + "'s reply"
		// Its first and last half second, each where it matches best: a
		// late tick of the pacer leaves a hole, which the caller heard too.
		const part = 8000
		if len(reply.audio) < 2*part {
			t.Fatalf("%s: %d samples heard", name, len(reply.audio))
		}
		head, tail := reply.audio[:part], reply.audio[len(reply.audio)-part:]
		begins, corr := recordtest.Align(right, head, 16000, from, 0.2)
		ends, corrEnd := recordtest.Align(right, tail, 16000, to-0.5, 0.2)
		t.Logf("%s: its first half second matches at %.4f s (correlation %.4f), its last at %.4f s (%.4f)", name, begins, corr, ends, corrEnd)
		if corr < 0.9 || corrEnd < 0.9 {
			t.Fatalf("%s: what the caller heard is not in the bot's channel (best matches %.2f, %.2f)", name, corr, corrEnd)
		}
		near(name+" begins (transcript)", from, begins)
		near(name+" ends (transcript)", to, ends+0.5)
	}
	// Silent from the cut on, until the next reply: the caller heard
	// nothing more, and the recording has nothing more.
	// (The transcript's times are to the millisecond.)
	if after := recordtest.LoudSpans(recordtest.Slice(right, 16000, *cut.To+0.001, *answer.From), 16000); len(after) != 0 {
		t.Fatalf("the bot's channel is loud at %.3f s (to %.3f s), after the cut at %.3f s and before the next reply at %.3f s", *cut.To+after[0][0], *cut.To+after[0][1], *cut.To, *answer.From)
	}
	// The cut came after the caller began, and not long after (TestBargeIn
	// holds the barge-in to its bound; on a loaded machine the words that
	// confirm it come late, after a short utterance's end even; here the
	// point is that the file shows the cut where it was).
	if d := *cut.To - spans[0][0]; d < 0 || d > 2 {
		t.Fatalf("the bot stopped %.3f s after the caller began (at %.3f s, ended at %.3f s)", d, spans[0][0], spans[len(spans)-1][1])
	}
	if rest := recordtest.LoudSpans(recordtest.Slice(right, 16000, *answer.To, float64(len(right))/16000), 16000); len(rest) != 0 {
		t.Fatalf("the bot's channel is loud after its last reply: %v", rest)
	}
}

// decodeOpus is the audio of frames, at 16 kHz.
func decodeOpus(t *testing.T, frames [][]byte) []int16 {
	t.Helper()
	dec, err := opus.NewDecoder(16000)
	if err != nil {
		t.Fatal(err)
	}
	var pcm []int16
	for _, f := range frames {
		p, err := dec.Decode(f)
		if err != nil {
			t.Fatal(err)
		}
		pcm = append(pcm, p...)
	}
	return pcm
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
